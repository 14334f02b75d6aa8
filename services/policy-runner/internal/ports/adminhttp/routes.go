// Package adminhttp is the policy-runner's admin REST (docs/api/policy-runner.yaml):
// policies (list, get, put with validation, versions, rollback, dry run)
// and the route table (list, replace, add, delete, resolve).
package adminhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/switchyard-voice/switchyard/pkg/admin"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/adapters/policystore"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/app"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/dryrun"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/sandbox"
)

// Deps are what the routes use; KV returns nil while the store is not a
// KV bucket (or not open yet).
type Deps struct {
	KV        func() *policystore.KV
	Routes    func() *policystore.Routes // nil until the route bucket is open
	Runner    *app.Runner
	Sandbox   *sandbox.Sandbox
	LibDir    string
	Schedules luaapi.Schedules
}

const maxPolicyBytes = 256 << 10

// Register adds the routes.
func Register(srv *admin.Server, d Deps) {
	registerRoutes(srv, d)
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
		if problems, err := luaapi.Vet(d.Sandbox, string(src)); err != nil {
			return invalidPolicy(err)
		} else if len(problems) > 0 {
			msgs := make([]string, len(problems))
			details := map[string]string{}
			for i, p := range problems {
				msgs[i] = p.String()
				details[fmt.Sprintf("line_%d", p.Line)] = p.Message
			}
			return &admin.Error{Status: http.StatusBadRequest, Code: "invalid_policy", Field: "source",
				Message: "the policy misuses the API: " + strings.Join(msgs, "; "), Details: details}
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
		res := dryrun.Run(context.WithoutCancel(r.Context()), d.Sandbox, p.Name, p.Source, dryrun.Options{LibDir: d.LibDir, Schedules: d.Schedules}, &script)
		out := map[string]any{"name": p.Name, "version": p.Version, "trace": res.Trace, "ok": res.Err == nil}
		if res.Err != nil {
			out["error"] = res.Err.Error()
		}
		admin.WriteJSON(w, http.StatusOK, out)
		return nil
	})
}

// registerRoutes adds the route-table endpoints.
func registerRoutes(srv *admin.Server, d Deps) {
	handle := func(pattern string, h func(w http.ResponseWriter, r *http.Request, rt *policystore.Routes) error) {
		srv.Handle(pattern, func(w http.ResponseWriter, r *http.Request) error {
			var rt *policystore.Routes
			if d.Routes != nil {
				rt = d.Routes()
			}
			if rt == nil {
				return admin.Errorf(http.StatusServiceUnavailable, "store_unavailable", "the route table is not open yet (NATS down?)")
			}
			return h(w, r, rt)
		})
	}
	update := func(w http.ResponseWriter, r *http.Request, rt *policystore.Routes, ifRev uint64, change func([]app.Route) ([]app.Route, error)) error {
		t, err := rt.Update(r.Context(), ifRev, app.ValidateRoutes, change)
		switch {
		case errors.Is(err, app.ErrBadRoute):
			return admin.Invalid("routes", "%v", err)
		case errors.Is(err, policystore.ErrConflict):
			return admin.Errorf(http.StatusConflict, "conflict", "%v", err)
		case err != nil:
			return err
		}
		admin.WriteJSON(w, http.StatusOK, t)
		return nil
	}
	handle("GET /v1/routes", func(w http.ResponseWriter, r *http.Request, rt *policystore.Routes) error {
		admin.WriteJSON(w, http.StatusOK, rt.Table())
		return nil
	})
	handle("PUT /v1/routes", func(w http.ResponseWriter, r *http.Request, rt *policystore.Routes) error {
		var in struct {
			Routes   []app.Route `json:"routes"`
			Revision uint64      `json:"revision"`
		}
		if err := admin.DecodeJSON(r, &in); err != nil {
			return err
		}
		if in.Routes == nil {
			return admin.Invalid("routes", "give the whole table as routes: [{pattern, policy}] ([] empties it)")
		}
		return update(w, r, rt, in.Revision, func([]app.Route) ([]app.Route, error) { return in.Routes, nil })
	})
	handle("POST /v1/routes", func(w http.ResponseWriter, r *http.Request, rt *policystore.Routes) error {
		var in app.Route
		if err := admin.DecodeJSON(r, &in); err != nil {
			return err
		}
		if _, err := app.ParseRoute(in); err != nil {
			return admin.Invalid("pattern", "%v", err)
		}
		return update(w, r, rt, 0, func(routes []app.Route) ([]app.Route, error) {
			for i := range routes {
				if routes[i].Pattern == in.Pattern {
					routes[i].Policy = in.Policy
					return routes, nil
				}
			}
			return append(routes, in), nil
		})
	})
	handle("DELETE /v1/routes/{pattern}", func(w http.ResponseWriter, r *http.Request, rt *policystore.Routes) error {
		pattern := r.PathValue("pattern")
		return update(w, r, rt, 0, func(routes []app.Route) ([]app.Route, error) {
			for i := range routes {
				if routes[i].Pattern == pattern {
					return append(routes[:i], routes[i+1:]...), nil
				}
			}
			return nil, admin.Errorf(http.StatusNotFound, "route_not_found", "no route has the pattern %q (URL-escape * ~ and /)", pattern)
		})
	})
	srv.Handle("GET /v1/routes/resolve", func(w http.ResponseWriter, r *http.Request) error {
		dest := r.URL.Query().Get("destination")
		if dest == "" || len(dest) > 64 {
			return admin.Invalid("destination", "give ?destination=<number> (at most 64 characters)")
		}
		call := luaapi.Call{DestinationNumber: dest}
		if p := r.URL.Query().Get("switchyard_policy"); p != "" {
			call.Variables = map[string]string{"switchyard_policy": p}
		}
		admin.WriteJSON(w, http.StatusOK, map[string]any{"destination": dest, "policy": d.Runner.Choose(call)})
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
