// Package queuectl is queue.enqueue over the queue-distributor's
// queuectl subjects (docs/events.md, "queuectl"): it joins the caller to a
// queue, then waits for the outcome the distributor publishes on
// queuectl.outcome.<call-uuid>. A published outcome can be missed (NATS
// core has no replay, and a reconnect drops what was in flight), so the
// wait also asks queuectl.status every Poll; the distributor keeps a
// member's outcome for ten minutes to answer it.
package queuectl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
)

// Subjects (the distributor's, services/queue-distributor/internal/ports/queuectl).
const (
	subjEnqueue   = "queuectl.enqueue"
	subjStatus    = "queuectl.status"
	outcomePrefix = "queuectl.outcome."
)

// ErrRefused is a request the distributor turned down; the error says why.
var ErrRefused = errors.New("refused by the queue-distributor")

// Client is luaapi.Queue over NATS.
type Client struct {
	nc *nats.Conn
	// Poll is how often a waiting caller's status is asked.
	Poll time.Duration
	// RequestTimeout bounds one request to the distributor.
	RequestTimeout time.Duration
	// MaxUnknown is how many status answers in a row may say "not found"
	// before the wait gives up: the distributor lost the caller (its
	// projection was flushed and not yet rebuilt, say).
	MaxUnknown int
}

// New is a Client with the defaults: poll every 5 s, 5 s per request.
func New(nc *nats.Conn) *Client {
	return &Client{nc: nc, Poll: 5 * time.Second, RequestTimeout: 5 * time.Second, MaxUnknown: 3}
}

type enqueueRequest struct {
	CallID       string         `json:"call_id"`
	Queue        string         `json:"queue"`
	Node         string         `json:"node"`
	Priority     int            `json:"priority,omitempty"`
	Skills       map[string]int `json:"skills,omitempty"`
	CallerNumber string         `json:"caller_id_number,omitempty"`
	CallerName   string         `json:"caller_id_name,omitempty"`
	MaxWait      int            `json:"max_wait_seconds,omitempty"`
}

type reply struct {
	State   string                `json:"state"`
	Outcome *luaapi.EnqueueResult `json:"outcome"`
	Error   *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Enqueue joins call to req.Queue and returns when the caller leaves the
// queue: answered (after the agent's call ends), timeout, exit_key,
// abandoned, no_agents or overflowed.
func (c *Client) Enqueue(ctx context.Context, call luaapi.Call, req luaapi.EnqueueRequest) (luaapi.EnqueueResult, error) {
	// Subscribe before joining: an outcome can come at once (no agents
	// logged in is answered in the reply, but an agent may be waiting).
	outcomes := make(chan *nats.Msg, 4)
	sub, err := c.nc.ChanSubscribe(outcomePrefix+call.CallID, outcomes)
	if err != nil {
		return luaapi.EnqueueResult{}, fmt.Errorf("subscribe to the queue outcome: %w", err)
	}
	defer sub.Unsubscribe()

	r, err := c.request(ctx, subjEnqueue, enqueueRequest{
		CallID: call.CallID, Queue: req.Queue, Node: call.Node, Priority: req.Priority, Skills: req.Skills,
		CallerNumber: call.CallerIDNumber, CallerName: call.CallerIDName, MaxWait: int(req.Timeout / time.Second),
	})
	if err != nil {
		return luaapi.EnqueueResult{}, fmt.Errorf("join queue %s: %w", req.Queue, err)
	}
	if r.Outcome != nil {
		return *r.Outcome, nil
	}

	tick := time.NewTicker(c.Poll)
	defer tick.Stop()
	unknown := 0
	for {
		select {
		case <-ctx.Done():
			return luaapi.EnqueueResult{}, fmt.Errorf("waiting in queue %s: %w", req.Queue, ctx.Err())
		case m := <-outcomes:
			var res luaapi.EnqueueResult
			if err := json.Unmarshal(m.Data, &res); err != nil || res.Outcome == "" {
				continue // not ours to fail on: the status poll will tell
			}
			return res, nil
		case <-tick.C:
			r, err := c.request(ctx, subjStatus, map[string]string{"call_id": call.CallID})
			switch {
			case err == nil && r.Outcome != nil:
				return *r.Outcome, nil
			case errors.Is(err, errNotFound):
				if unknown++; unknown >= c.MaxUnknown {
					return luaapi.EnqueueResult{}, fmt.Errorf("waiting in queue %s: the queue-distributor no longer knows this call", req.Queue)
				}
			case err == nil:
				unknown = 0
			}
			// Other errors (a distributor restarting) are waited out: the
			// caller is still in the queue's stream.
		}
	}
}

var errNotFound = errors.New("not found")

func (c *Client) request(ctx context.Context, subj string, body any) (reply, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return reply{}, err
	}
	rctx, cancel := context.WithTimeout(ctx, c.RequestTimeout)
	defer cancel()
	msg, err := c.nc.RequestWithContext(rctx, subj, b)
	if errors.Is(err, nats.ErrNoResponders) {
		return reply{}, fmt.Errorf("%w: no queue-distributor answers %s", luaapi.ErrNotAvailable, subj)
	}
	if err != nil {
		return reply{}, fmt.Errorf("%s: %w", subj, err)
	}
	var r reply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return reply{}, fmt.Errorf("%s: unreadable reply: %w", subj, err)
	}
	if r.Error != nil {
		if r.Error.Code == "not_found" {
			return reply{}, fmt.Errorf("%w: %s", errNotFound, r.Error.Message)
		}
		return reply{}, fmt.Errorf("%w: %s: %s", ErrRefused, r.Error.Code, r.Error.Message)
	}
	return r, nil
}
