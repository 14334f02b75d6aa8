// Package connector is connector.query over the connector-proxy's NATS
// request-reply subject (docs/events.md, "connector.query"): the call's
// tenant is the org, and the policy's deadline travels with the request
// so the proxy answers — with a result, a stale one, or an error — in
// time for the caller to be routed anyway.
package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
)

// Subject is the connector-proxy's.
const Subject = "connector.query"

// replyMargin is how much longer than its deadline a request waits: the
// proxy answers by the deadline, and the answer needs to travel back.
const replyMargin = 50 * time.Millisecond

// Error is the proxy's refusal; Code is what a policy branches on
// (timeout, breaker_open, not_found, …).
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Client is luaapi.Connector for one tenant.
type Client struct {
	nc  *nats.Conn
	org string
}

// New asks on nc for org (the call's tenant).
func New(nc *nats.Conn, org string) *Client { return &Client{nc: nc, org: org} }

type request struct {
	Org       string         `json:"org"`
	Connector string         `json:"connector"`
	Op        string         `json:"op,omitempty"`
	Query     string         `json:"query,omitempty"`
	Params    map[string]any `json:"params,omitempty"`
	Object    string         `json:"object,omitempty"`
	ID        string         `json:"id,omitempty"`
	Fields    []string       `json:"fields,omitempty"`
	Values    map[string]any `json:"values,omitempty"`
	TimeoutMS int64          `json:"timeout_ms"`
	CallID    string         `json:"call_id,omitempty"`
}

type reply struct {
	Result json.RawMessage `json:"result"`
	Error  *Error          `json:"error"`
}

// Query asks the proxy and returns the decoded result.
func (c *Client) Query(ctx context.Context, call luaapi.Call, q luaapi.ConnectorQuery) (any, error) {
	timeout := q.Timeout
	if timeout <= 0 {
		timeout = luaapi.DefaultConnectorTimeout
	}
	// The run's own deadline, if nearer, is the budget.
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	body, err := json.Marshal(request{Org: c.org, Connector: q.Connector, Op: q.Op, Query: q.Query, Params: q.Params,
		Object: q.Object, ID: q.ID, Fields: q.Fields, Values: q.Values, TimeoutMS: timeout.Milliseconds(), CallID: call.CallID})
	if err != nil {
		return nil, fmt.Errorf("connector request: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, timeout+replyMargin)
	defer cancel()
	msg, err := c.nc.RequestWithContext(rctx, Subject, body)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, fmt.Errorf("%w: no connector-proxy answers %s", luaapi.ErrNotAvailable, Subject)
	case errors.Is(err, context.DeadlineExceeded):
		return nil, &Error{Code: "timeout", Message: fmt.Sprintf("no answer within %v", timeout)}
	case err != nil:
		return nil, fmt.Errorf("%s: %w", Subject, err)
	}
	var r reply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return nil, fmt.Errorf("%s: unreadable reply: %w", Subject, err)
	}
	if r.Error != nil {
		return nil, r.Error
	}
	var v any
	if err := json.Unmarshal(r.Result, &v); err != nil {
		return nil, fmt.Errorf("%s: unreadable result: %w", Subject, err)
	}
	return v, nil
}
