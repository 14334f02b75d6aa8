// Package salesforce is a fake Salesforce org: the OAuth 2.0 token endpoint
// (client-credentials and JWT bearer grants) and the REST API's SOQL query
// (with nextRecordsUrl pagination), sObject get and sObject update, with the
// status codes and error bodies Salesforce sends
// (`[{"message":…,"errorCode":"INVALID_SESSION_ID"}]`). The same server is
// the login URL and the instance URL.
//
//	sf := salesforce.New(salesforce.Options{PageSize: 2})
//	sf.AddClient("cid", "secret")
//	sf.Data.Put("Account", soql.Record{"Id": "001…", "Phone": "+44…"})
//	srv := httptest.NewServer(sf)
package salesforce

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/crmfake"
	"github.com/switchyard-voice/switchyard/pkg/crmfake/soql"
)

// Options configure the fake.
type Options struct {
	// PageSize is the number of records per query page (Salesforce's
	// default batch is 2000). 0 means 2000.
	PageSize int
	// TokenTTL makes tokens expire this long after they are issued, as a
	// session timeout does; 0: they last until ExpireTokens.
	TokenTTL time.Duration
	// Audiences the JWT bearer grant accepts; nil means
	// https://login.salesforce.com and https://test.salesforce.com.
	Audiences []string
}

// Server is the fake org. Data holds its records.
type Server struct {
	crmfake.Switches
	Data *soql.Store

	opts Options
	mux  *http.ServeMux

	mu        sync.Mutex
	clients   map[string]string // client id → secret
	jwt       map[string]jwtClient
	tokens    map[string]time.Time // token → expiry (zero: none)
	cursors   map[string]*cursor
	queries   []string
	tokenReqs int
	seq       int
}

type jwtClient struct {
	key   *rsa.PublicKey
	users map[string]bool
}

type cursor struct {
	object  string
	rows    []soql.Record
	version string
}

// New builds the fake; serve it with httptest.NewServer.
func New(opts Options) *Server {
	if opts.PageSize <= 0 {
		opts.PageSize = 2000
	}
	if opts.Audiences == nil {
		opts.Audiences = []string{"https://login.salesforce.com", "https://test.salesforce.com"}
	}
	s := &Server{Data: soql.NewStore(), opts: opts, mux: http.NewServeMux(),
		clients: map[string]string{}, jwt: map[string]jwtClient{}, tokens: map[string]time.Time{}, cursors: map[string]*cursor{}}
	s.mux.HandleFunc("POST /services/oauth2/token", s.token)
	s.mux.HandleFunc("GET /services/data/{version}/query", s.api(s.query))
	s.mux.HandleFunc("GET /services/data/{version}/query/{locator}", s.api(s.queryMore))
	s.mux.HandleFunc("GET /services/data/{version}/sobjects/{object}/{id}", s.api(s.get))
	s.mux.HandleFunc("PATCH /services/data/{version}/sobjects/{object}/{id}", s.api(s.update))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
	})
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// AddClient registers a connected app for the client-credentials grant.
func (s *Server) AddClient(clientID, secret string) {
	s.mu.Lock()
	s.clients[clientID] = secret
	s.mu.Unlock()
}

// AddJWTClient registers a connected app for the JWT bearer grant: its
// certificate's public key and the users pre-authorised for it.
func (s *Server) AddJWTClient(clientID string, key *rsa.PublicKey, users ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := map[string]bool{}
	for _, x := range users {
		u[x] = true
	}
	s.jwt[clientID] = jwtClient{key: key, users: u}
}

// ExpireTokens invalidates every token issued so far: the next API call
// with one gets 401 INVALID_SESSION_ID.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	clear(s.tokens)
	s.mu.Unlock()
}

// TokenRequests is how many token requests were made (refused ones too).
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenReqs
}

// Queries are the SOQL texts received, in order.
func (s *Server) Queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries...)
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	type sfError struct {
		Message   string `json:"message"`
		ErrorCode string `json:"errorCode"`
	}
	json.NewEncoder(w).Encode([]sfError{{Message: msg, ErrorCode: code}})
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	json.NewEncoder(w).Encode(v)
}

func baseURL(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.tokenReqs++
	s.mu.Unlock()
	switch s.ApplyUncounted(r) {
	case crmfake.Gone:
		return
	case crmfake.Down:
		oauthError(w, http.StatusServiceUnavailable, "server_unavailable", "Salesforce is down for maintenance")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "bad form body")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "client_credentials":
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		s.mu.Lock()
		want, known := s.clients[id]
		s.mu.Unlock()
		if !known || want != secret || secret == "" {
			oauthError(w, http.StatusBadRequest, "invalid_client", "invalid client credentials")
			return
		}
	case "urn:ietf:params:oauth:grant-type:jwt-bearer":
		if code, desc := s.checkAssertion(r.PostForm.Get("assertion")); code != "" {
			oauthError(w, http.StatusBadRequest, code, desc)
			return
		}
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant type not supported")
		return
	}
	tok := "00D000000000001!" + randomHex(24)
	var exp time.Time
	if s.opts.TokenTTL > 0 {
		exp = time.Now().Add(s.opts.TokenTTL)
	}
	s.mu.Lock()
	s.tokens[tok] = exp
	s.mu.Unlock()
	base := baseURL(r)
	writeJSON(w, map[string]string{
		"access_token": tok, "instance_url": base, "token_type": "Bearer", "scope": "api",
		"id":        base + "/id/00D000000000001EAA/005000000000001AAA",
		"issued_at": strconv.FormatInt(time.Now().UnixMilli(), 10),
		"signature": base64.StdEncoding.EncodeToString([]byte(randomHex(16))),
	})
}

// checkAssertion verifies an RS256 JWT as Salesforce does: a known issuer
// (the connected app's client id), a signature by its certificate, an
// accepted audience, an unexpired exp, a pre-authorised subject.
func (s *Server) checkAssertion(a string) (code, desc string) {
	parts := strings.Split(a, ".")
	if len(parts) != 3 {
		return "invalid_grant", "invalid assertion"
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	pb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	var hdr struct {
		Alg string `json:"alg"`
	}
	var claims struct {
		Iss string `json:"iss"`
		Sub string `json:"sub"`
		Aud string `json:"aud"`
		Exp int64  `json:"exp"`
	}
	if err1 != nil || err2 != nil || err3 != nil || json.Unmarshal(hb, &hdr) != nil || json.Unmarshal(pb, &claims) != nil {
		return "invalid_grant", "invalid assertion"
	}
	if hdr.Alg != "RS256" {
		return "invalid_grant", "invalid assertion: algorithm must be RS256"
	}
	s.mu.Lock()
	c, ok := s.jwt[claims.Iss]
	s.mu.Unlock()
	if !ok {
		return "invalid_client_id", "client identifier invalid"
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(c.key, crypto.SHA256, sum[:], sig) != nil {
		return "invalid_grant", "invalid assertion"
	}
	audOK := false
	for _, x := range s.opts.Audiences {
		audOK = audOK || x == claims.Aud
	}
	if !audOK {
		return "invalid_grant", "audience is invalid"
	}
	if now := time.Now().Unix(); claims.Exp <= now || claims.Exp > now+300 {
		return "invalid_grant", "expired or too distant exp in assertion"
	}
	if !c.users[claims.Sub] {
		return "invalid_grant", "user hasn't approved this consumer"
	}
	return "", ""
}

// api wraps an API handler with the switches, the version check and
// authentication.
func (s *Server) api(h func(w http.ResponseWriter, r *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := r.PathValue("version")
		n, err := strconv.ParseFloat(strings.TrimPrefix(v, "v"), 64)
		if !strings.HasPrefix(v, "v") || err != nil || n < 20 || n > 66 {
			apiError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			tok, _ = strings.CutPrefix(r.Header.Get("Authorization"), "OAuth ")
		}
		switch s.Apply(r) {
		case crmfake.Gone:
			return
		case crmfake.Down:
			apiError(w, http.StatusServiceUnavailable, "SERVER_UNAVAILABLE", "Salesforce is down for maintenance")
			return
		case crmfake.Failing:
			apiError(w, http.StatusInternalServerError, "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567-89 (-123456)")
			return
		case crmfake.RateLimited:
			apiError(w, http.StatusForbidden, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
			return
		}
		s.mu.Lock()
		exp, valid := s.tokens[tok]
		if valid && !exp.IsZero() && time.Now().After(exp) {
			delete(s.tokens, tok)
			valid = false
		}
		s.mu.Unlock()
		if !valid {
			apiError(w, http.StatusUnauthorized, "INVALID_SESSION_ID", "Session expired or invalid")
			return
		}
		h(w, r)
	}
}

func writeSOQLError(w http.ResponseWriter, err error) {
	code, msg := "UNKNOWN_EXCEPTION", err.Error()
	if e, ok := err.(*soql.Error); ok {
		code, msg = e.Code, e.Message
	}
	status := http.StatusBadRequest
	if code == "NOT_FOUND" {
		status = http.StatusNotFound
	}
	apiError(w, status, code, msg)
}

func (s *Server) query(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("q")
	s.mu.Lock()
	s.queries = append(s.queries, q)
	s.mu.Unlock()
	if q == "" {
		apiError(w, http.StatusBadRequest, "MALFORMED_QUERY", "A query string must be provided.")
		return
	}
	obj, rows, err := s.Data.Query(q)
	if err != nil {
		writeSOQLError(w, err)
		return
	}
	s.page(w, r.PathValue("version"), &cursor{object: obj, rows: rows, version: r.PathValue("version")}, 0)
}

func (s *Server) queryMore(w http.ResponseWriter, r *http.Request) {
	loc := r.PathValue("locator")
	id, off, ok := strings.Cut(loc, "-")
	n, err := strconv.Atoi(off)
	s.mu.Lock()
	c := s.cursors[id]
	s.mu.Unlock()
	if !ok || err != nil || c == nil || n < 0 || n > len(c.rows) {
		apiError(w, http.StatusBadRequest, "INVALID_QUERY_LOCATOR", "invalid query locator")
		return
	}
	s.page(w, r.PathValue("version"), c, n)
}

// page writes the records from offset, a page long, with nextRecordsUrl
// when more remain.
func (s *Server) page(w http.ResponseWriter, version string, c *cursor, offset int) {
	end := min(offset+s.opts.PageSize, len(c.rows))
	recs := make([]map[string]any, 0, end-offset)
	for _, row := range c.rows[offset:end] {
		recs = append(recs, withAttributes(version, c.object, row))
	}
	body := map[string]any{"totalSize": len(c.rows), "done": end == len(c.rows), "records": recs}
	if end < len(c.rows) {
		s.mu.Lock()
		s.seq++
		id := fmt.Sprintf("01g000000000%03dAAA", s.seq%1000)
		s.cursors[id] = c
		s.mu.Unlock()
		body["nextRecordsUrl"] = fmt.Sprintf("/services/data/%s/query/%s-%d", version, id, end)
	}
	writeJSON(w, body)
}

func withAttributes(version, object string, r soql.Record) map[string]any {
	out := map[string]any{}
	attrs := map[string]any{"type": object}
	if id, ok := r["Id"].(string); ok {
		attrs["url"] = fmt.Sprintf("/services/data/%s/sobjects/%s/%s", version, object, id)
	}
	out["attributes"] = attrs
	for k, v := range r {
		out[k] = v
	}
	return out
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	var fields []string
	if f := r.URL.Query().Get("fields"); f != "" {
		fields = strings.Split(f, ",")
	}
	obj, rec, err := s.Data.Get(r.PathValue("object"), r.PathValue("id"), fields)
	if err != nil {
		writeSOQLError(w, err)
		return
	}
	writeJSON(w, withAttributes(r.PathValue("version"), obj, rec))
}

func (s *Server) update(w http.ResponseWriter, r *http.Request) {
	var values map[string]any
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(&values); err != nil {
		apiError(w, http.StatusBadRequest, "JSON_PARSER_ERROR", "Unexpected character: "+err.Error())
		return
	}
	delete(values, "attributes")
	if err := s.Data.Update(r.PathValue("object"), r.PathValue("id"), values); err != nil {
		writeSOQLError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
