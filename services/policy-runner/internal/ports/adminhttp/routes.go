// Package adminhttp is the policy-runner's admin REST (docs/api/policy-runner.yaml):
// policies (list, get, put with validation, versions, rollback, dry run).
package adminhttp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/switchyard-voice/switchyard/pkg/admin"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/adapters/policystore"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/app"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/dryrun"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/sandbox"
)

// Deps are what the routes use; KV returns nil while the store is not a
// KV bucket (or not open yet).
type Deps struct {
	KV      func() *policystore.KV
	Sandbox *sandbox.Sandbox
	LibDir  string
}

const maxPolicyBytes = 256 << 10

// Register adds the routes.
func Register(srv *admin.Server, d Deps) {
	kv := func() (*policystore.KV, error) {
		if s := d.KV(); s != nil {
			return s, nil
		}
		return nil, admin.Errorf(http.StatusServiceUnavailable, "store_unavailable", "the policy store is not a KV bucket or not open yet (--policy-store=kv, NATS up)")
	}
	// handle registers a route that needs the KV store.
	handle := func(pattern string, h func(w http.ResponseWriter, r *http.Request, s *policystore.KV) error) {
		srv.Handle(pattern, func(w http.ResponseWriter, r *http.Request) error {
			s, err := kv()
			if err != nil {
				return err
			}
			return h(w, r, s)
		})
	}
	handle("GET /v1/policies", func(w http.ResponseWriter, r *http.Request, s *policystore.KV) error {
		type item struct {
			Name    string `json:"name"`
			Version string `json:"version"`
			Bytes   int    `json:"bytes"`
		}
		out := []item{}
		for _, p := range s.List() {
			out = append(out, item{p.Name, p.Version, len(p.Source)})
		}
		admin.WriteJSON(w, http.StatusOK, map[string]any{"policies": out})
		return nil
	})
	handle("GET /v1/policies/{name}", func(w http.ResponseWriter, r *http.Request, s *policystore.KV) error {
		p, err := s.Get(r.Context(), r.PathValue("name"))
		if err != nil {
			return notFound(err)
		}
		admin.WriteJSON(w, http.StatusOK, map[string]any{"name": p.Name, "version": p.Version, "source": p.Source})
		return nil
	})
	handle("PUT /v1/policies/{name}", func(w http.ResponseWriter, r *http.Request, s *policystore.KV) error {
		src, err := io.ReadAll(io.LimitReader(r.Body, maxPolicyBytes+1))
		if err != nil {
			return admin.Errorf(http.StatusBadRequest, "invalid_body", "reading the policy: %v", err)
		}
		if len(src) > maxPolicyBytes {
			return admin.Errorf(http.StatusRequestEntityTooLarge, "body_too_large", "a policy is at most %d bytes", maxPolicyBytes)
		}
		if _, err := sandbox.Compile(r.PathValue("name"), string(src), sandbox.Limits{}); err != nil {
			return invalidPolicy(err)
		}
		p, err := s.Put(r.Context(), r.PathValue("name"), string(src))
		if errors.Is(err, policystore.ErrBadName) {
			return admin.Invalid("name", "%v", err)
		}
		if err != nil {
			return err
		}
		admin.WriteJSON(w, http.StatusOK, map[string]any{"name": p.Name, "version": p.Version})
		return nil
	})
	handle("GET /v1/policies/{name}/versions", func(w http.ResponseWriter, r *http.Request, s *policystore.KV) error {
		v, err := s.Versions(r.Context(), r.PathValue("name"))
		if err != nil {
			return notFound(err)
		}
		admin.WriteJSON(w, http.StatusOK, map[string]any{"name": r.PathValue("name"), "versions": v})
		return nil
	})
	handle("POST /v1/policies/{name}/rollback", func(w http.ResponseWriter, r *http.Request, s *policystore.KV) error {
		var in struct {
			Version string `json:"version"`
		}
		if err := admin.DecodeJSON(r, &in); err != nil {
			return err
		}
		if in.Version == "" {
			return admin.Invalid("version", "give the version to roll back to (GET …/versions lists them)")
		}
		p, err := s.Rollback(r.Context(), r.PathValue("name"), in.Version)
		if err != nil {
			return notFound(err)
		}
		admin.WriteJSON(w, http.StatusOK, map[string]any{"name": p.Name, "version": p.Version, "from_version": in.Version})
		return nil
	})
	handle("POST /v1/policies/{name}/dry-run", func(w http.ResponseWriter, r *http.Request, s *policystore.KV) error {
		p, err := s.Get(r.Context(), r.PathValue("name"))
		if err != nil {
			return notFound(err)
		}
		var script dryrun.Script
		if err := admin.DecodeJSON(r, &script); err != nil {
			return err
		}
		if script.Call.CallID == "" {
			script.Call.CallID = "00000000-0000-4000-8000-000000000000"
		}
		res := dryrun.Run(context.WithoutCancel(r.Context()), d.Sandbox, p.Name, p.Source, d.LibDir, &script)
		out := map[string]any{"name": p.Name, "version": p.Version, "trace": res.Trace, "ok": res.Err == nil}
		if res.Err != nil {
			out["error"] = res.Err.Error()
		}
		admin.WriteJSON(w, http.StatusOK, out)
		return nil
	})
}

func notFound(err error) error {
	if errors.Is(err, app.ErrNoPolicy) {
		return admin.Errorf(http.StatusNotFound, "policy_not_found", "%v", err)
	}
	return err
}

func invalidPolicy(err error) error {
	msg := err.Error()
	var se *sandbox.Error
	if errors.As(err, &se) {
		msg = se.Error()
	}
	return &admin.Error{Status: http.StatusBadRequest, Code: "invalid_policy", Field: "source", Message: strings.TrimSpace(msg)}
}
