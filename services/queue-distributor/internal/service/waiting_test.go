package service

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/fssim"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/ports/queuectl"
)

// broadcasts collects the uuid_broadcast commands sent for the next d.
func (e *env) broadcasts(d time.Duration) []string {
	var out []string
	deadline := time.After(d)
	for {
		select {
		case c := <-e.api:
			if strings.HasPrefix(c, "uuid_broadcast ") {
				out = append(out, c)
			}
		case <-deadline:
			return out
		}
	}
}

// Waiting callers hear the queue's announcement every period, with their
// place in line and the estimated wait (the window's average speed of
// answer, in minutes rounded up), each announcement once.
func TestWaitingCallersHearAnnouncements(t *testing.T) {
	e := newEnv(t)
	e.sim.SetEndpoint("user/1001", fssim.Endpoint{AnswerAfter: 20 * time.Millisecond})
	e.setup("longest-idle-agent", "1001")
	e.do("PUT", "/v1/queues/support", map[string]any{"wrap_up_seconds": 0, "announce_sound": "ivr/hold_on.wav",
		"announce_frequency_seconds": 5, "announce_position": true, "announce_wait_time": true}, 200)

	// One answered call gives the window an average speed of answer.
	e.caller("c-0")
	outs := e.outcomes("c-0")
	e.enqueue(queuectl.EnqueueRequest{CallID: "c-0", Queue: "support", Node: "fs1"})
	e.eventually("agent in call", func() bool { _, st := e.agentState("1001"); return st == "in_call" })
	e.callEvent("c-0", "unbridged", map[string]any{})
	wait(t, outs, "the first call's outcome")
	e.do("PUT", "/v1/agents/1001/status", map[string]any{"status": "on_break"}, 200)

	for len(e.api) > 0 {
		<-e.api
	}
	for _, id := range []string{"c-1", "c-2"} {
		e.caller(id)
		if r := e.enqueue(queuectl.EnqueueRequest{CallID: id, Queue: "support", Node: "fs1"}); r.State != "waiting" {
			t.Fatalf("%s: %+v", id, r)
		}
		time.Sleep(10 * time.Millisecond) // c-1 first in line
	}
	got := strings.Join(e.broadcasts(7*time.Second), "\n")
	want := strings.Join([]string{
		"uuid_broadcast c-1 ivr/hold_on.wav aleg",
		"uuid_broadcast c-1 phrase:switchyard_queue_position:1 aleg",
		"uuid_broadcast c-1 phrase:switchyard_queue_wait:1 aleg",
		"uuid_broadcast c-2 ivr/hold_on.wav aleg",
		"uuid_broadcast c-2 phrase:switchyard_queue_position:2 aleg",
		"uuid_broadcast c-2 phrase:switchyard_queue_wait:1 aleg",
	}, "\n")
	if got != want {
		t.Fatalf("announcements in the first 7 s\n got:\n%s\nwant:\n%s", got, want)
	}
}

// A queue that lets callers wait for agents (max_wait_with_no_agent)
// takes them in with nobody logged in, and lets them go with no_agents
// once it has had no agent for that long; a caller joining after that
// waits only max_wait_with_no_agent_time_reached. An agent logging in
// keeps callers in.
func TestCallersLeaveAQueueWithoutAgents(t *testing.T) {
	e := newEnv(t)
	e.do("PUT", "/v1/queues/support", map[string]any{"max_wait_with_no_agent_seconds": 2, "max_wait_with_no_agent_time_reached_seconds": 1}, 201)
	e.do("PUT", "/v1/agents/1001", map[string]any{"contact": "user/1001"}, 201)
	e.do("PUT", "/v1/queues/support/tiers/1001", map[string]any{"level": 1}, 200)

	e.caller("c-1")
	outs := e.outcomes("c-1")
	start := time.Now()
	if r := e.enqueue(queuectl.EnqueueRequest{CallID: "c-1", Queue: "support", Node: "fs1"}); r.State != "waiting" {
		t.Fatalf("with max_wait_with_no_agent the caller should wait: %+v", r)
	}
	o := wait(t, outs, "no_agents")
	if waited := time.Since(start); o.Outcome != "no_agents" || waited < 1500*time.Millisecond {
		t.Fatalf("outcome %+v after %v, want no_agents after about 2 s", o, waited)
	}

	// The queue is past its limit: a new caller gets only 1 s.
	e.caller("c-2")
	outs = e.outcomes("c-2")
	start = time.Now()
	e.enqueue(queuectl.EnqueueRequest{CallID: "c-2", Queue: "support", Node: "fs1"})
	o = wait(t, outs, "no_agents for the late caller")
	if waited := time.Since(start); o.Outcome != "no_agents" || waited > 2500*time.Millisecond {
		t.Fatalf("late caller: outcome %+v after %v, want no_agents within about 1 s", o, waited)
	}

	// An agent logs in (and goes on a break): callers stay.
	e.do("POST", "/v1/agents/1001/login", nil, 200)
	e.do("PUT", "/v1/agents/1001/status", map[string]any{"status": "on_break"}, 200)
	e.caller("c-3")
	outs = e.outcomes("c-3")
	e.enqueue(queuectl.EnqueueRequest{CallID: "c-3", Queue: "support", Node: "fs1"})
	select {
	case o := <-outs:
		t.Fatalf("a caller left a queue with an agent logged in: %+v", o)
	case <-time.After(3500 * time.Millisecond):
	}
	if m := e.do("GET", "/v1/queues/support/members", nil, 200)["members"].([]any); len(m) != 1 {
		t.Fatalf("members %v, want c-3 waiting", m)
	}
}

// A caller who hung up while waiting and calls back from the same number
// within discard_abandoned_after takes their old place again, ahead of
// those who joined after them; on a queue without abandoned_resume_allowed
// they start at the end.
func TestAbandonedCallerResumesTheirPlace(t *testing.T) {
	e := newEnv(t)
	e.do("PUT", "/v1/agents/1001", map[string]any{"contact": "user/1001"}, 201)
	for _, q := range []struct {
		name   string
		resume bool
	}{{"support", true}, {"sales", false}} {
		e.do("PUT", "/v1/queues/"+q.name, map[string]any{"abandoned_resume_allowed": q.resume, "discard_abandoned_after_seconds": 60}, 201)
		e.do("PUT", "/v1/queues/"+q.name+"/tiers/1001", map[string]any{"level": 1}, 200)
	}
	e.do("POST", "/v1/agents/1001/login", nil, 200)
	e.do("PUT", "/v1/agents/1001/status", map[string]any{"status": "on_break"}, 200)

	order := func(queue string) string {
		var ids []string
		for _, m := range e.do("GET", "/v1/queues/"+queue+"/members", nil, 200)["members"].([]any) {
			ids = append(ids, m.(map[string]any)["call_id"].(string))
		}
		return strings.Join(ids, " ")
	}
	for _, queue := range []string{"support", "sales"} {
		first, second, again := queue+"-1", queue+"-2", queue+"-3"
		for _, c := range []struct{ id, number string }{{first, "+4411"}, {second, "+4422"}} {
			e.caller(c.id)
			e.enqueue(queuectl.EnqueueRequest{CallID: c.id, Queue: queue, Node: "fs1", CallerNumber: c.number})
			time.Sleep(5 * time.Millisecond)
		}
		outs := e.outcomes(first)
		e.callEvent(first, "hangup", map[string]any{"cause": "NORMAL_CLEARING"})
		if o := wait(t, outs, "abandoned"); o.Outcome != "abandoned" {
			t.Fatalf("%s: %+v", queue, o)
		}
		e.caller(again)
		e.enqueue(queuectl.EnqueueRequest{CallID: again, Queue: queue, Node: "fs1", CallerNumber: "+4411"})
		want := again + " " + second
		if queue == "sales" {
			want = second + " " + again
		}
		if got := order(queue); got != want {
			t.Fatalf("%s: line %q, want %q", queue, got, want)
		}
	}
}

// A queue's callers advance its stream subjects: its configuration and
// tiers can still be changed after calls went through it (the version an
// append expects follows every event of the queue, not only config ones).
func TestQueueChangesAfterCalls(t *testing.T) {
	e := newEnv(t)
	e.oneCallAnswered()
	e.caller("c-2")
	e.do("PUT", "/v1/agents/1001/status", map[string]any{"status": "on_break"}, 200)
	outs := e.outcomes("c-2")
	e.enqueue(queuectl.EnqueueRequest{CallID: "c-2", Queue: "support", Node: "fs1"})
	e.callEvent("c-2", "hangup", map[string]any{"cause": "NORMAL_CLEARING"})
	wait(t, outs, "abandoned")

	e.do("PUT", "/v1/queues/support", map[string]any{"strategy": "top-down"}, 200)
	e.do("PUT", "/v1/queues/support/tiers/1001", map[string]any{"level": 2}, 200)
	e.do("PUT", "/v1/agents/1001", map[string]any{"contact": "user/1001", "wrap_up_seconds": 5}, 200)
	e.do("DELETE", "/v1/queues/support/tiers/1001", nil, 204)
	e.do("DELETE", "/v1/queues/support", nil, 204)
}

// A phone that fails at once (busy) with no delays configured is rung
// again, but not hammered: at most once per MinRetryDelay.
func TestFailingPhoneIsNotHammered(t *testing.T) {
	e := newEnv(t)
	e.sim.SetEndpoint("user/1001", fssim.Endpoint{Fail: "USER_BUSY"})
	e.setup("longest-idle-agent", "1001")
	e.do("PUT", "/v1/agents/1001", map[string]any{"contact": "user/1001", "max_no_answer": 0}, 200)
	e.caller("c-1")
	for len(e.api) > 0 {
		<-e.api
	}
	e.enqueue(queuectl.EnqueueRequest{CallID: "c-1", Queue: "support", Node: "fs1"})
	rings := 0
	deadline := time.After(2500 * time.Millisecond)
	for done := false; !done; {
		select {
		case c := <-e.api:
			if strings.HasPrefix(c, "originate") {
				rings++
			}
		case <-deadline:
			done = true
		}
	}
	if rings < 2 || rings > 4 {
		t.Fatalf("%d rings of a busy phone in 2.5 s, want it retried about once a second", rings)
	}
}
