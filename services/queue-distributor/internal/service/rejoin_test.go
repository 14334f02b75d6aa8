package service

import (
	"context"
	"encoding/json"
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
