// Package adminhttp is the push-notifier's admin REST API
// (docs/api/push-notifier.yaml): the device registry of each user, a
// test push, and what became of a request.
package adminhttp

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/admin"
	"github.com/switchyard-voice/switchyard/pkg/events"

	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/adapters/registry"
	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/domain"
)

// Registry is the device registry.
type Registry interface {
	Register(ctx context.Context, user string, d domain.Device) (created bool, movedFrom string, err error)
	Unregister(ctx context.Context, user, token string) error
	Devices(ctx context.Context, user string) ([]domain.Device, error)
}

// Ledger reads a request's record.
type Ledger interface {
	Load(ctx context.Context, requestID string) (map[string]domain.Mark, error)
}

// Publisher stores an event.
type Publisher interface {
	Publish(ctx context.Context, subject string, e *events.Envelope) error
}

// Deps is what the routes use.
type Deps struct {
	Registry Registry
	Ledger   Ledger
	Pub      Publisher
	Source   string
	Defaults domain.Defaults
}

// Register adds the routes.
func Register(s *admin.Server, d Deps) {
	s.Handle("GET /v1/users/{user}/devices", d.list)
	s.Handle("PUT /v1/users/{user}/devices/{token}", d.put)
	s.Handle("DELETE /v1/users/{user}/devices/{token}", d.delete)
	s.Handle("POST /v1/users/{user}/pushes", d.push)
	s.Handle("GET /v1/pushes/{request}", d.request)
}

func user(r *http.Request) (string, error) {
	u := r.PathValue("user")
	if err := domain.ValidUser("user", u); err != nil {
		return "", mapErr(err)
	}
	return u, nil
}

func mapErr(err error) error {
	var fe *domain.FieldError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
		return admin.Invalid(fe.Field, "%s", fe.Problem)
	case errors.Is(err, registry.ErrNotFound):
		return admin.Errorf(http.StatusNotFound, "not_found", "%v", err)
	case errors.Is(err, registry.ErrTooMany):
		return admin.Errorf(http.StatusConflict, "too_many_devices", "%v; unregister one first", err)
	}
	return err
}

type deviceBody struct {
	Platform    string `json:"platform"`
	Environment string `json:"environment,omitempty"`
	Bundle      string `json:"bundle,omitempty"`
}

func (d Deps) put(w http.ResponseWriter, r *http.Request) error {
	u, err := user(r)
	if err != nil {
		return err
	}
	var b deviceBody
	if err := admin.DecodeJSON(r, &b); err != nil {
		return err
	}
	dev := domain.Device{Token: r.PathValue("token"), Platform: b.Platform, Environment: b.Environment, Bundle: b.Bundle, RegisteredAt: time.Now().UTC()}
	if err := dev.Validate(); err != nil {
		return mapErr(err)
	}
	created, moved, err := d.Registry.Register(r.Context(), u, dev)
	if err != nil {
		return mapErr(err)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	body := map[string]any{"user": u, "device": dev}
	if moved != "" {
		body["moved_from"] = moved
	}
	admin.WriteJSON(w, status, body)
	return nil
}

func (d Deps) delete(w http.ResponseWriter, r *http.Request) error {
	u, err := user(r)
	if err != nil {
		return err
	}
	if err := d.Registry.Unregister(r.Context(), u, r.PathValue("token")); err != nil {
		return mapErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (d Deps) list(w http.ResponseWriter, r *http.Request) error {
	u, err := user(r)
	if err != nil {
		return err
	}
	devs, err := d.Registry.Devices(r.Context(), u)
	if err != nil {
		return err
	}
	admin.WriteJSON(w, http.StatusOK, map[string]any{"user": u, "devices": devs})
	return nil
}

// push publishes a push.requested for the user (an operator's test push,
// or a client without NATS).
func (d Deps) push(w http.ResponseWriter, r *http.Request) error {
	u, err := user(r)
	if err != nil {
		return err
	}
	var b domain.RequestData
	if err := admin.DecodeJSON(r, &b); err != nil {
		return err
	}
	if b.User == "" {
		b.User = u
	}
	if b.User != u {
		return admin.Invalid("user", "%q differs from the path's user %q", b.User, u)
	}
	id := events.NewID()
	now := time.Now().UTC()
	req, err := b.Validate(id, now, d.Defaults)
	if err != nil {
		return mapErr(err)
	}
	subject := "push." + u + ".requested"
	e, err := events.New(id, d.Source, domain.TypeRequested, subject, req.CallID, req.Wire())
	if err != nil {
		return err
	}
	e.Time = now
	if err := d.Pub.Publish(r.Context(), subject, e); err != nil {
		return admin.Errorf(http.StatusServiceUnavailable, "nats_unavailable", "push request not stored: %v", err)
	}
	admin.WriteJSON(w, http.StatusAccepted, map[string]any{"request_id": req.ID, "subject": subject, "expires_at": req.ExpiresAt})
	return nil
}

// request shows the record of a request: per device the claim or outcome.
func (d Deps) request(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("request")
	if !domain.ValidRequestID(id) {
		return admin.Invalid("request", "%q is not a request id", id)
	}
	marks, err := d.Ledger.Load(r.Context(), id)
	if err != nil {
		return err
	}
	if len(marks) == 0 {
		return admin.Errorf(http.StatusNotFound, "not_found", "no record of request %s (unknown, not handled yet, or older than its expiry plus a day)", id)
	}
	admin.WriteJSON(w, http.StatusOK, map[string]any{"request_id": id, "devices": marks})
	return nil
}
