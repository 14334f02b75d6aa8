package distributor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/eventlog"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/projection"
)

// CallEvent is what the distributor needs of a CALLS event.
type CallEvent struct {
	Type     string // call.hangup, call.dtmf, call.unbridged
	CallID   string
	Digit    string
	OtherLeg string
	// Redelivered: an instance took this event before and did not
	// acknowledge it (it died, or failed handling it).
	Redelivered bool
}

// HandleCall reacts to a caller's channel: a hang-up ends its wait (and
// any ring) or its bridge; a digit may be an exit key; an unbridge means
// the agent hung up.
func (d *Distributor) HandleCall(ctx context.Context, ev CallEvent) error {
	if err := d.Steady(ctx); err != nil {
		return err
	}
	switch ev.Type {
	case "call.hangup", "call.unbridged":
		agent, err := d.cfg.Store.AgentInCall(ctx, ev.CallID)
		if err != nil {
			return err
		}
		if agent != "" {
			return d.bridgeEnded(ctx, agent, ev.CallID)
		}
		if ev.Type == "call.hangup" {
			return d.memberGone(ctx, ev.CallID, "caller hung up", ev.Redelivered)
		}
		return d.notMember(ctx, ev.CallID, ev.Redelivered)
	case "call.dtmf":
		m, err := d.cfg.Store.Member(ctx, ev.CallID)
		if errors.Is(err, projection.ErrNotFound) {
			return d.notMember(ctx, ev.CallID, ev.Redelivered)
		}
		if err != nil {
			return err
		}
		q, err := d.cfg.Store.Queue(ctx, m.Queue)
		if err != nil || ev.Digit == "" || !strings.Contains(q.ExitKeys, ev.Digit) {
			return err
		}
		d.stopOffer(ev.CallID, "exit_key")
		d.breakMOH(ctx, ev.CallID)
		return d.finishMember(ctx, m, domain.MemberExited, domain.MemberEndData{Reason: domain.OutcomeExitKey, Digit: ev.Digit},
			Outcome{Outcome: domain.OutcomeExitKey, Digit: ev.Digit})
	}
	return nil
}

// stopOffer stops a member's ringing, here or on the instance running it.
func (d *Distributor) stopOffer(callID, reason string) {
	d.mu.Lock()
	run := d.offers[callID]
	d.mu.Unlock()
	if run != nil {
		run.stop(reason)
		return
	}
	d.cfg.Notify.CancelOffer(callID)
}

// CancelLocal stops an offer this instance runs (another instance saw the
// caller leave).
func (d *Distributor) CancelLocal(callID string) {
	d.mu.Lock()
	run := d.offers[callID]
	d.mu.Unlock()
	if run != nil {
		run.stop("caller_gone")
	}
}

// memberGone ends a member whose caller hung up.
func (d *Distributor) memberGone(ctx context.Context, callID, why string, redelivered bool) error {
	m, err := d.cfg.Store.Member(ctx, callID)
	if errors.Is(err, projection.ErrNotFound) {
		return d.notMember(ctx, callID, redelivered)
	}
	if err != nil {
		return err
	}
	d.stopOffer(callID, "caller_gone")
	d.log.Info("caller left the queue", "callid", callID, "queue", m.Queue, "why", why)
	return d.finishMember(ctx, m, domain.MemberAbandoned, domain.MemberEndData{Reason: why}, Outcome{Outcome: domain.OutcomeAbandoned})
}

// notMember is a call event for a call the projection does not know: not
// a caller (nothing to do), unless the projection lost its state — then
// ErrRebuilding has the event delivered again once it is rebuilt. A
// redelivered event's first handling may have stored the call's end and
// died before telling the caller side: the outcome the projection kept
// is told again (a second telling of the same outcome is harmless; the
// caller side takes the first).
func (d *Distributor) notMember(ctx context.Context, callID string, redelivered bool) error {
	if d.cfg.Lost != nil && d.cfg.Lost(ctx) {
		return ErrRebuilding
	}
	if !redelivered {
		return nil
	}
	o, err := d.KeptOutcome(ctx, callID)
	if err != nil || o == nil {
		return err
	}
	d.log.Info("telling a call's outcome again: its event came back unacknowledged", "callid", callID, "outcome", o.Outcome)
	d.cfg.Notify.Outcome(callID, *o)
	return nil
}

// KeptOutcome is the outcome the projection keeps for a call that left
// its queue (docs/events.md: ten minutes), or nil.
func (d *Distributor) KeptOutcome(ctx context.Context, callID string) (*Outcome, error) {
	b, err := d.cfg.Store.LoadOutcome(ctx, callID)
	if err != nil {
		return nil, fmt.Errorf("load call %s's outcome: %w", callID, err)
	}
	var o Outcome
	if b == nil || json.Unmarshal(b, &o) != nil || o.Outcome == "" {
		return nil, nil
	}
	return &o, nil
}

// bridgeEnded starts the agent's wrap-up and tells the caller side the
// call was answered.
func (d *Distributor) bridgeEnded(ctx context.Context, agentID, callID string) error {
	a, err := d.cfg.Store.Agent(ctx, agentID)
	if err != nil {
		return err
	}
	if a.State != domain.StateInCall || a.OfferCall != callID {
		return nil
	}
	q, _ := d.cfg.Store.Queue(ctx, a.OfferQueue)
	wrap := q.WrapUpSeconds
	if a.WrapUpSeconds != nil {
		wrap = *a.WrapUpSeconds
	}
	at := now()
	talk := at.UnixMilli() - a.AnsweredAt
	if a.AnsweredAt == 0 || talk < 0 {
		talk = 0
	}
	if a.Leg != "" && a.Node != "" {
		// The caller hung up: the agent's leg goes too (or it was the
		// agent who hung up, and this is a no-op).
		d.hangupLeg(ctx, a.Node, a.Leg, "NORMAL_CLEARING")
	}
	if m, err := d.cfg.Store.Member(ctx, callID); err == nil && m.OfferID == a.OfferID {
		// The instance that bridged the call died between storing the
		// agent's in_call and the member's answered: the member would
		// stay "offered" for ever. The same event id as the bridge's
		// makes this a no-op if that event was stored after all.
		answered := a.AnsweredAt
		if answered == 0 {
			answered = at.UnixMilli()
		}
		if _, err := d.append(ctx, a.OfferID+"-answered", domain.MemberAnswered, m.Queue, callID,
			domain.MemberEndData{CallID: callID, OfferID: a.OfferID, Agent: agentID, WaitMS: a.WaitMS, At: answered}, eventlog.Any); err != nil {
			return err
		}
	}
	if _, err := d.append(ctx, "wrapup-"+a.OfferID, domain.AgentStateChanged, agentID, callID,
		domain.StateData{State: domain.StateWrapUp, CallID: callID, TalkMS: talk, ReadyAt: at.Add(time.Duration(wrap) * time.Second).UnixMilli(), At: at.UnixMilli()}, eventlog.Any); err != nil {
		return err
	}
	d.cfg.Notify.Outcome(callID, Outcome{Outcome: domain.OutcomeAnswered, Queue: a.OfferQueue, Agent: agentID,
		WaitSeconds: float64(a.WaitMS) / 1000})
	d.wakeSoon()
	return nil
}

func (d *Distributor) breakMOH(ctx context.Context, callID string) {
	if err := d.cfg.Gateway.Call(ctx, callID, "break", "", "", 5*time.Second); err != nil {
		d.log.Debug("break music on hold", "callid", callID, "err", err)
	}
}
