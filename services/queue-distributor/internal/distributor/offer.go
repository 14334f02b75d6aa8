package distributor

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/adapters/gateway"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/eventlog"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/projection"
)

func randRead(b []byte) { _, _ = rand.Read(b) }

// offerRun is one member's offer, run by the instance that decided it.
type offerRun struct {
	id     string
	queue  string
	member domain.Member
	cancel context.CancelFunc
	reason string // why it was cancelled: caller_gone, exit_key, timeout

	results chan ringResult // each ring's end

	mu     sync.Mutex
	legs   map[string]string // agents rung → their leg (LegFor), set as they ring
	lost   map[string]bool   // agents rung before their claim, which failed: hung up, never bridged
	winner string
}

func (o *offerRun) stop(reason string) {
	o.mu.Lock()
	if o.reason == "" {
		o.reason = reason
	}
	o.mu.Unlock()
	o.cancel()
}

// ringResult is how one agent's originate ended.
type ringResult struct {
	agent domain.Agent
	leg   string
	err   error
}

// startOffer stores the reservation's events and rings the agents.
func (d *Distributor) startOffer(ctx context.Context, o *projection.Offer, trigger time.Time) {
	octx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	run := &offerRun{id: o.ID, queue: o.Queue, member: o.Member, cancel: cancel, legs: map[string]string{}, lost: map[string]bool{},
		results: make(chan ringResult, max(64, 2*len(o.Agents)))}
	d.mu.Lock()
	if !d.live {
		d.mu.Unlock()
		// Decided as the distributor stopped: nothing rang yet.
		d.release(ctx, o, true, idsOf(agentsOf(o.Agents)))
		cancel()
		return
	}
	if old := d.offers[o.Member.CallID]; old != nil {
		d.mu.Unlock()
		// Cannot happen while the projection holds the member as
		// offered; refuse rather than ring twice.
		d.log.Error("member already has a running offer here; releasing the new one", "callid", o.Member.CallID)
		d.release(ctx, o, true, idsOf(agentsOf(o.Agents)))
		cancel()
		return
	}
	d.offers[o.Member.CallID] = run
	// Under mu with live: no offer is added once Run has returned and
	// Wait may have begun.
	d.running.Add(1)
	d.mu.Unlock()
	// The agents ring while their agent.state.changed(offered) is being
	// stored: the reservation in Redis already keeps every other decision
	// off them, and the leg's uuid follows from the offer and the agent
	// (LegFor), so an instance taking over a reservation whose events
	// never got stored hangs the ring up. An agent whose event cannot be
	// stored (it changed meanwhile) is hung up at once and never bridged;
	// agents that lost a claim lately are claimed before they ring, so a
	// projection at odds with the log cannot ring a phone over and over.
	// They ring from here, before the offer's goroutine is started, which
	// on a busy machine may take a while to be scheduled.
	early := d.mayRingEarly(o.Agents)
	if early {
		d.ring(run, o, agentsOf(o.Agents), trigger)
	}
	go func() {
		defer d.running.Done()
		defer cancel()
		defer func() { d.mu.Lock(); delete(d.offers, o.Member.CallID); d.mu.Unlock() }()
		d.runOffer(octx, run, o, early, trigger)
	}()
}

// ring rings agents for run's offer; run.results gets how each ring
// ended. Each originate is published before ring returns, except a
// mobile agent's, which goes once its app has been pushed awake (without
// holding up the others).
func (d *Distributor) ring(run *offerRun, o *projection.Offer, as []domain.Agent, trigger time.Time) {
	bg := context.Background()
	for _, a := range as {
		leg := LegFor(o.ID, a.ID)
		run.mu.Lock()
		run.legs[a.ID] = leg
		run.mu.Unlock()
		send := func() func() (string, error) {
			return d.cfg.Gateway.Send(bg, o.Member.Node, originate(a, leg, o), true, time.Duration(a.RingTimeoutSeconds+5)*time.Second)
		}
		var wait func() (string, error)
		if !d.wakes(a) {
			wait = send()
		}
		go func() {
			if wait == nil {
				d.wake(bg, a, leg, o)
				wait = send()
			}
			_, err := wait()
			run.results <- ringResult{agent: a, leg: leg, err: err}
		}()
	}
	if d.cfg.Offered != nil {
		d.cfg.Offered(trigger)
	}
}

func (d *Distributor) release(ctx context.Context, o *projection.Offer, member bool, agents []string) {
	if err := d.cfg.Store.Release(context.WithoutCancel(ctx), o.Queue, o.Member.CallID, o.ID, member, agents, now()); err != nil {
		d.log.Error("cannot release a reservation", "callid", o.Member.CallID, "offer", o.ID, "err", err)
	}
}

// claim stores each reserved agent's agent.state.changed(offered), all
// at once (different aggregates: one JetStream round trip, not one per
// agent). Agents whose event could not be stored (changed concurrently)
// are released and not rung; it returns the agents now offered. The
// member's queue.member.offered is not checked against anything, so the
// ring does not wait for it: runOffer stores it once the agents ring
// (memberOffered). When none is left of a first reservation, the
// member's offer is stored and undone by queue.member.requeued (the
// history says why), or released in Redis if it cannot be stored.
func (d *Distributor) claim(ctx context.Context, run *offerRun, o *projection.Offer, first bool) []domain.Agent {
	errs := make([]error, len(o.Agents))
	var wg sync.WaitGroup
	for i, a := range o.Agents {
		data := domain.StateData{State: domain.StateOffered, CallID: o.Member.CallID, Queue: o.Queue, OfferID: o.ID, Leg: LegFor(o.ID, a.Agent.ID), Owner: d.cfg.Instance, Node: o.Member.Node, At: now().UnixMilli()}
		wg.Go(func() {
			_, errs[i] = d.cfg.Log.Append(ctx, o.ID+"-offered-"+a.Agent.ID, domain.AgentStateChanged, a.Agent.ID, o.Member.CallID, data, int64(a.Version))
		})
	}
	wg.Wait()
	var got []domain.Agent
	var lost []string
	defer func() { d.noteLost(lost) }()
	for i, a := range o.Agents {
		if errs[i] != nil {
			d.log.Warn("agent changed while being offered; its ring is stopped or never starts", "agent", a.Agent.ID, "callid", o.Member.CallID, "err", errs[i])
			lost = append(lost, a.Agent.ID)
			run.mu.Lock()
			run.lost[a.Agent.ID] = true
			leg, rung := run.legs[a.Agent.ID]
			run.mu.Unlock()
			if rung {
				// Rung before its claim (runOffer): stop it now; runOffer
				// hangs it up again until its originate ends.
				d.hangupLeg(ctx, o.Member.Node, leg, "LOSE_RACE")
			}
			continue
		}
		got = append(got, a.Agent) // its leg is recorded as it rings (runOffer's ring)
	}
	if !first || len(got) > 0 {
		if len(lost) > 0 {
			d.release(ctx, o, false, lost)
		}
		return got
	}
	if err := d.memberOffered(ctx, o, lost); err != nil {
		d.release(ctx, o, true, lost)
		return nil
	}
	d.release(ctx, o, false, lost)
	// What beat the offer is in the log: let the projection hold it
	// before the member is looked at again, and pause a moment, so a
	// projection that disagrees with the log for longer (a bug, a hand
	// edit) costs two events every lostClaimPause, not a loop.
	if err := d.catchUp(ctx, domain.Stream(domain.AgentStateChanged)); err != nil {
		d.log.Warn("projection behind the agents' log", "err", err)
	}
	time.Sleep(lostClaimPause)
	if _, err := d.append(ctx, o.ID+"-requeued", domain.MemberRequeued, o.Queue, o.Member.CallID,
		domain.MemberEndData{CallID: o.Member.CallID, OfferID: o.ID, Reason: "agents_changed", At: now().UnixMilli()}, eventlog.Any); err != nil {
		d.log.Error("cannot requeue a member whose agents changed", "callid", o.Member.CallID, "err", err)
	}
	return nil
}

// memberOffered stores the member's queue.member.offered naming the
// agents of the offer. Stored before anything the ring's outcome appends
// about the member: runOffer waits for it before reading results.
func (d *Distributor) memberOffered(ctx context.Context, o *projection.Offer, agents []string) error {
	_, err := d.cfg.Log.Append(ctx, fmt.Sprintf("%s-member-%s", o.ID, strings.Join(agents, ",")), domain.MemberOffered, o.Queue, o.Member.CallID,
		domain.OfferData{CallID: o.Member.CallID, OfferID: o.ID, Agents: agents, At: now().UnixMilli()}, eventlog.Any)
	if err != nil {
		d.log.Error("cannot store queue.member.offered", "callid", o.Member.CallID, "err", err)
	}
	return err
}

func agentsOf(as []projection.OfferedAgent) []domain.Agent {
	out := make([]domain.Agent, len(as))
	for i, a := range as {
		out[i] = a.Agent
	}
	return out
}

// LegFor is the uuid of the leg that rings agent for offer: derived, not
// drawn, so that whoever finds the reservation (an instance taking over
// from a dead one) knows which ring to hang up without it being stored.
func LegFor(offer, agent string) string {
	h := sha256.Sum256([]byte(offer + "/" + agent))
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// lostGuard is how long an agent whose claim failed is claimed before it
// rings (mayRingEarly).
const lostGuard = 10 * time.Second

// mayRingEarly reports whether the offer's agents may ring before their
// claims are stored: none lost a claim in the last lostGuard.
func (d *Distributor) mayRingEarly(as []projection.OfferedAgent) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := now()
	for _, a := range as {
		if at, ok := d.lostAt[a.Agent.ID]; ok && t.Sub(at) < lostGuard {
			return false
		}
	}
	return true
}

// noteLost remembers agents whose claim failed (mayRingEarly).
func (d *Distributor) noteLost(agents []string) {
	if len(agents) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	t := now()
	for id, at := range d.lostAt {
		if t.Sub(at) >= lostGuard {
			delete(d.lostAt, id)
		}
	}
	for _, id := range agents {
		d.lostAt[id] = t
	}
}

func idsOf(as []domain.Agent) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.ID
	}
	return out
}

// runOffer claims the offer's agents (rung already when early), rings
// them if not, and sees the rings to their end: a bridge, declines, or
// the member back to wait.
func (d *Distributor) runOffer(ctx context.Context, run *offerRun, o *projection.Offer, early bool, trigger time.Time) {
	bg := context.WithoutCancel(ctx)
	ringing := 0
	ring := func(as []domain.Agent) {
		ringing += len(as)
		d.ring(run, o, as, trigger)
	}
	if early {
		ringing = len(o.Agents)
	}
	agents := d.claim(bg, run, o, true)
	if !early {
		if len(agents) == 0 {
			d.Kick(o.Queue)
			return
		}
		ring(agents)
	}
	if len(agents) > 0 {
		_ = d.memberOffered(bg, o, idsOf(agents)) // logged; the ring goes on as before
	}
	// Read after the ring goes out: it is not needed for it.
	q, err := d.cfg.Store.Queue(bg, o.Queue)
	if err != nil {
		d.log.Error("queue vanished during an offer", "queue", o.Queue, "err", err)
	}
	var more <-chan time.Time
	if q.Strategy == domain.RingProgressively && len(agents) > 0 {
		more = time.After(time.Duration(q.RingProgressivelyDelaySecs) * time.Second)
	}
	var declined []ringResult
	// stopped: the caller left or pressed an exit key (ctx ended); rings
	// that still answer are hung up, none is bridged.
	stopped, stop := false, ctx.Done()
	// A ring stopped before FreeSWITCH made its channel (the originate
	// still on its way) was not there to hang up: rekill hangs up again,
	// every rekillEvery, the legs whose originate has not ended.
	// everyLeg: rekill hangs up every leg but the winner's (the caller
	// left, or an agent answered), not only the lost ones.
	ended, everyLeg := map[string]bool{}, false
	var rekill <-chan time.Time
	rekillCause := ""
	run.mu.Lock()
	if len(run.lost) > 0 && early {
		// claim hung them up once; again until their originates end.
		rekill, rekillCause = time.After(rekillEvery), "LOSE_RACE"
	}
	run.mu.Unlock()
	for ringing > 0 {
		select {
		case <-rekill:
			run.mu.Lock()
			for id, leg := range run.legs {
				if !ended[id] && id != run.winner && (everyLeg || run.lost[id]) {
					d.hangupLeg(bg, o.Member.Node, leg, rekillCause)
				}
			}
			run.mu.Unlock()
			rekill = time.After(rekillEvery)
			continue
		case <-more:
			more = time.After(time.Duration(q.RingProgressivelyDelaySecs) * time.Second)
			if d.Paused() {
				continue // no decision on a projection being rebuilt
			}
			if next, err := d.cfg.Store.Decide(bg, o.Queue, d.cfg.Instance, o.ID, o.Member.CallID, now()); err == nil && next != nil {
				if as := d.claim(bg, run, next, false); len(as) > 0 {
					ring(as)
					_ = d.memberOffered(bg, next, idsOf(as))
				}
			}
			continue
		case r := <-run.results:
			ringing--
			ended[r.agent.ID] = true
			run.mu.Lock()
			lost := run.lost[r.agent.ID]
			run.mu.Unlock()
			if lost {
				// Rung before its claim failed: the agent's state is
				// another decision's now. Nothing to store about it.
				if r.err == nil {
					d.hangupLeg(bg, o.Member.Node, r.leg, "LOSE_RACE")
				}
				continue
			}
			if r.err != nil {
				declined = append(declined, r)
				continue
			}
			run.mu.Lock()
			first := run.winner == ""
			if first && !stopped {
				run.winner = r.agent.ID
			}
			run.mu.Unlock()
			if !first || stopped {
				// Lost the race, or the caller left: this agent answered
				// for nothing. Hang the leg up; no penalty.
				d.hangupLeg(bg, o.Member.Node, r.leg, "LOSE_RACE")
				declined = append(declined, ringResult{agent: r.agent, leg: r.leg, err: &gateway.Error{Code: "command_failed", Cause: "LOSE_RACE"}})
				continue
			}
			// Stop the others ringing: their originates end ORIGINATOR_CANCEL.
			run.mu.Lock()
			for id, leg := range run.legs {
				if id != r.agent.ID {
					d.hangupLeg(bg, o.Member.Node, leg, "LOSE_RACE")
				}
			}
			run.mu.Unlock()
			rekill, rekillCause, everyLeg = time.After(rekillEvery), "LOSE_RACE", true
			d.bridge(bg, run, o, r)
		case <-stop:
			// The caller hung up or pressed an exit key: stop every ring,
			// then keep collecting the originates' results.
			stopped, stop, more = true, nil, nil
			run.mu.Lock()
			for _, leg := range run.legs {
				d.hangupLeg(bg, o.Member.Node, leg, "ORIGINATOR_CANCEL")
			}
			run.mu.Unlock()
			rekill, rekillCause, everyLeg = time.After(rekillEvery), "ORIGINATOR_CANCEL", true
		}
	}
	for _, r := range declined {
		d.decline(bg, run, o, r)
	}
	if len(agents) == 0 {
		// Every claim was lost: claim has requeued the member already.
		d.Kick(o.Queue)
		return
	}
	run.mu.Lock()
	answered, reason := run.winner != "", run.reason
	run.mu.Unlock()
	if !answered && reason == "" {
		// Nobody answered: the member waits for the next agent. When no
		// ring reached a phone (no gateway serves the node, no reply),
		// offering the next agent at once would run through the queue's
		// agents in a loop of failures for as long as the outage lasts:
		// the member waits — as a waiting member, its max wait running —
		// until retry_at before it is offered again.
		data := domain.MemberEndData{CallID: o.Member.CallID, OfferID: o.ID, Reason: "not_answered", At: now().UnixMilli()}
		if unreached(declined) {
			data.RetryAt = now().Add(MinRetryDelay).UnixMilli()
		}
		if _, err := d.cfg.Log.Append(bg, o.ID+"-requeued", domain.MemberRequeued, o.Queue, o.Member.CallID, data, eventlog.Any); err != nil {
			d.log.Error("cannot requeue a member", "callid", o.Member.CallID, "err", err)
		}
	}
}

// unreached reports whether every ring in declined failed (classify):
// none of them reached a phone.
func unreached(declined []ringResult) bool {
	for _, r := range declined {
		if reason, _, _ := classify(gateway.CauseOf(r.err), r.agent); reason != "failed" {
			return false
		}
	}
	return len(declined) > 0
}

// lostClaimPause is how long a member whose agents all changed while being
// offered stays offered before it waits again.
const lostClaimPause = 100 * time.Millisecond

// MinRetryDelay is the least an agent whose ring failed waits before the
// next offer.
const MinRetryDelay = time.Second

// rekillEvery is how often a stopped ring is hung up again until its
// originate ends.
const rekillEvery = 250 * time.Millisecond

// wake pushes a mobile agent's app awake before the ring (the app has to
// register to be rung). A push that cannot be sent does not stop the
// ring: a desk phone behind the same agent may still answer.
func (d *Distributor) wake(ctx context.Context, a domain.Agent, leg string, o *projection.Offer) {
	if !d.wakes(a) {
		return
	}
	err := d.cfg.Push.Wake(ctx, Wake{ID: "offer-" + leg, User: a.PushUser, CallID: o.Member.CallID, Agent: a.ID, Queue: o.Queue,
		CallerNumber: o.Member.CallerNumber, CallerName: o.Member.CallerName, TTL: time.Duration(a.RingTimeoutSeconds) * time.Second})
	if err != nil {
		d.log.Warn("cannot push the agent's app awake; ringing anyway", "callid", o.Member.CallID, "agent", a.ID, "err", err)
	}
}

// wakes reports whether agent a is pushed awake before it rings.
func (d *Distributor) wakes(a domain.Agent) bool { return d.cfg.Push != nil && a.PushUser != "" }

// originate is the api command that rings one agent. The leg carries the
// member and offer so that FreeSWITCH-side tooling (and a restarted
// distributor) can tell what it is.
func originate(a domain.Agent, leg string, o *projection.Offer) string {
	vars := fmt.Sprintf("origination_uuid=%s,originate_timeout=%d,ignore_early_media=true,hangup_after_bridge=true,switchyard_offer=%s,switchyard_member=%s,switchyard_queue=%s,switchyard_agent=%s",
		leg, a.RingTimeoutSeconds, o.ID, o.Member.CallID, o.Queue, a.ID)
	if n := callerNumber(o.Member.CallerNumber); n != "" {
		vars += ",origination_caller_id_number=" + n
	}
	if n := strings.TrimSpace(callerName(o.Member.CallerName)); n != "" {
		vars += ",origination_caller_id_name='" + n + "'"
	}
	contact := a.Contact
	if strings.HasPrefix(contact, "{") {
		return "originate {" + vars + "," + contact[1:] + " &park()"
	}
	return "originate {" + vars + "}" + contact + " &park()"
}

// The caller's id comes from the network (a SIP header, a policy) and
// goes into the agent's originate. FreeSWITCH splits that command into
// arguments at spaces outside '…' with \ escaping, strips the quotes
// (switch_separate_string), rings every endpoint of a dial string that
// holds ':_:' anywhere — variables included (switch_ivr_originate) —
// splits variables at commas and may expand ${…}. A caller id that broke
// the command would fail the ring (and its agent's no-answer count); one
// that added an endpoint would ring a destination of the caller's choice.
// So the number keeps only what numbers are made of, and the name, which
// goes inside '…', loses every character any of those steps reads.

// callerNumber keeps the characters of a caller id number.
func callerNumber(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || strings.ContainsRune("+*#._@-", r) {
			return r
		}
		return -1
	}, s)
}

// callerName keeps a display name safe inside '…' in the {…} block.
func callerName(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || strings.ContainsRune(`,{}[]<>'"\$:|^`, r) {
			return -1
		}
		return r
	}, s)
}

func (d *Distributor) hangupLeg(ctx context.Context, node, leg, cause string) {
	if _, err := d.cfg.Gateway.API(ctx, node, "uuid_kill "+leg+" "+cause, false, 5*time.Second); err != nil {
		d.log.Debug("hang up agent leg", "leg", leg, "err", err)
	}
}

// bridge connects the caller to the agent who answered.
func (d *Distributor) bridge(ctx context.Context, run *offerRun, o *projection.Offer, r ringResult) {
	cid := o.Member.CallID
	_, err := d.cfg.Gateway.API(ctx, o.Member.Node, "uuid_bridge "+cid+" "+r.leg, false, 10*time.Second)
	if err != nil {
		// The caller left between the answer and the bridge.
		d.log.Info("caller gone before the bridge", "callid", cid, "agent", r.agent.ID, "err", err)
		d.hangupLeg(ctx, o.Member.Node, r.leg, "ORIGINATOR_CANCEL")
		run.mu.Lock()
		run.winner = ""
		if run.reason == "" {
			run.reason = "caller_gone"
		}
		run.mu.Unlock()
		d.decline(ctx, run, o, ringResult{agent: r.agent, leg: r.leg, err: &gateway.Error{Code: "command_failed", Cause: "ORIGINATOR_CANCEL"}})
		d.memberGone(ctx, cid, "bridge failed: "+err.Error(), false)
		return
	}
	at := now().UnixMilli()
	if _, err := d.cfg.Log.Append(ctx, o.ID+"-incall", domain.AgentStateChanged, r.agent.ID, cid,
		domain.StateData{State: domain.StateInCall, CallID: cid, Queue: o.Queue, OfferID: o.ID, Leg: r.leg, WaitMS: at - o.Member.JoinedAt, At: at}, eventlog.Any); err != nil {
		d.log.Error("cannot store agent in_call", "agent", r.agent.ID, "callid", cid, "err", err)
	}
	if _, err := d.cfg.Log.Append(ctx, o.ID+"-answered", domain.MemberAnswered, o.Queue, cid,
		domain.MemberEndData{CallID: cid, OfferID: o.ID, Agent: r.agent.ID, WaitMS: at - o.Member.JoinedAt, At: at}, eventlog.Any); err != nil {
		d.log.Error("cannot store queue.member.answered", "callid", cid, "err", err)
	}
	d.log.Info("caller bridged to agent", "callid", cid, "agent", r.agent.ID, "queue", o.Queue, "wait_ms", at-o.Member.JoinedAt)
}

// decline stores how an agent's ring ended, with mod_callcenter's delays.
func (d *Distributor) decline(ctx context.Context, run *offerRun, o *projection.Offer, r ringResult) {
	cause := gateway.CauseOf(r.err)
	reason, delay, counts := classify(cause, r.agent)
	if reason == "failed" {
		cause = "FAILED"
		// No answer from the gateway is not proof there is no leg (an ESL
		// connection lost mid-originate): hang it up, in case — without
		// waiting, as a gateway that did not answer the ring may not
		// answer this either.
		go d.hangupLeg(context.WithoutCancel(ctx), o.Member.Node, r.leg, "ORIGINATOR_CANCEL")
	}
	at := now()
	data := domain.DeclineData{CallID: o.Member.CallID, OfferID: o.ID, Reason: reason, Cause: cause, NoAnswer: counts, ReadyAt: at.Add(delay).UnixMilli(), At: at.UnixMilli()}
	if _, err := d.cfg.Log.Append(ctx, o.ID+"-declined-"+r.agent.ID, domain.AgentOfferDeclined, r.agent.ID, o.Member.CallID, data, eventlog.Any); err != nil {
		d.log.Error("cannot store agent.offer.declined", "agent", r.agent.ID, "err", err)
		return
	}
	if reason == "failed" {
		d.log.Warn("could not ring the agent (not counted as a no-answer)", "agent", r.agent.ID, "callid", o.Member.CallID, "node", o.Member.Node, "err", r.err)
		return
	}
	d.log.Info("agent did not take the call", "agent", r.agent.ID, "callid", o.Member.CallID, "reason", reason, "cause", cause)
}

// classify maps an originate's hang-up cause to mod_callcenter's
// handling: which delay applies and whether it counts towards
// max-no-answer.
func classify(cause string, a domain.Agent) (reason string, delay time.Duration, countsNoAnswer bool) {
	// A failed ring waits at least MinRetryDelay, whatever the agent's
	// delays say: decisions are event-driven, so with no delay a phone
	// that fails at once (busy, absent) would be rung again for the same
	// caller hundreds of times a second. mod_callcenter's 100 ms pass
	// bounds it there.
	s := func(n int) time.Duration { return max(time.Duration(n)*time.Second, MinRetryDelay) }
	switch cause {
	case "LOSE_RACE", "ORIGINATOR_CANCEL":
		return "cancelled", 0, false
	case "USER_BUSY", "NORMAL_CIRCUIT_CONGESTION":
		return "busy", s(a.BusyDelaySeconds), false
	case "CALL_REJECTED":
		return "rejected", s(a.RejectDelaySeconds), false
	case "USER_NOT_REGISTERED":
		return "not_registered", 5 * time.Second, false
	case "":
		// No hang-up cause: the ring never reached the phone (no gateway
		// serves the node, no reply, a refused command). Not the agent's
		// doing, so not a no-answer: an outage must not put a queue's
		// agents on a break.
		return "failed", MinRetryDelay, false
	}
	return "no_answer", s(a.NoAnswerDelaySecs), true
}
