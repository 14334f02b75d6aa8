// Package queuectl serves the caller side of queues over NATS
// request-reply (docs/events.md, "queuectl"): a policy's queue.enqueue
// joins a call to a queue, then waits for queuectl.outcome.<call-uuid>,
// asking queuectl.status now and then in case a notification was missed.
package queuectl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/distributor"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/projection"
)

// Subjects.
const (
	Enqueue       = "queuectl.enqueue"
	Status        = "queuectl.status"
	OutcomePrefix = "queuectl.outcome." // + call uuid: published, not requested
	CancelPrefix  = "queuectl.cancel."  // + call uuid: between distributors
	maxRequest    = 64 << 10
)

// EnqueueRequest joins a call to a queue.
type EnqueueRequest struct {
	CallID       string         `json:"call_id"`
	Queue        string         `json:"queue"`
	Node         string         `json:"node"`
	Priority     int            `json:"priority,omitempty"`
	Skills       map[string]int `json:"skills,omitempty"`
	CallerNumber string         `json:"caller_id_number,omitempty"`
	CallerName   string         `json:"caller_id_name,omitempty"`
	MaxWait      int            `json:"max_wait_seconds,omitempty"`
}

// Reply is every queuectl reply.
type Reply struct {
	State   string                 `json:"state,omitempty"` // waiting, offered, done
	Member  *projection.MemberView `json:"member,omitempty"`
	Outcome *distributor.Outcome   `json:"outcome,omitempty"`
	Error   *Error                 `json:"error,omitempty"`
}

// Error is a refused request.
type Error struct {
	Code    string `json:"code"` // invalid_request, not_found, unavailable
	Message string `json:"message"`
}

// Server answers queuectl requests; every distributor instance serves
// them (queue group) and any can answer for any call.
type Server struct {
	D     *distributor.Distributor
	Store *projection.Store
	NC    *nats.Conn
	Log   *slog.Logger
}

// Start subscribes; the returned func unsubscribes.
func (s *Server) Start() (func(), error) {
	var subs []*nats.Subscription
	for subj, h := range map[string]func(context.Context, []byte) Reply{Enqueue: s.enqueue, Status: s.status} {
		sub, err := s.NC.QueueSubscribe(subj, "queue-distributor", func(m *nats.Msg) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var r Reply
			if len(m.Data) > maxRequest {
				r = Reply{Error: &Error{Code: "invalid_request", Message: fmt.Sprintf("request of %d bytes exceeds %d", len(m.Data), maxRequest)}}
			} else {
				r = h(ctx, m.Data)
			}
			b, _ := json.Marshal(r)
			_ = m.Respond(b)
		})
		if err != nil {
			return nil, fmt.Errorf("subscribe %s: %w", subj, err)
		}
		subs = append(subs, sub)
	}
	sub, err := s.NC.Subscribe(CancelPrefix+"*", func(m *nats.Msg) {
		s.D.CancelLocal(m.Subject[len(CancelPrefix):])
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe %s*: %w", CancelPrefix, err)
	}
	subs = append(subs, sub)
	return func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}, nil
}

func refuse(err error) Reply {
	var fe *domain.FieldError
	switch {
	case errors.As(err, &fe):
		return Reply{Error: &Error{Code: "invalid_request", Message: err.Error()}}
	case errors.Is(err, projection.ErrNotFound):
		return Reply{Error: &Error{Code: "not_found", Message: err.Error()}}
	}
	// ErrRebuilding among others: the caller side waits and asks again.
	return Reply{Error: &Error{Code: "unavailable", Message: err.Error()}}
}

func (s *Server) enqueue(ctx context.Context, body []byte) Reply {
	var req EnqueueRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Reply{Error: &Error{Code: "invalid_request", Message: "enqueue request: " + err.Error()}}
	}
	if done := s.done(ctx, req.CallID); done != nil && done.Outcome.Outcome == domain.OutcomeAbandoned {
		// The caller hung up: queueing the call now would ring an agent
		// for nobody. Any other outcome leaves a caller on the line whom
		// the policy may queue again.
		return *done
	}
	if agent, err := s.Store.AgentInCall(ctx, req.CallID); err == nil && agent != "" {
		// Bridged to an agent of this join (a retried request, its first
		// answer lost): joining again would offer a caller who is talking.
		// The outcome comes when the agent's call ends.
		return Reply{State: "bridged"}
	}
	m, err := s.D.Join(ctx, domain.Member{CallID: req.CallID, Queue: req.Queue, Node: req.Node, Priority: req.Priority,
		Skills: req.Skills, CallerNumber: req.CallerNumber, CallerName: req.CallerName, MaxWait: req.MaxWait})
	if errors.Is(err, distributor.ErrNoAgents) {
		return Reply{State: "done", Outcome: &distributor.Outcome{Outcome: domain.OutcomeNoAgents, Queue: req.Queue}}
	}
	if err != nil {
		return refuse(err)
	}
	return Reply{State: m.State, Member: &m}
}

// done is the saved outcome of a call that already left its queue.
func (s *Server) done(ctx context.Context, callID string) *Reply {
	o, err := s.D.KeptOutcome(ctx, callID)
	if err != nil || o == nil {
		return nil
	}
	return &Reply{State: "done", Outcome: o}
}

func (s *Server) status(ctx context.Context, body []byte) Reply {
	var req struct {
		CallID string `json:"call_id"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return Reply{Error: &Error{Code: "invalid_request", Message: "status request: " + err.Error()}}
	}
	if err := domain.ValidCallID("call_id", req.CallID); err != nil {
		return refuse(err)
	}
	if err := s.D.Steady(ctx); err != nil {
		return refuse(err)
	}
	r := s.lookUp(ctx, req.CallID)
	if r.Error != nil && r.Error.Code == "not_found" {
		// Not found in a projection that lost its state (Redis flushed)
		// is no answer: wait for the rebuild and look again.
		if retry, err := s.D.Confirm(ctx, projection.ErrNotFound); retry {
			r = s.lookUp(ctx, req.CallID)
		} else if !errors.Is(err, projection.ErrNotFound) {
			return refuse(err)
		}
	}
	return r
}

// lookUp is a call's state in its queue.
func (s *Server) lookUp(ctx context.Context, callID string) Reply {
	if done := s.done(ctx, callID); done != nil {
		return *done
	}
	m, err := s.Store.Member(ctx, callID)
	if err != nil {
		if agent, aerr := s.Store.AgentInCall(ctx, callID); aerr == nil && agent != "" {
			return Reply{State: "bridged"}
		}
		return refuse(err)
	}
	return Reply{State: m.State, Member: &m}
}

// Notifier publishes outcomes and offer cancellations.
type Notifier struct {
	NC    *nats.Conn
	Store *projection.Store
	Log   *slog.Logger
}

// Outcome publishes a member's outcome (the projection keeps it for
// queuectl.status: projection.Store.LoadOutcome).
func (n *Notifier) Outcome(callID string, o distributor.Outcome) {
	b, _ := json.Marshal(o)
	if err := n.NC.Publish(OutcomePrefix+callID, b); err != nil {
		n.Log.Warn("cannot publish outcome", "callid", callID, "err", err)
	}
}

// CancelOffer asks every distributor to stop ringing for callID.
func (n *Notifier) CancelOffer(callID string) {
	if err := n.NC.Publish(CancelPrefix+callID, nil); err != nil {
		n.Log.Warn("cannot publish offer cancel", "callid", callID, "err", err)
	}
}
