// Package admin is the admin HTTP surface every Switchyard service shares:
// /healthz, /readyz and /metrics without a token, everything under /v1/
// behind a bearer token, JSON errors of one shape, bounded and strict JSON
// bodies, and no panic ever reaching the client.
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Error is an API error: its status, a snake_case code and a sentence.
type Error struct {
	Status  int
	Code    string
	Message string
	Field   string            // the offending field for validation errors
	Details map[string]string // extra facts, e.g. a FreeSWITCH cause
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf builds an *Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid is a 400 naming the field at fault.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_" + field, Field: field, Message: fmt.Sprintf(format, args...)}
}

// HandlerFunc is an API handler: it writes a success itself, or returns an
// error that Server turns into the JSON error shape.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Check is one readiness dependency.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Options configure a Server.
type Options struct {
	Token    string // required for /v1/
	Registry *prometheus.Registry
	Logger   *slog.Logger
	Ready    []Check
	// ReadyDetail adds service-specific detail (e.g. per-node status) to
	// the /readyz body.
	ReadyDetail func(ctx context.Context) any
	// MaxBodyBytes bounds request bodies. Default 1 MiB.
	MaxBodyBytes int64
	// BodyTimeout bounds the time a client takes to send a request's body
	// (a slow sender holds a connection and a goroutine). Default 30 s.
	// It is per request, not the server's ReadTimeout, which would also
	// cancel long-lived responses (server-sent events) after that long.
	BodyTimeout time.Duration
}

// Server routes the admin endpoints.
type Server struct {
	opts Options
	mux  *http.ServeMux
}

// New builds the server; register API routes with Handle.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.BodyTimeout <= 0 {
		opts.BodyTimeout = 30 * time.Second
	}
	s := &Server{opts: opts, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{}))
	s.mux.Handle("/v1/", s.wrap(func(w http.ResponseWriter, r *http.Request) error {
		return Errorf(http.StatusNotFound, "not_found", "no such endpoint: %s %s", r.Method, r.URL.Path)
	}))
	return s
}

// Handle registers an API route, e.g. "GET /v1/nodes"; it requires the
// bearer token.
func (s *Server) Handle(pattern string, h HandlerFunc) {
	if !strings.Contains(pattern, " /v1/") {
		panic("admin: API routes live under /v1/: " + pattern)
	}
	s.mux.Handle(pattern, s.wrap(h))
}

// Handler is the http.Handler to serve.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) wrap(h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				s.opts.Logger.Error("admin handler panicked", "path", r.URL.Path, "panic", fmt.Sprint(p))
				writeError(w, Errorf(http.StatusInternalServerError, "internal", "internal error"))
			}
		}()
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="switchyard"`)
			writeError(w, Errorf(http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token in the Authorization header"))
			return
		}
		if r.ContentLength != 0 {
			// Not supported by every ResponseWriter (a test recorder): then
			// there is no slow client to bound.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.opts.BodyTimeout))
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
		if err := h(w, r); err != nil {
			var ae *Error
			if !errors.As(err, &ae) {
				s.opts.Logger.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
				ae = Errorf(http.StatusInternalServerError, "internal", "internal error: %v", err)
			}
			writeError(w, ae)
		}
	})
}

func (s *Server) authorized(r *http.Request) bool {
	if s.opts.Token == "" {
		return false // no token configured: nothing under /v1/ is open
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.Token)) == 1
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	body := map[string]any{}
	failing := map[string]string{}
	for _, c := range s.opts.Ready {
		if err := c.Check(ctx); err != nil {
			failing[c.Name] = err.Error()
		}
	}
	if s.opts.ReadyDetail != nil {
		body["detail"] = s.opts.ReadyDetail(ctx)
	}
	if len(failing) > 0 {
		body["status"] = "not_ready"
		body["failing"] = failing
		WriteJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	body["status"] = "ready"
	WriteJSON(w, http.StatusOK, body)
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *Error) {
	body := map[string]any{"code": e.Code, "message": e.Message}
	if e.Field != "" {
		body["field"] = e.Field
	}
	if len(e.Details) > 0 {
		body["details"] = e.Details
	}
	WriteJSON(w, e.Status, map[string]any{"error": body})
}

// DecodeJSON reads a bounded, strict JSON body into v: unknown fields and
// trailing data are refused with a 400 that says what was wrong.
func DecodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(err, &mbe):
			return Errorf(http.StatusRequestEntityTooLarge, "body_too_large", "request body exceeds %d bytes", mbe.Limit)
		case errors.As(err, &ne) && ne.Timeout():
			return Errorf(http.StatusRequestTimeout, "body_timeout", "the request body did not arrive in time; send it whole")
		case errors.Is(err, io.EOF):
			return Errorf(http.StatusBadRequest, "invalid_body", "request body is empty; send a JSON object")
		default:
			return Errorf(http.StatusBadRequest, "invalid_body", "request body is not valid JSON for this endpoint: %v", err)
		}
	}
	if dec.More() {
		return Errorf(http.StatusBadRequest, "invalid_body", "request body has data after the JSON object")
	}
	return nil
}
