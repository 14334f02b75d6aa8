package service

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/fssim"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/distributor"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/eventlog"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/ports/queuectl"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/projection"
)

// An instance that bridged a caller and died before storing the member's
// queue.member.answered (after the agent's in_call) left the member
// "offered" with nobody ringing for it. The end of the bridge ends the
// member too.
func TestMemberLeftOfferedByADeadInstanceEndsWithItsBridge(t *testing.T) {
	e := newEnv(t)
	e.do("PUT", "/v1/queues/support", map[string]any{"wrap_up_seconds": 0}, 201)
	e.do("PUT", "/v1/agents/4001", map[string]any{"contact": "user/4001"}, 201)
	e.do("PUT", "/v1/queues/support/tiers/4001", map[string]any{}, 200)
	outs := e.outcomes("c-4")
	ctx, at := context.Background(), time.Now().UnixMilli()
	// What the dead instance stored: the caller joined, was offered to
	// 4001, 4001 answered; nothing more.
	for _, ev := range []struct {
		typ, id string
		data    any
	}{
		{domain.MemberJoined, "support", domain.MemberData{Member: domain.Member{CallID: "c-4", Queue: "support", Node: "fs1", JoinedAt: at}}},
		{domain.AgentStateChanged, "4001", domain.StateData{State: domain.StateOffered, CallID: "c-4", Queue: "support", OfferID: "o-4", Leg: "leg-4", Owner: "dead", Node: "fs1", At: at}},
		{domain.MemberOffered, "support", domain.OfferData{CallID: "c-4", OfferID: "o-4", Agents: []string{"4001"}, At: at}},
		{domain.AgentStateChanged, "4001", domain.StateData{State: domain.StateInCall, CallID: "c-4", Queue: "support", OfferID: "o-4", Leg: "leg-4", At: at}},
	} {
		if _, err := e.svc.elog.Append(ctx, "", ev.typ, ev.id, "c-4", ev.data, eventlog.Any); err != nil {
			t.Fatal(err)
		}
	}
	e.eventually("agent in call", func() bool { _, st := e.agentState("4001"); return st == "in_call" })
	if m := e.do("GET", "/v1/queues/support/members", nil, 200)["members"].([]any); len(m) != 1 {
		t.Fatalf("members %v", m)
	}
	// The agent hangs up.
	e.callEvent("c-4", "unbridged", map[string]any{"other_leg": "leg-4"})
	if o := wait(t, outs, "outcome"); o.Outcome != "answered" || o.Agent != "4001" {
		t.Fatalf("outcome %+v", o)
	}
	e.eventually("member gone", func() bool {
		return len(e.do("GET", "/v1/queues/support/members", nil, 200)["members"].([]any)) == 0
	})
	if st := e.do("GET", "/v1/queues/support/stats", nil, 200); st["answered"] != 1.0 {
		t.Fatalf("stats %v", st)
	}
}

// Events that change nothing in the projection — a member's for its
// queue, one the projection ignores — and an aggregate deleted (then
// perhaps a stale event about it) must not leave the projection's version
// of the aggregate behind the log's: commands on it still go through.
func TestCommandsAfterEventsTheProjectionIgnores(t *testing.T) {
	e := newEnv(t)
	e.sim.SetEndpoint("user/5001", fssim.Endpoint{AnswerAfter: 20 * time.Millisecond})
	e.setup("top-down", "5001")
	e.caller("c-5")
	if r := e.enqueue(queuectl.EnqueueRequest{CallID: "c-5", Queue: "support", Node: "fs1"}); r.Error != nil {
		t.Fatalf("enqueue: %+v", r.Error)
	}
	e.eventually("agent in call", func() bool { _, st := e.agentState("5001"); return st == "in_call" })
	e.callEvent("c-5", "hangup", map[string]any{"cause": "NORMAL_CLEARING"})
	e.eventually("agent idle", func() bool { _, st := e.agentState("5001"); return st == "idle" })
	// A stale event about 5001 that the projection ignores (no such
	// offer) is now its last in the log.
	if _, err := e.svc.elog.Append(context.Background(), "", domain.AgentOfferDeclined, "5001", "c-old",
		domain.DeclineData{CallID: "c-old", OfferID: "o-old", Reason: "no_answer", At: 1}, eventlog.Any); err != nil {
		t.Fatal(err)
	}
	// 5001 is still offered calls...
	e.caller("c-6")
	if r := e.enqueue(queuectl.EnqueueRequest{CallID: "c-6", Queue: "support", Node: "fs1"}); r.Error != nil {
		t.Fatalf("enqueue: %+v", r.Error)
	}
	e.eventually("agent in call again", func() bool { _, st := e.agentState("5001"); return st == "in_call" })
	// ... and takes commands; so does the queue, which has had member
	// events since its configuration.
	e.do("PUT", "/v1/queues/support", map[string]any{"strategy": "round-robin"}, 200)
	e.do("PUT", "/v1/agents/5001/status", map[string]any{"status": "on_break"}, 200)
	e.do("PUT", "/v1/agents/5001", map[string]any{"contact": "user/5001", "ring_timeout_seconds": 3}, 200)
	// Deleted and made again under the same name.
	e.do("PUT", "/v1/queues/other", map[string]any{}, 201)
	e.do("DELETE", "/v1/queues/other", nil, 204)
	e.do("PUT", "/v1/queues/other", map[string]any{}, 201)
	e.do("PUT", "/v1/agents/5002", map[string]any{"contact": "user/5002"}, 201)
	e.do("DELETE", "/v1/agents/5002", nil, 204)
	e.do("PUT", "/v1/agents/5002", map[string]any{"contact": "user/5002"}, 201)
	// Deleted, then a stale event about it stored after its deletion: the
	// tombstone follows the log.
	e.do("DELETE", "/v1/agents/5002", nil, 204)
	if _, err := e.svc.elog.Append(context.Background(), "", domain.AgentStatusChanged, "5002", "",
		domain.StatusData{Status: domain.StatusAvailable, At: 1}, eventlog.Any); err != nil {
		t.Fatal(err)
	}
	e.do("PUT", "/v1/agents/5002", map[string]any{"contact": "user/5002"}, 201)
	e.do("PUT", "/v1/agents/5002/status", map[string]any{"status": "available"}, 200)
}

// A status change is appended after the version of the agent this
// instance last applied, without reading Redis. Another instance's events
// that this one has not followed yet make that version stale: JetStream
// refuses the append and the change goes through on the projection's
// version; an agent the other instance deleted is not changed at all.
func TestStatusChangeAfterAnotherInstancesUnfollowedEvents(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.setup("top-down", "5001")
	if err := e.svc.d.SetStatus(ctx, "5001", domain.StatusOnBreak, ""); err != nil {
		t.Fatal(err)
	}
	// What the other instance stores reaches Redis (it applies its own
	// events) but no longer this instance.
	e.svc.unfollow()
	other := projection.New(e.svc.rdb, e.prefix, projection.Limits{})
	otherLog := eventlog.New(e.js, "switchyard/queue-distributor/other")
	otherChange := func(typ string, data any) uint64 {
		t.Helper()
		a, err := other.Agent(ctx, "5001")
		if err != nil {
			t.Fatal(err)
		}
		ap, err := otherLog.Append(ctx, "", typ, "5001", "", data, int64(a.Version))
		if err != nil {
			t.Fatal(err)
		}
		if r, err := other.Apply(ctx, ap.Event, true); err != nil || r.Status != projection.Applied {
			t.Fatalf("the other instance's %s: %+v %v", typ, r, err)
		}
		return ap.Event.Seq
	}
	otherChange(domain.AgentStatusChanged, domain.StatusData{Status: domain.StatusAvailable, At: 1})
	if err := e.svc.d.SetStatus(ctx, "5001", domain.StatusOnBreak, "lunch"); err != nil {
		t.Fatalf("status change after the other instance's: %v", err)
	}
	if status, _ := e.agentState("5001"); status != domain.StatusOnBreak {
		t.Fatalf("status %s, want on_break", status)
	}
	deleted := otherChange(domain.AgentDeleted, struct{}{})
	if err := e.svc.d.SetStatus(ctx, "5001", domain.StatusAvailable, ""); !errors.Is(err, projection.ErrNotFound) {
		t.Fatalf("status change of an agent deleted elsewhere: %v, want not found", err)
	}
	if last, err := e.svc.elog.Last(ctx, "AGENTS"); err != nil || last != deleted {
		t.Fatalf("AGENTS ends at #%d (%v), want the deletion #%d: something was stored about a deleted agent", last, err, deleted)
	}
}

// TestOfferToAnAgentThatChangedMeanwhile: the agent's event for an offer
// expects the version the decision read; when the log has moved on (here:
// a projection that disagrees with the log about the agent), the member's
// offer is undone by queue.member.requeued and tried again at a bounded
// pace, not in a loop. The agent rings while its event is being stored,
// so the first try rings it — and hangs that ring up at once; after a
// lost claim the agent is claimed before it rings, so no later try rings
// it. Once the projection agrees, the call is offered and answered.
func TestOfferToAnAgentThatChangedMeanwhile(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.sim.SetEndpoint("user/5001", fssim.Endpoint{AnswerAfter: 20 * time.Millisecond})
	e.setup("top-down", "5001")
	a, err := e.svc.store.Agent(ctx, "5001")
	if err != nil {
		t.Fatal(err)
	}
	key := e.prefix + "a:5001"
	if err := e.svc.rdb.HSet(ctx, key, "ver", a.Version-1).Err(); err != nil {
		t.Fatal(err)
	}
	e.caller("c-8")
	start := time.Now()
	if r := e.enqueue(queuectl.EnqueueRequest{CallID: "c-8", Queue: "support", Node: "fs1"}); r.Error != nil {
		t.Fatalf("enqueue: %+v", r.Error)
	}
	st, err := e.js.Stream(ctx, "QUEUES")
	if err != nil {
		t.Fatal(err)
	}
	requeued := func() int {
		n := 0
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(domain.Subject(domain.MemberRequeued, "support")))
		if err == nil {
			for _, c := range info.State.Subjects {
				n += int(c)
			}
		}
		return n
	}
	e.eventually("the member's offer undone", func() bool { return requeued() >= 3 })
	last, err := st.GetLastMsgForSubject(ctx, domain.Subject(domain.MemberRequeued, "support"))
	if err != nil || !strings.Contains(string(last.Data), `"reason":"agents_changed"`) {
		t.Fatalf("last requeue: %s (%v)", last.Data, err)
	}
	var rung, killed []string
	for len(e.api) > 0 {
		c := <-e.api
		if strings.HasPrefix(c, "originate") {
			rung = append(rung, c)
		}
		if strings.HasPrefix(c, "uuid_kill") {
			killed = append(killed, strings.Fields(c)[1])
		}
	}
	if len(rung) != 1 {
		t.Fatalf("the agent was rung %d times over %d lost claims, want once: %q", len(rung), requeued(), rung)
	}
	if leg := regexp.MustCompile(`origination_uuid=([^,]+)`).FindStringSubmatch(rung[0]); leg == nil || !slices.Contains(killed, leg[1]) {
		t.Fatalf("the ring of a lost claim was not hung up: %q, killed %q", rung[0], killed)
	}
	if n, d := requeued(), time.Since(start); n > int(d/(100*time.Millisecond))+2 {
		t.Fatalf("%d offers undone in %v: not paced", n, d)
	}
	if err := e.svc.rdb.HSet(ctx, key, "ver", a.Version).Err(); err != nil {
		t.Fatal(err)
	}
	e.eventually("agent in call", func() bool { _, st := e.agentState("5001"); return st == "in_call" })
}

// An instance rings its agents as it stores their claims: it can die
// after the ring went out and before anything was stored. What is left is
// a reservation in Redis owned by a dead instance, and a phone ringing.
// The instance that takes the reservation over hangs that ring up (its
// leg's uuid follows from the offer and agent), frees the agent and puts
// the member back to wait.
func TestReservationOfADeadInstanceHasItsRingHungUp(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.sim.SetEndpoint("user/6001", fssim.Endpoint{NoAnswer: true})
	// The member needs a skill the agent lacks until it has waited 30 s:
	// the live instance leaves it alone, and the "dead" one decides as if
	// those 30 s had passed.
	e.do("PUT", "/v1/queues/support", map[string]any{"strategy": "longest-idle-agent",
		"skill_escalation": []map[string]any{{"after_seconds": 30, "drop_skills": true}}}, 201)
	e.do("PUT", "/v1/agents/6001", map[string]any{"contact": "user/6001", "ring_timeout_seconds": 60}, 201)
	e.do("PUT", "/v1/queues/support/tiers/6001", map[string]any{}, 200)
	e.do("POST", "/v1/agents/6001/login", nil, 200)
	e.caller("c-9")
	if r := e.enqueue(queuectl.EnqueueRequest{CallID: "c-9", Queue: "support", Node: "fs1", Skills: map[string]int{"french": 3}}); r.Error != nil {
		t.Fatalf("enqueue: %+v", r.Error)
	}
	o, err := e.svc.store.Decide(ctx, "support", "dead", "o-9", "", time.Now().Add(time.Minute))
	if err != nil || o == nil || len(o.Agents) != 1 || o.Agents[0].Agent.ID != "6001" {
		t.Fatalf("the dead instance's decision: %+v %v", o, err)
	}
	// Its ring, which went out before it died.
	leg := distributor.LegFor("o-9", "6001")
	go e.sim.API(context.Background(), "originate {origination_uuid="+leg+",originate_timeout=60}user/6001 &park()")
	e.eventually("the agent's phone ringing", func() bool { return slices.Contains(e.sim.Channels(), leg) })

	e.eventually("the ring hung up", func() bool { return !slices.Contains(e.sim.Channels(), leg) })
	e.eventually("the agent free again", func() bool { st, s := e.agentState("6001"); return st == "available" && s == "idle" })
	m := e.do("GET", "/v1/queues/support/members", nil, 200)["members"].([]any)
	if len(m) != 1 || m[0].(map[string]any)["state"] != "waiting" {
		t.Fatalf("members after the take-over: %v", m)
	}
}

// A ring that fails without a hang-up cause — no esl-gateway serves the
// caller's node (restarting, or the node is gone), no reply, a refused
// command — is not the agent's doing: it is not a no-answer, so an
// infrastructure fault does not put a queue's agents on a break. The
// caller waits a second before the next offer — waiting, so its max wait
// still ends its wait.
func TestRingsFailingWithoutACauseAreNotTheAgentsNoAnswer(t *testing.T) {
	e := newEnv(t)
	agents := []string{"3001", "3002", "3003", "3004", "3005", "3006", "3007", "3008"}
	e.setup("top-down", agents...) // max_no_answer 1
	start := time.Now()
	outs := e.outcomes("c-fs9")
	if r := e.enqueue(queuectl.EnqueueRequest{CallID: "c-fs9", Queue: "support", Node: "fs9", MaxWait: 4}); r.Error != nil {
		t.Fatalf("enqueue: %+v", r.Error)
	}
	e.eventually("two failed rings", func() bool {
		return strings.Count(e.history("AGENTS", "c-fs9"), "agent.offer.declined") >= 2
	})
	for _, id := range agents {
		a := e.do("GET", "/v1/agents/"+id, nil, 200)
		if a["status"] != domain.StatusAvailable || a["no_answer_count"] != float64(0) {
			t.Fatalf("after rings to a node nobody serves: agent %s status %v, no-answers %v; want available and 0", id, a["status"], a["no_answer_count"])
		}
	}
	// One offer a second while the outage lasts, not one agent after
	// another as fast as the rings fail.
	time.Sleep(time.Until(start.Add(2500 * time.Millisecond)))
	if n := strings.Count(e.history("QUEUES", "c-fs9"), "queue.member.offered"); n > 4 || n < 2 {
		t.Fatalf("%d offers in 2.5 s to a node nobody serves, want 2 to 4 (one a second)", n)
	}
	if o := wait(t, outs, "the caller's max wait"); o.Outcome != domain.OutcomeTimeout {
		t.Fatalf("outcome %+v, want timeout", o)
	} else if waited := time.Since(start); waited > 6*time.Second {
		t.Fatalf("timeout after %v, want about 4 s", waited)
	}
}
