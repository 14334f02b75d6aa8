// Package coreapi is a fake of core-api, the platform's configuration
// service, for what Switchyard reads from it: group data and data-connector
// credentials by org, and policy scripts. Routes (under /v1, so the base
// URL is the server's URL + "/v1"):
//
//	GET /v1/orgs/{org}/groups               {"groups":[…]}
//	GET /v1/orgs/{org}/groups/{id}          the group's JSON
//	GET /v1/orgs/{org}/data-connectors/{id} the connector's credentials JSON
//	GET /v1/policies/{name}/script          the Lua text
//
// Every answer has an ETag and honours If-None-Match with 304. Requests need
// `Authorization: Bearer <token>`. Errors are
// `{"error":{"code":"not_found","message":…}}`; over the request limit it is
// 429 with Retry-After, an outage 503, a failure 500.
package coreapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sort"
	"sync"

	"github.com/switchyard-voice/switchyard/pkg/crmfake"
)

// Server is the fake.
type Server struct {
	crmfake.Switches

	token    string
	mux      *http.ServeMux
	mu       sync.Mutex
	groups   map[string]map[string]json.RawMessage
	creds    map[string]map[string]json.RawMessage
	policies map[string]string
}

// New builds the fake; token is the bearer token it accepts.
func New(token string) *Server {
	s := &Server{token: token, mux: http.NewServeMux(), groups: map[string]map[string]json.RawMessage{},
		creds: map[string]map[string]json.RawMessage{}, policies: map[string]string{}}
	s.mux.HandleFunc("GET /v1/orgs/{org}/groups", s.wrap(s.listGroups))
	s.mux.HandleFunc("GET /v1/orgs/{org}/groups/{id}", s.wrap(s.getGroup))
	s.mux.HandleFunc("GET /v1/orgs/{org}/data-connectors/{id}", s.wrap(s.getCreds))
	s.mux.HandleFunc("GET /v1/policies/{name}/script", s.wrap(s.getPolicy))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func put(m map[string]map[string]json.RawMessage, org, id string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic("coreapi fake: " + err.Error())
	}
	if m[org] == nil {
		m[org] = map[string]json.RawMessage{}
	}
	m[org][id] = b
}

// PutGroup stores a group of an org (any JSON-encodable value).
func (s *Server) PutGroup(org, id string, group any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	put(s.groups, org, id, group)
}

// PutDataConnector stores a data connector's credentials for an org.
func (s *Server) PutDataConnector(org, id string, creds any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	put(s.creds, org, id, creds)
}

// PutPolicy stores a policy script.
func (s *Server) PutPolicy(name, script string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policies[name] = script
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func (s *Server) wrap(h func(r *http.Request) (body []byte, contentType string, ok bool)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch s.Apply(r) {
		case crmfake.Gone:
			return
		case crmfake.Down:
			apiError(w, http.StatusServiceUnavailable, "unavailable", "core-api is unavailable")
			return
		case crmfake.Failing:
			apiError(w, http.StatusInternalServerError, "internal", "internal error")
			return
		case crmfake.RateLimited:
			w.Header().Set("Retry-After", "1")
			apiError(w, http.StatusTooManyRequests, "rate_limited", "too many requests")
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+s.token {
			apiError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token")
			return
		}
		body, ct, ok := h(r)
		if !ok {
			apiError(w, http.StatusNotFound, "not_found", "no such resource: "+r.URL.Path)
			return
		}
		sum := sha256.Sum256(body)
		etag := `"` + hex.EncodeToString(sum[:8]) + `"`
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", ct)
		w.Write(body)
	}
}

func (s *Server) listGroups(r *http.Request) ([]byte, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.groups[r.PathValue("org")]
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	list := make([]json.RawMessage, 0, len(ids))
	for _, id := range ids {
		list = append(list, m[id])
	}
	b, _ := json.Marshal(map[string]any{"groups": list})
	return b, "application/json", true
}

func (s *Server) getGroup(r *http.Request) ([]byte, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.groups[r.PathValue("org")][r.PathValue("id")]
	return b, "application/json", ok
}

func (s *Server) getCreds(r *http.Request) ([]byte, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.creds[r.PathValue("org")][r.PathValue("id")]
	return b, "application/json", ok
}

func (s *Server) getPolicy(r *http.Request) ([]byte, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.policies[r.PathValue("name")]
	return []byte(p), "text/plain; charset=utf-8", ok
}
