// Package push asks the push-notifier to wake a mobile agent's app: a
// push.requested event on the PUSH stream (docs/events.md, "PUSH"), sent
// before the agent's phone is rung so the app is awake to take the call.
package push

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/bus"
	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/distributor"
)

// requestData is push.requested's data (the push-notifier's contract).
type requestData struct {
	RequestID  string         `json:"request_id"`
	User       string         `json:"user"`
	Type       string         `json:"type"`
	CallID     string         `json:"call_id"`
	Priority   int            `json:"priority"`
	TTLSeconds int            `json:"ttl_seconds"`
	CollapseID string         `json:"collapse_id"`
	Data       map[string]any `json:"data"`
}

// JetStream publishes wake-ups on the PUSH stream.
type JetStream struct {
	JS       jetstream.JetStream
	Instance string
}

// Wake stores push.requested; the stream de-duplicates a retried request.
func (p *JetStream) Wake(ctx context.Context, r distributor.Wake) error {
	subject := "push." + r.User + ".requested"
	data := requestData{
		RequestID: r.ID, User: r.User, Type: "voip", CallID: r.CallID, Priority: 10,
		TTLSeconds: max(1, int(r.TTL/time.Second)), CollapseID: r.CallID,
		Data: map[string]any{"call_id": r.CallID, "agent": r.Agent, "queue": r.Queue,
			"caller_id_number": r.CallerNumber, "caller_id_name": r.CallerName},
	}
	e, err := events.New(r.ID, "switchyard/queue-distributor/"+p.Instance, "push.requested", subject, r.CallID, data)
	if err != nil {
		return fmt.Errorf("push for %s: %w", r.User, err)
	}
	if _, err := bus.Publish(ctx, p.JS, subject, e); err != nil {
		return fmt.Errorf("push for %s: %w", r.User, err)
	}
	return nil
}
