// Package domain holds the push-notifier's rules without I/O: what a
// push.requested and a device registration may contain, the payload a
// push carries, how a provider's answer is judged (delivered, retry,
// token dead, rejected) and how long to back off.
package domain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchyard-voice/switchyard/pkg/events"
)

// Event types and subject events of the PUSH stream.
const (
	TypeRequested    = "push.requested"
	TypeSent         = "push.sent"
	TypeFailed       = "push.failed"
	TypeTokenRemoved = "push.token.removed"
	TypeDeadLettered = "push.deadlettered"
)

// Push types.
const (
	VoIP  = "voip"
	Alert = "alert"
)

// Limits of a request.
const (
	MaxDataBytes  = 2048
	MaxTitleBytes = 256
	MaxBodyBytes  = 1024
	MaxCollapseID = 64
	MaxTTL        = 24 * time.Hour
	// APNs' payload limits; FCM's 4 KiB is checked against the same
	// payload.
	MaxVoIPPayload  = 5120
	MaxAlertPayload = 4096
)

// FieldError is a validation failure naming the field.
type FieldError struct{ Field, Problem string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

var (
	userRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_@-]{0,63}$`)
	requestIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	callRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)
)

// ValidUser checks a user id: it becomes one NATS subject token
// (push.<user>.…) and one Redis key part; the same rule as the
// queue-distributor's agent ids and push_user.
func ValidUser(field, s string) error {
	if !userRE.MatchString(s) {
		return fieldErr(field, "%q is not a valid user id: 1-64 letters, digits, '_', '-' or '@', starting with a letter or digit", s)
	}
	return nil
}

// RequestData is the data of a push.requested event (docs/events.md).
type RequestData struct {
	RequestID  string          `json:"request_id,omitempty"`
	User       string          `json:"user"`
	Type       string          `json:"type,omitempty"`
	CallID     string          `json:"call_id,omitempty"`
	Priority   int             `json:"priority,omitempty"`
	TTLSeconds int             `json:"ttl_seconds,omitempty"`
	ExpiresAt  *time.Time      `json:"expires_at,omitempty"`
	CollapseID string          `json:"collapse_id,omitempty"`
	Title      string          `json:"title,omitempty"`
	Body       string          `json:"body,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
}

// Request is a validated push request.
type Request struct {
	ID          string // idempotency key: data.request_id, else the event id
	EventID     string
	User        string
	Type        string
	CallID      string
	Priority    int
	RequestedAt time.Time
	ExpiresAt   time.Time
	CollapseID  string
	Title       string
	Body        string
	Data        json.RawMessage // a JSON object or nil
}

// Defaults fill what a request leaves out.
type Defaults struct {
	VoIPTTL  time.Duration // default 30 s: a ringing call
	AlertTTL time.Duration // default 1 h
}

func (d Defaults) ttl(typ string) time.Duration {
	if typ == VoIP {
		if d.VoIPTTL > 0 {
			return d.VoIPTTL
		}
		return 30 * time.Second
	}
	if d.AlertTTL > 0 {
		return d.AlertTTL
	}
	return time.Hour
}

// SubjectUser returns the <user> of push.<user>.<event>, or "".
func SubjectUser(subject string) string {
	parts := strings.Split(subject, ".")
	if len(parts) < 3 || parts[0] != "push" {
		return ""
	}
	return parts[1]
}

// DecodeRequest parses a push.requested event as it arrives from the PUSH
// stream on subject (push.<user>.requested; "" skips the check that the
// subject's user is the data's). now stands in for a missing event time.
func DecodeRequest(subject string, raw []byte, now time.Time, def Defaults) (Request, error) {
	env, err := events.Parse(raw)
	if err != nil {
		return Request{}, fieldErr("event", "%v", err)
	}
	if env.Type != TypeRequested {
		return Request{}, fieldErr("type", "event type %q, want %q", env.Type, TypeRequested)
	}
	var d RequestData
	if err := json.Unmarshal(env.Data, &d); err != nil {
		return Request{}, fieldErr("data", "not a push request object: %v", err)
	}
	at := env.Time
	if at.IsZero() {
		at = now
	}
	r, err := d.Validate(env.ID, at, def)
	if err != nil {
		return Request{}, err
	}
	if su := SubjectUser(subject); subject != "" && su != r.User {
		return Request{}, fieldErr("user", "%q differs from the subject's user %q", r.User, su)
	}
	if r.CallID == "" && env.CallID != "" && callRE.MatchString(env.CallID) {
		r.CallID = env.CallID
	}
	return r, nil
}

// Validate checks the data and fills defaults; eventID is the fallback
// request id and requestedAt the time a relative TTL counts from.
func (d RequestData) Validate(eventID string, requestedAt time.Time, def Defaults) (Request, error) {
	r := Request{ID: d.RequestID, EventID: eventID, User: d.User, Type: d.Type, CallID: d.CallID, Priority: d.Priority,
		RequestedAt: requestedAt, CollapseID: d.CollapseID, Title: d.Title, Body: d.Body}
	if r.ID == "" {
		r.ID = eventID
	}
	if !requestIDRE.MatchString(r.ID) {
		return Request{}, fieldErr("request_id", "%q is not a request id: 1-128 letters, digits, '.', '_', ':' or '-'", truncate(r.ID))
	}
	if err := ValidUser("user", r.User); err != nil {
		return Request{}, err
	}
	switch r.Type {
	case "":
		r.Type = VoIP
	case VoIP, Alert:
	default:
		return Request{}, fieldErr("type", "%q is not a push type: voip or alert", truncate(r.Type))
	}
	if r.CallID != "" && !callRE.MatchString(r.CallID) {
		return Request{}, fieldErr("call_id", "%q is not a call uuid", truncate(r.CallID))
	}
	switch r.Priority {
	case 0:
		r.Priority = 10
	case 1, 5, 10:
	default:
		return Request{}, fieldErr("priority", "%d is not an APNs priority: 10 (immediate), 5 or 1", r.Priority)
	}
	switch {
	case d.ExpiresAt != nil && d.TTLSeconds != 0:
		return Request{}, fieldErr("ttl_seconds", "give expires_at or ttl_seconds, not both")
	case d.ExpiresAt != nil:
		r.ExpiresAt = d.ExpiresAt.UTC()
		if r.ExpiresAt.Sub(requestedAt) > MaxTTL {
			return Request{}, fieldErr("expires_at", "more than %v after the request", MaxTTL)
		}
	case d.TTLSeconds < 0 || time.Duration(d.TTLSeconds)*time.Second > MaxTTL:
		return Request{}, fieldErr("ttl_seconds", "%d is out of range 1..%d", d.TTLSeconds, int(MaxTTL.Seconds()))
	case d.TTLSeconds > 0:
		r.ExpiresAt = requestedAt.Add(time.Duration(d.TTLSeconds) * time.Second).UTC()
	default:
		r.ExpiresAt = requestedAt.Add(def.ttl(r.Type)).UTC()
	}
	if len(r.CollapseID) > MaxCollapseID || !utf8.ValidString(r.CollapseID) {
		return Request{}, fieldErr("collapse_id", "longer than %d bytes or not UTF-8", MaxCollapseID)
	}
	if len(r.Title) > MaxTitleBytes || !utf8.ValidString(r.Title) {
		return Request{}, fieldErr("title", "longer than %d bytes or not UTF-8", MaxTitleBytes)
	}
	if len(r.Body) > MaxBodyBytes || !utf8.ValidString(r.Body) {
		return Request{}, fieldErr("body", "longer than %d bytes or not UTF-8", MaxBodyBytes)
	}
	if r.Type == Alert && r.Title == "" && r.Body == "" {
		return Request{}, fieldErr("body", "an alert push needs a title or a body")
	}
	if len(d.Data) > 0 && !bytes.Equal(bytes.TrimSpace(d.Data), []byte("null")) {
		if len(d.Data) > MaxDataBytes {
			return Request{}, fieldErr("data", "larger than %d bytes", MaxDataBytes)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(d.Data, &obj); err != nil {
			return Request{}, fieldErr("data", "not a JSON object")
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, d.Data); err != nil {
			return Request{}, fieldErr("data", "not a JSON object")
		}
		r.Data = buf.Bytes()
	}
	if n, max := len(APNsPayload(r)), r.MaxPayload(); n > max {
		return Request{}, fieldErr("data", "the push payload would be %d bytes; APNs takes at most %d", n, max)
	}
	return r, nil
}

// MaxPayload is APNs' limit for the request's push type.
func (r Request) MaxPayload() int {
	if r.Type == VoIP {
		return MaxVoIPPayload
	}
	return MaxAlertPayload
}

// Wire is the request as push.requested data again (the admin API
// publishes it; tests round-trip it).
func (r Request) Wire() RequestData {
	exp := r.ExpiresAt
	return RequestData{RequestID: r.ID, User: r.User, Type: r.Type, CallID: r.CallID, Priority: r.Priority,
		ExpiresAt: &exp, CollapseID: r.CollapseID, Title: r.Title, Body: r.Body, Data: r.Data}
}

// Expired reports whether the push may no longer be sent at now.
func (r Request) Expired(now time.Time) bool { return !now.Before(r.ExpiresAt) }

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// ValidRequestID reports whether s may be a request id.
func ValidRequestID(s string) bool { return requestIDRE.MatchString(s) }
