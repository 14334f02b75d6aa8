package service

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/fssim"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/ports/queuectl"
)

// A caller who left one queue (its max wait passed) is queued in another
// by its policy: the second join is a new member, offered and answered.
func TestCallerQueuedAgainAfterLeavingAQueue(t *testing.T) {
	e := newEnv(t)
	e.sim.SetEndpoint("user/6001", fssim.Endpoint{AnswerAfter: 20 * time.Millisecond})
	e.do("PUT", "/v1/queues/first", map[string]any{"max_wait_seconds": 1}, 201)
	e.do("PUT", "/v1/agents/6009", map[string]any{"contact": "user/6009"}, 201)
	e.do("PUT", "/v1/queues/first/tiers/6009", map[string]any{}, 200)
	e.do("PUT", "/v1/agents/6009/status", map[string]any{"status": "on_break"}, 200)
	e.setup("top-down", "6001")
	e.caller("c-9")
	outs := e.outcomes("c-9")
	if r := e.enqueue(queuectl.EnqueueRequest{CallID: "c-9", Queue: "first", Node: "fs1"}); r.Error != nil {
		t.Fatalf("enqueue first: %+v", r.Error)
	}
	if o := wait(t, outs, "outcome in first"); o.Outcome != "timeout" {
		t.Fatalf("first: %+v", o)
	}
	r := e.enqueue(queuectl.EnqueueRequest{CallID: "c-9", Queue: "support", Node: "fs1"})
	if r.Error != nil || r.Member == nil {
		t.Fatalf("enqueue support after first: %+v", r)
	}
	e.eventually("agent in call", func() bool { _, st := e.agentState("6001"); return st == "in_call" })
	// Asked now, the call is in this queue's call, not done with the
	// first queue's timeout.
	b, _ := json.Marshal(map[string]string{"call_id": "c-9"})
	m, err := e.nc.Request(queuectl.Status, b, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var st queuectl.Reply
	if err := json.Unmarshal(m.Data, &st); err != nil || st.State != "bridged" {
		t.Fatalf("status during the second queue: %s (%v)", m.Data, err)
	}
	e.callEvent("c-9", "hangup", map[string]any{"cause": "NORMAL_CLEARING"})
	if o := wait(t, outs, "outcome in support"); o.Outcome != "answered" || o.Queue != "support" || o.Agent != "6001" {
		t.Fatalf("support: %+v", o)
	}
}

// A caller who hung up is not queued again: that would ring an agent for
// nobody.
func TestHungUpCallerIsNotQueuedAgain(t *testing.T) {
	e := newEnv(t)
	e.do("PUT", "/v1/queues/support", map[string]any{"max_wait_with_no_agent_seconds": 60}, 201)
	e.caller("c-10")
	outs := e.outcomes("c-10")
	if r := e.enqueue(queuectl.EnqueueRequest{CallID: "c-10", Queue: "support", Node: "fs1"}); r.Error != nil || r.Member == nil {
		t.Fatalf("enqueue: %+v", r)
	}
	e.callEvent("c-10", "hangup", map[string]any{"cause": "NORMAL_CLEARING"})
	if o := wait(t, outs, "outcome"); o.Outcome != "abandoned" {
		t.Fatalf("outcome %+v", o)
	}
	r := e.enqueue(queuectl.EnqueueRequest{CallID: "c-10", Queue: "support", Node: "fs1"})
	if r.State != "done" || r.Outcome == nil || r.Outcome.Outcome != "abandoned" || r.Member != nil {
		t.Fatalf("enqueue after hang-up: %+v", r)
	}
}

// Left twice the same way (timed out of two queues): each time the member
// is gone from its queue, none is left behind to be offered later.
func TestCallerTimesOutOfTwoQueues(t *testing.T) {
	e := newEnv(t)
	e.do("PUT", "/v1/agents/6010", map[string]any{"contact": "user/6010"}, 201)
	e.do("PUT", "/v1/agents/6010/status", map[string]any{"status": "on_break"}, 200)
	for _, q := range []string{"first", "second"} {
		e.do("PUT", "/v1/queues/"+q, map[string]any{"max_wait_seconds": 1}, 201)
		e.do("PUT", "/v1/queues/"+q+"/tiers/6010", map[string]any{}, 200)
	}
	e.caller("c-11")
	outs := e.outcomes("c-11")
	for _, q := range []string{"first", "second"} {
		if r := e.enqueue(queuectl.EnqueueRequest{CallID: "c-11", Queue: q, Node: "fs1"}); r.Error != nil || r.Member == nil {
			t.Fatalf("enqueue %s: %+v", q, r)
		}
		if o := wait(t, outs, "outcome in "+q); o.Outcome != "timeout" || o.Queue != q {
			t.Fatalf("%s: %+v", q, o)
		}
		e.eventually("no member left in "+q, func() bool {
			ms, _ := e.svc.store.Members(context.Background(), q)
			return len(ms) == 0
		})
	}
}

// A rebuild brings back what the projection keeps from the events of the
// last minutes: the outcome queuectl.status answers for a call that left
// its queue, and the place held for a caller who hung up — and not a place
// already taken back by the number's next join.
func TestRebuildKeepsOutcomesAndHeldPlaces(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.do("PUT", "/v1/queues/support", map[string]any{"abandoned_resume_allowed": true, "discard_abandoned_after_seconds": 300,
		"max_wait_with_no_agent_seconds": 60}, 201)
	e.do("PUT", "/v1/queues/short", map[string]any{"max_wait_seconds": 1, "max_wait_with_no_agent_seconds": 60}, 201)
	join := func(cid, queue, number string) queuectl.Reply {
		t.Helper()
		e.caller(cid)
		r := e.enqueue(queuectl.EnqueueRequest{CallID: cid, Queue: queue, Node: "fs1", CallerNumber: number})
		if r.Error != nil || r.Member == nil {
			t.Fatalf("enqueue %s: %+v", cid, r)
		}
		return r
	}
	hangUp := func(cid string) {
		t.Helper()
		outs := e.outcomes(cid)
		e.callEvent(cid, "hangup", map[string]any{"cause": "NORMAL_CLEARING"})
		if o := wait(t, outs, "outcome of "+cid); o.Outcome != "abandoned" {
			t.Fatalf("%s: %+v", cid, o)
		}
	}
	// c-20 hangs up: abandoned, its number's place held.
	first := join("c-20", "support", "+441110000")
	hangUp("c-20")
	// c-21 times out of the short queue.
	outs := e.outcomes("c-21")
	join("c-21", "short", "")
	if o := wait(t, outs, "outcome of c-21"); o.Outcome != "timeout" {
		t.Fatalf("c-21: %+v", o)
	}
	// c-22 hangs up, and its number calls back as c-23, taking the place.
	held := join("c-22", "support", "+442220000")
	hangUp("c-22")
	if again := join("c-23", "support", "+442220000"); again.Member.JoinedAt != held.Member.JoinedAt {
		t.Fatalf("c-23 joined at %d, want c-22's place %d", again.Member.JoinedAt, held.Member.JoinedAt)
	}

	other := e.rebuildMatchesLive()
	for cid, want := range map[string]string{"c-20": `"outcome":"abandoned"`, "c-21": `"outcome":"timeout"`, "c-23": ""} {
		b, err := other.LoadOutcome(ctx, cid)
		if err != nil || !strings.Contains(string(b), want) || (want == "") != (b == nil) {
			t.Fatalf("rebuilt outcome of %s: %s (%v), want %q", cid, b, err, want)
		}
	}
	if b, _ := other.LoadOutcome(ctx, "c-21"); !strings.Contains(string(b), `"queue":"short"`) {
		t.Fatalf("rebuilt outcome of c-21: %s", b)
	}
	if at, ok, err := other.TakePlace(ctx, "support", "+441110000"); err != nil || !ok || at != first.Member.JoinedAt {
		t.Fatalf("rebuilt place of c-20's number: %d %v %v, want %d", at, ok, err, first.Member.JoinedAt)
	}
	if _, ok, _ := other.TakePlace(ctx, "support", "+442220000"); ok {
		t.Fatal("the rebuild holds a place its number already took back")
	}
	// What the status of a finished call answers, live: the kept outcome.
	b, _ := json.Marshal(map[string]string{"call_id": "c-21"})
	m, err := e.nc.Request(queuectl.Status, b, 5*time.Second)
	if err != nil || !strings.Contains(string(m.Data), `"outcome":"timeout"`) {
		t.Fatalf("status of c-21: %s (%v)", m.Data, err)
	}
}
