// Package adminhttp is the connector-proxy's admin REST API
// (docs/api/connector-proxy.yaml): POST /v1/query for operators, and
// GET/PUT/DELETE of connector configurations, whose secrets are never
// returned (GET shows them as ***redacted***; PUT them back as such to keep
// them).
package adminhttp

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/admin"

	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/adapters/configstore"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/app"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/domain"
)

// Deps are what the API needs.
type Deps struct {
	Engine *app.Engine
	// Store is the config store, nil until NATS could be reached.
	Store func() *configstore.Store
	// Check builds a connector from a configuration without installing
	// it, to refuse what cannot work (a private key that does not parse).
	Check func(domain.Connector) error
	// Apply installs a stored configuration on this instance at once (the
	// watch brings it to the others, and here again, harmlessly).
	Apply           func(c domain.Connector, revision uint64)
	Remove          func(org, name string)
	MaxRequestBytes int
	Now             func() time.Time
}

// Register adds the routes.
func Register(adm *admin.Server, d Deps) {
	if d.Now == nil {
		d.Now = time.Now
	}
	h := &handlers{d}
	adm.Handle("POST /v1/query", h.query)
	adm.Handle("GET /v1/connectors", h.list)
	adm.Handle("GET /v1/connectors/{org}/{name}", h.get)
	adm.Handle("PUT /v1/connectors/{org}/{name}", h.put)
	adm.Handle("DELETE /v1/connectors/{org}/{name}", h.delete)
}

type handlers struct{ d Deps }

func (h *handlers) store() (*configstore.Store, error) {
	st := h.d.Store()
	if st == nil {
		return nil, admin.Errorf(http.StatusServiceUnavailable, "unavailable", "the connector configurations are not reachable yet (NATS)")
	}
	return st, nil
}

func apiError(e *domain.Error) *admin.Error {
	return &admin.Error{Status: domain.HTTPStatus(e.Code), Code: e.Code, Message: e.Message, Field: e.Field, Details: e.Details}
}

func (h *handlers) query(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(h.d.MaxRequestBytes)+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return admin.Errorf(http.StatusRequestEntityTooLarge, "body_too_large", "request body exceeds %d bytes", mbe.Limit)
		}
		return admin.Errorf(http.StatusBadRequest, "invalid_body", "reading the body: %v", err)
	}
	req, err := domain.ParseRequest(body, h.d.MaxRequestBytes)
	if err != nil {
		return apiError(domain.AsError(err))
	}
	rep := h.d.Engine.Query(r.Context(), &req)
	status := http.StatusOK
	if rep.Error != nil {
		status = domain.HTTPStatus(rep.Error.Code)
	}
	admin.WriteJSON(w, status, rep)
	return nil
}

// view is a connector as the API shows it.
type view struct {
	domain.Connector
	Revision uint64      `json:"revision"`
	Status   *app.Status `json:"status,omitempty"` // this instance's live state
	Problem  string      `json:"problem,omitempty"`
}

func (h *handlers) view(c domain.Connector, rev uint64, problem error) view {
	v := view{Connector: c.Redact(), Revision: rev}
	if problem != nil {
		v.Problem = problem.Error()
	}
	if st, ok := h.d.Engine.Status(c.Org, c.Name); ok {
		v.Status = &st
	}
	return v
}

func (h *handlers) list(w http.ResponseWriter, r *http.Request) error {
	org, typ := r.URL.Query().Get("org"), r.URL.Query().Get("type")
	st, err := h.store()
	if err != nil {
		return err
	}
	all, err := st.List(r.Context())
	if err != nil {
		return admin.Errorf(http.StatusServiceUnavailable, "unavailable", "%v", err)
	}
	out := []view{}
	for _, c := range all {
		if (org != "" && c.Org != org) || (typ != "" && c.Connector.Type != typ) {
			continue
		}
		if c.Err != nil {
			c.Connector.Org, c.Connector.Name = c.Org, c.Name
		}
		out = append(out, h.view(c.Connector, c.Revision, c.Err))
	}
	admin.WriteJSON(w, http.StatusOK, map[string]any{"connectors": out})
	return nil
}

func pathNames(r *http.Request) (string, string, error) {
	org, name := r.PathValue("org"), r.PathValue("name")
	if !domain.ValidName(org) {
		return "", "", apiError(domain.Invalid("org", "org %q: want 1-64 letters, digits, '-' or '_'", org))
	}
	if !domain.ValidName(name) {
		return "", "", apiError(domain.Invalid("name", "name %q: want 1-64 letters, digits, '-' or '_'", name))
	}
	return org, name, nil
}

func notFound(org, name string) error {
	return admin.Errorf(http.StatusNotFound, "not_found", "org %s has no connector %q", org, name)
}

func (h *handlers) get(w http.ResponseWriter, r *http.Request) error {
	org, name, err := pathNames(r)
	if err != nil {
		return err
	}
	st, err := h.store()
	if err != nil {
		return err
	}
	c, rev, err := st.Get(r.Context(), org, name)
	switch {
	case errors.Is(err, configstore.ErrNotFound):
		return notFound(org, name)
	case err != nil && rev == 0:
		return admin.Errorf(http.StatusServiceUnavailable, "unavailable", "%v", err)
	}
	c.Org, c.Name = org, name
	w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(rev, 10)))
	admin.WriteJSON(w, http.StatusOK, h.view(c, rev, err))
	return nil
}

// ifMatch is the revision of an If-Match header ("" none).
func ifMatch(r *http.Request) (uint64, bool, error) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(strings.Trim(v, `"`), 10, 64)
	if err != nil || n == 0 {
		return 0, false, admin.Errorf(http.StatusBadRequest, "invalid_if_match", "If-Match %q: want the revision (the ETag of GET)", v)
	}
	return n, true, nil
}

func (h *handlers) put(w http.ResponseWriter, r *http.Request) error {
	org, name, err := pathNames(r)
	if err != nil {
		return err
	}
	expect, conditional, err := ifMatch(r)
	if err != nil {
		return err
	}
	var c domain.Connector
	if err := admin.DecodeJSON(r, &c); err != nil {
		return err
	}
	if (c.Org != "" && c.Org != org) || (c.Name != "" && c.Name != name) {
		return apiError(domain.Invalid("name", "the body names %s/%s but the path %s/%s", c.Org, c.Name, org, name))
	}
	c.Org, c.Name = org, name
	st, err := h.store()
	if err != nil {
		return err
	}
	old, rev, err := st.Get(r.Context(), org, name)
	var prev *domain.Connector
	switch {
	case errors.Is(err, configstore.ErrNotFound):
		rev = 0
	case err != nil && rev == 0:
		return admin.Errorf(http.StatusServiceUnavailable, "unavailable", "%v", err)
	case err == nil:
		prev = &old
	}
	if conditional && expect != rev {
		return admin.Errorf(http.StatusPreconditionFailed, "conflict", "connector %s/%s is at revision %d, not %d", org, name, rev, expect)
	}
	if err := c.KeepSecrets(prev); err != nil {
		return apiError(domain.AsError(err))
	}
	if err := c.Validate(); err != nil {
		return apiError(domain.AsError(err))
	}
	if err := h.d.Check(c); err != nil {
		return apiError(domain.AsError(err))
	}
	c.UpdatedAt = h.d.Now().UTC()
	newRev, err := st.Put(r.Context(), c, rev)
	if errors.Is(err, configstore.ErrConflict) {
		return admin.Errorf(http.StatusConflict, "conflict", "connector %s/%s changed meanwhile; GET it and try again", org, name)
	}
	if err != nil {
		return admin.Errorf(http.StatusServiceUnavailable, "unavailable", "%v", err)
	}
	h.d.Apply(c, newRev)
	status := http.StatusOK
	if rev == 0 {
		status = http.StatusCreated
	}
	w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(newRev, 10)))
	admin.WriteJSON(w, status, h.view(c, newRev, nil))
	return nil
}

func (h *handlers) delete(w http.ResponseWriter, r *http.Request) error {
	org, name, err := pathNames(r)
	if err != nil {
		return err
	}
	st, err := h.store()
	if err != nil {
		return err
	}
	if err := st.Delete(r.Context(), org, name); errors.Is(err, configstore.ErrNotFound) {
		return notFound(org, name)
	} else if err != nil {
		return admin.Errorf(http.StatusServiceUnavailable, "unavailable", "%v", err)
	}
	h.d.Remove(org, name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
