// Package push is push.notify over the PUSH stream: a push.requested
// event the push-notifier consumes (docs/events.md, "PUSH"). The policy
// gets the request id as soon as JetStream has stored the request;
// delivery, retries and dead tokens are the push-notifier's.
package push

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/bus"
	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
)

// JetStream publishes push requests.
type JetStream struct {
	JS       jetstream.JetStream
	Instance string
	// Timeout bounds the publish (the policy waits for it).
	Timeout time.Duration
}

type requestData struct {
	RequestID  string         `json:"request_id"`
	User       string         `json:"user"`
	Type       string         `json:"type"`
	CallID     string         `json:"call_id,omitempty"`
	Priority   int            `json:"priority,omitempty"`
	TTLSeconds int            `json:"ttl_seconds,omitempty"`
	CollapseID string         `json:"collapse_id,omitempty"`
	Title      string         `json:"title,omitempty"`
	Body       string         `json:"body,omitempty"`
	Data       map[string]any `json:"data,omitempty"`
}

// Notify stores push.requested for req.User and returns its request id.
func (p *JetStream) Notify(ctx context.Context, call luaapi.Call, req luaapi.PushRequest) (string, error) {
	id := req.ID
	if id == "" {
		id = events.NewID()
	}
	prio := 5
	if req.Type == "voip" {
		prio = 10 // a ringing call: deliver now
	}
	data := requestData{RequestID: id, User: req.User, Type: req.Type, CallID: call.CallID, Priority: prio,
		TTLSeconds: int(req.TTL / time.Second), CollapseID: req.CollapseID, Title: req.Title, Body: req.Body, Data: req.Data}
	subject := "push." + req.User + ".requested"
	e, err := events.New(id, "switchyard/policy-runner/"+p.Instance, "push.requested", subject, call.CallID, data)
	if err != nil {
		return "", err
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := bus.Publish(pctx, p.JS, subject, e); err != nil {
		return "", fmt.Errorf("store the push request: %w", err)
	}
	return id, nil
}
