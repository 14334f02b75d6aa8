package service

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/fssim"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/eventlog"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/ports/queuectl"
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
// queue, one the projection ignores — or an aggregate deleted leave the
// projection's version of the aggregate behind the log's: commands on it
// must still go through (they expect the log's version).
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
}
