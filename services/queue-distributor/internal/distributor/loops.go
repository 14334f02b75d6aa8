package distributor

import (
	"context"
	"errors"
	"time"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/eventlog"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/projection"
)

// Heartbeat is how often an instance says it is alive; an offer whose
// instance has not said so for three beats is taken over.
const Heartbeat = 2 * time.Second

// wakeSoon makes the timer loop look again (a new, earlier wake time).
func (d *Distributor) wakeSoon() {
	select {
	case d.wakeC <- struct{}{}:
	default:
	}
}

// Timers runs what time triggers: agents whose delay or wrap-up ended,
// members whose max wait passed, offers left by a dead instance. It
// sleeps until the earliest of them (at most a heartbeat).
func (d *Distributor) Timers(ctx context.Context) {
	lastBeat, pauses := time.Time{}, d.pauses.Load()
	for ctx.Err() == nil {
		t := now()
		beat := t.Sub(lastBeat) >= Heartbeat
		if beat {
			lastBeat = t
			if err := d.cfg.Store.Heartbeat(ctx, d.cfg.Instance, 3*Heartbeat); err != nil {
				d.log.Warn("cannot store heartbeat", "err", err)
			}
		}
		if d.Paused() || d.pauses.Load() != pauses {
			// The projection is being rebuilt: nothing in it can be acted
			// on. What was seen orphaned before is forgotten (a rebuild
			// also drops every instance's heartbeat until its next beat).
			pauses, d.suspects = d.pauses.Load(), nil
			select {
			case <-ctx.Done():
			case <-d.wakeC:
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if beat {
			d.recoverOffers(ctx)
		}
		queues, wrapped, err := d.cfg.Store.Wake(ctx, t)
		if err != nil {
			d.log.Warn("wake loop", "err", err)
		}
		for _, q := range queues {
			d.kickAt(q, t)
		}
		for _, a := range wrapped {
			if _, err := d.append(ctx, "", domain.AgentStateChanged, a, "", domain.StateData{State: domain.StateIdle, At: t.UnixMilli()}, eventlog.Any); err != nil {
				d.log.Warn("cannot end wrap-up", "agent", a, "err", err)
			}
		}
		d.expire(ctx, t)
		next := t.Add(Heartbeat)
		if w, err := d.cfg.Store.NextWake(ctx); err == nil && !w.IsZero() && w.Before(next) {
			next = w
		}
		if dl, err := d.cfg.Store.NextDeadline(ctx); err == nil && dl > 0 && time.UnixMilli(dl).Before(next) {
			next = time.UnixMilli(dl)
		}
		wait := time.Until(next)
		if wait < time.Millisecond {
			wait = time.Millisecond
		}
		select {
		case <-ctx.Done():
		case <-d.wakeC:
		case <-time.After(wait):
		}
	}
}

// expire ends members whose max wait passed: overflowed to the queue's
// target when it has one, else timed out. A member being rung is left
// until its ring ends (mod_callcenter does not cut an agent connecting).
func (d *Distributor) expire(ctx context.Context, t time.Time) {
	ids, err := d.cfg.Store.Expired(ctx, t.UnixMilli())
	if err != nil {
		d.log.Warn("expire members", "err", err)
		return
	}
	for _, id := range ids {
		m, err := d.cfg.Store.Member(ctx, id)
		if err != nil || m.State != "waiting" {
			continue
		}
		q, _ := d.cfg.Store.Queue(ctx, m.Queue)
		d.breakMOH(ctx, id)
		out, data := Outcome{Outcome: domain.OutcomeTimeout}, domain.MemberEndData{Reason: domain.OutcomeTimeout}
		if q.OverflowTarget != "" {
			out = Outcome{Outcome: domain.OutcomeOverflowed, Target: q.OverflowTarget}
			data = domain.MemberEndData{Reason: domain.OutcomeOverflowed, Target: q.OverflowTarget}
		}
		if err := d.finishMember(ctx, m, domain.MemberExited, data, out); err != nil {
			d.log.Warn("cannot time a member out", "callid", id, "err", err)
		}
	}
}

// recoverOffers takes over offers whose instance died (kill -9, a lost
// host): the agent's leg is hung up, the agent freed without penalty and
// the member put back to wait, so no agent stays "offered" and no member
// is lost. An instance restarted under the same name finds its own old
// offers here too: it runs none of them.
func (d *Distributor) recoverOffers(ctx context.Context) {
	offered, err := d.cfg.Store.Agents(ctx, domain.StateOffered)
	if err != nil {
		d.log.Warn("recover offers", "err", err)
		return
	}
	suspects := map[string]bool{}
	for _, a := range offered {
		key := a.ID + "/" + a.OfferID
		suspects[key] = true
		if !d.suspects[key] {
			continue // taken over only when seen orphaned on two passes in a row
		}
		if a.Owner == d.cfg.Instance {
			d.mu.Lock()
			_, mine := d.offers[a.OfferCall]
			d.mu.Unlock()
			if mine {
				continue
			}
		} else if a.Owner != "" {
			if alive, err := d.cfg.Store.Alive(ctx, a.Owner); err != nil || alive {
				continue
			}
		}
		d.takeOver(ctx, a)
	}
	d.suspects = suspects
}

func (d *Distributor) takeOver(ctx context.Context, a projection.AgentView) {
	d.log.Warn("taking over an offer left by a stopped instance", "agent", a.ID, "callid", a.OfferCall, "owner", a.Owner)
	if a.OfferedAt == 0 {
		// Reserved but its events never stored: nothing to undo in the
		// log, but the agent may ring (runOffer rings as it stores the
		// claim); the leg's uuid follows from the offer.
		if m, err := d.cfg.Store.Member(ctx, a.OfferCall); err == nil && m.Node != "" {
			d.hangupLeg(ctx, m.Node, LegFor(a.OfferID, a.ID), "ORIGINATOR_CANCEL")
		}
		if err := d.cfg.Store.Release(ctx, a.OfferQueue, a.OfferCall, a.OfferID, true, []string{a.ID}, now()); err != nil {
			d.log.Error("cannot release an orphaned reservation", "agent", a.ID, "err", err)
		}
		d.Kick(a.OfferQueue)
		return
	}
	if a.Leg != "" && a.Node != "" {
		d.hangupLeg(ctx, a.Node, a.Leg, "ORIGINATOR_CANCEL")
	}
	at := now().UnixMilli()
	if _, err := d.append(ctx, a.OfferID+"-declined-"+a.ID, domain.AgentOfferDeclined, a.ID, a.OfferCall,
		domain.DeclineData{CallID: a.OfferCall, OfferID: a.OfferID, Reason: "lost", At: at, ReadyAt: at}, eventlog.Any); err != nil {
		d.log.Error("cannot free an agent left offered", "agent", a.ID, "err", err)
		return
	}
	m, err := d.cfg.Store.Member(ctx, a.OfferCall)
	if errors.Is(err, projection.ErrNotFound) || (err == nil && m.OfferID != a.OfferID) {
		return
	}
	if err != nil {
		d.log.Error("recover member", "callid", a.OfferCall, "err", err)
		return
	}
	if _, err := d.append(ctx, a.OfferID+"-requeued", domain.MemberRequeued, m.Queue, m.CallID,
		domain.MemberEndData{CallID: m.CallID, OfferID: a.OfferID, Reason: "lost", At: at}, eventlog.Any); err != nil {
		d.log.Error("cannot requeue a member left offered", "callid", m.CallID, "err", err)
	}
}
