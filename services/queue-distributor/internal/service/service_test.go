package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/switchyard-voice/switchyard/pkg/bus"
	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/pkg/fssim"
	"github.com/switchyard-voice/switchyard/pkg/testinfra"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/distributor"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/ports/queuectl"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/projection"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/rebuild"
)

var servers *testinfra.Servers

func TestMain(m *testing.M) {
	os.Exit(testinfra.Main(m, &servers, testinfra.WithRedis))
}

const token = "t0ken"

// env is a distributor against real NATS and Redis, with FreeSWITCH
// simulated by fssim behind a stand-in for the gateway's NATS subjects
// (fs.fs1.api runs the simulator's api; callctl.* answers ok).
type env struct {
	t      *testing.T
	nc     *nats.Conn
	js     jetstream.JetStream
	sim    *fssim.Sim
	svc    *Service
	cfg    Config
	stop   func() // stops svc (a SIGTERM)
	base   string
	prefix string
	api    chan string // api commands the "gateway" ran
	// malformed is how many events the test stored that the projection
	// cannot read (the distributor's own: none).
	malformed int
}

var envN int

func newEnv(t *testing.T) *env {
	envN++
	e := &env{t: t, prefix: fmt.Sprintf("svc%d:", envN), api: make(chan string, 256)}
	e.sim = fssim.New(fssim.Options{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { e.sim.Close() })
	ns := testinfra.NewNATS(t) // its own streams: tests reuse queue and agent names
	var err error
	if e.nc, err = nats.Connect(ns.URL()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.nc.Close)
	e.js, _ = jetstream.New(e.nc)
	sub, _ := e.nc.Subscribe("fs.fs1.api", func(m *nats.Msg) {
		var req struct {
			Command string `json:"command"`
		}
		_ = json.Unmarshal(m.Data, &req)
		select {
		case e.api <- req.Command:
		default:
		}
		go func() {
			out := e.sim.API(context.Background(), req.Command)
			var reply any = map[string]string{"output": out}
			if strings.HasPrefix(out, "-ERR") {
				cause := strings.Fields(strings.TrimPrefix(out, "-ERR "))
				reply = map[string]any{"error": map[string]string{"code": "command_failed", "message": strings.TrimSpace(out), "cause": cause[0]}}
			}
			b, _ := json.Marshal(reply)
			_ = m.Respond(b)
		}()
	})
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	sub2, _ := e.nc.Subscribe("callctl.*", func(m *nats.Msg) { _ = m.Respond([]byte(`{"ok":true}`)) })
	t.Cleanup(func() { _ = sub2.Unsubscribe() })

	cfg := Config{NATSURL: ns.URL(), RedisURL: servers.Redis.URL(), Prefix: e.prefix, AdminAddr: "127.0.0.1:0",
		AdminToken: token, Instance: fmt.Sprint("qd-test-", envN), Workers: 2, StatsWindow: 15 * time.Minute, ShutdownGrace: 5 * time.Second, LogLevel: "debug"}
	e.cfg = cfg
	e.start()
	return e
}

// start runs a distributor on e.cfg: at first, and again after stop.
func (e *env) start() {
	e.t.Helper()
	svc, err := New(e.cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.Run(ctx) }()
	e.stop = sync.OnceFunc(func() { cancel(); <-done })
	e.t.Cleanup(e.stop)
	e.svc, e.base = svc, "http://"+svc.AdminAddr()
	e.eventually("ready", func() bool { return svc.ready.Load() })
}

func (e *env) eventually(what string, f func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) do(method, path string, body any, want int) map[string]any {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		e.t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, raw, want)
	}
	out := map[string]any{}
	_ = json.Unmarshal(raw, &out)
	return out
}

func (e *env) agentState(id string) (status, state string) {
	a := e.do("GET", "/v1/agents/"+id, nil, 200)
	return fmt.Sprint(a["status"]), fmt.Sprint(a["state"])
}

// caller makes a live caller channel in the simulator, as a call the
// gateway holds would be.
func (e *env) caller(id string) {
	e.t.Helper()
	e.sim.SetEndpoint("user/caller-"+id, fssim.Endpoint{})
	if out := e.sim.API(context.Background(), "originate {origination_uuid="+id+"}user/caller-"+id+" &park()"); !strings.HasPrefix(out, "+OK") {
		e.t.Fatalf("caller: %s", out)
	}
}

func (e *env) enqueue(req queuectl.EnqueueRequest) queuectl.Reply {
	e.t.Helper()
	b, _ := json.Marshal(req)
	m, err := e.nc.Request(queuectl.Enqueue, b, 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	var r queuectl.Reply
	_ = json.Unmarshal(m.Data, &r)
	return r
}

func (e *env) outcomes(callID string) <-chan distributor.Outcome {
	ch := make(chan distributor.Outcome, 4)
	sub, _ := e.nc.Subscribe(queuectl.OutcomePrefix+callID, func(m *nats.Msg) {
		var o distributor.Outcome
		_ = json.Unmarshal(m.Data, &o)
		ch <- o
	})
	e.t.Cleanup(func() { _ = sub.Unsubscribe() })
	return ch
}

// callEvent publishes what the gateway would for the caller's channel.
func (e *env) callEvent(callID, event string, data map[string]any) {
	e.t.Helper()
	data["call_id"] = callID
	env, _ := events.New("", "switchyard/esl-gateway/test", "call."+event, "calls."+callID+"."+event, callID, data)
	if _, err := bus.Publish(context.Background(), e.js, "calls."+callID+"."+event, env); err != nil {
		e.t.Fatal(err)
	}
}

func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// history is what stream holds about a call: each event's type, in
// order, with the agents it names.
func (e *env) history(stream, callID string) string {
	e.t.Helper()
	ctx := context.Background()
	c, err := e.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		e.t.Fatal(err)
	}
	last, err := e.svc.elog.Last(ctx, stream)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for seq := uint64(0); seq < last; {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			e.t.Fatalf("read %s after #%d of %d: %v", stream, seq, last, err)
		}
		md, _ := m.Metadata()
		seq = md.Sequence.Stream
		env, err := events.Parse(m.Data())
		if err != nil || env.CallID != callID {
			continue
		}
		var d struct {
			Agents []string `json:"agents"`
		}
		_ = json.Unmarshal(env.Data, &d)
		if len(d.Agents) > 0 {
			out = append(out, fmt.Sprintf("%s%v", env.Type, d.Agents))
		} else {
			out = append(out, env.Type)
		}
	}
	return strings.Join(out, " ")
}

func (e *env) setup(strategy string, agents ...string) {
	e.do("PUT", "/v1/queues/support", map[string]any{"strategy": strategy, "wrap_up_seconds": 0}, 201)
	for i, a := range agents {
		e.do("PUT", "/v1/agents/"+a, map[string]any{"contact": "user/" + a, "ring_timeout_seconds": 1, "max_no_answer": 1}, 201)
		e.do("PUT", "/v1/queues/support/tiers/"+a, map[string]any{"level": 1, "position": i + 1}, 200)
		e.do("POST", "/v1/agents/"+a+"/login", nil, 200)
	}
}

func TestCallerAnsweredByAgentThenWrapUp(t *testing.T) {
	e := newEnv(t)
	e.sim.SetEndpoint("user/1001", fssim.Endpoint{AnswerAfter: 20 * time.Millisecond})
	e.setup("longest-idle-agent", "1001")
	e.caller("c-1")
	outs := e.outcomes("c-1")
	r := e.enqueue(queuectl.EnqueueRequest{CallID: "c-1", Queue: "support", Node: "fs1", CallerNumber: "+4420"})
	if r.Error != nil || r.Member == nil {
		t.Fatalf("enqueue: %+v", r)
	}
	e.eventually("agent in call", func() bool { _, st := e.agentState("1001"); return st == "in_call" })
	// The same request again (its first answer lost on the way) while
	// the caller talks: no second join, no second offer.
	if again := e.enqueue(queuectl.EnqueueRequest{CallID: "c-1", Queue: "support", Node: "fs1", CallerNumber: "+4420"}); again.Error != nil || again.State != "bridged" || again.Member != nil {
		t.Fatalf("enqueue of a bridged caller: %+v", again)
	}
	// The originate rang the agent's contact with the member's variables,
	// and the bridge joined caller and agent leg.
	var orig, bridge string
	for len(e.api) > 0 {
		c := <-e.api
		if strings.HasPrefix(c, "originate") {
			orig = c
		}
		if strings.HasPrefix(c, "uuid_bridge") {
			bridge = c
		}
	}
	if !strings.Contains(orig, "switchyard_member=c-1") || !strings.HasSuffix(orig, "}user/1001 &park()") || !strings.Contains(orig, "origination_caller_id_number=+4420") {
		t.Fatalf("originate: %q", orig)
	}
	if !strings.HasPrefix(bridge, "uuid_bridge c-1 ") {
		t.Fatalf("bridge: %q", bridge)
	}
	// The agent hangs up: the caller's channel is unbridged.
	e.callEvent("c-1", "unbridged", map[string]any{"other_leg": strings.Fields(bridge)[2]})
	o := wait(t, outs, "outcome")
	if o.Outcome != "answered" || o.Agent != "1001" || o.Queue != "support" {
		t.Fatalf("outcome %+v", o)
	}
	e.eventually("agent idle after wrap-up", func() bool { _, st := e.agentState("1001"); return st == "idle" })
	// The queue's log tells the call's story in order, the offer naming
	// the agent rung (it is stored as the agent rings, not before).
	if got := e.history("QUEUES", "c-1"); got != "queue.member.joined queue.member.offered[1001] queue.member.answered" {
		t.Fatalf("the call's history in QUEUES: %s", got)
	}
	st := e.do("GET", "/v1/queues/support/stats", nil, 200)
	if st["answered"] != 1.0 || st["waiting"] != 0.0 {
		t.Fatalf("stats %v", st)
	}

	// The log rebuilt into an empty projection is the live one.
	e.rebuildMatchesLive()
}

// An instance can die after storing a call's end and before telling the
// caller side; the call event it took comes back to another instance,
// which finds nothing left to do. It tells the kept outcome again — only
// for a redelivered event: a first delivery about a call that is no
// member is nothing to tell.
func TestRedeliveredCallEventTellsTheKeptOutcomeAgain(t *testing.T) {
	e := newEnv(t)
	outs := e.oneCallAnswered()
	ctx := context.Background()
	for _, typ := range []string{"call.unbridged", "call.hangup"} {
		if err := e.svc.d.HandleCall(ctx, distributor.CallEvent{Type: typ, CallID: "c-1"}); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.d.HandleCall(ctx, distributor.CallEvent{Type: typ, CallID: "c-1", Redelivered: true}); err != nil {
			t.Fatal(err)
		}
		// One telling per redelivery; a first delivery's would be left
		// over for the check below.
		if o := wait(t, outs, typ+" redelivered"); o.Outcome != "answered" || o.Agent != "1001" || o.Queue != "support" {
			t.Fatalf("told again after %s: %+v", typ, o)
		}
	}
	select {
	case o := <-outs:
		t.Fatalf("an outcome told too many times: %+v", o)
	case <-time.After(200 * time.Millisecond):
	}
}

// oneCallAnswered sets up a support queue with agent 1001 and puts
// caller c-1 through it: queued, answered by 1001, the agent hung up and
// the answered outcome told. It returns c-1's outcomes to come.
func (e *env) oneCallAnswered() <-chan distributor.Outcome {
	e.t.Helper()
	e.sim.SetEndpoint("user/1001", fssim.Endpoint{AnswerAfter: 20 * time.Millisecond})
	e.setup("longest-idle-agent", "1001")
	e.caller("c-1")
	outs := e.outcomes("c-1")
	e.enqueue(queuectl.EnqueueRequest{CallID: "c-1", Queue: "support", Node: "fs1"})
	e.eventually("agent in call", func() bool { _, st := e.agentState("1001"); return st == "in_call" })
	e.callEvent("c-1", "unbridged", map[string]any{})
	if o := wait(e.t, outs, "outcome"); o.Outcome != "answered" || o.Agent != "1001" {
		e.t.Fatalf("c-1's outcome %+v", o)
	}
	return outs
}

// rebuildMatchesLive waits until the live projection holds every event,
// replays the log into an empty projection under another prefix and
// fails unless both checksums are equal. It returns the rebuilt one.
func (e *env) rebuildMatchesLive() *projection.Store {
	e.t.Helper()
	ctx := context.Background()
	e.eventually("projection caught up", func() bool {
		for _, s := range []string{"QUEUES", "AGENTS"} {
			got, _ := e.svc.store.LastApplied(ctx, s)
			last, err := e.svc.elog.Last(ctx, s)
			if err != nil || got != last {
				return false
			}
		}
		return true
	})
	rdb := redis.NewClient(&redis.Options{Addr: servers.Redis.Addr()})
	e.t.Cleanup(func() { rdb.Close() })
	other := projection.New(rdb, "rebuilt-"+e.prefix, projection.Limits{})
	res, err := rebuild.Run(ctx, e.js, other)
	// Every event the distributor wrote is one the projection can read.
	if err != nil || res.Events == 0 || res.Malformed != e.malformed || res.Skipped != 0 {
		e.t.Fatalf("rebuild: %+v %v", res, err)
	}
	if live, _ := e.svc.store.Checksum(ctx); res.Checksum != live {
		e.t.Fatalf("rebuilt checksum %s, live %s", res.Checksum, live)
	}
	return other
}

func TestNoAnswerGoesToNextAgentAndBreaksTheFirst(t *testing.T) {
	e := newEnv(t)
	e.sim.SetEndpoint("user/2001", fssim.Endpoint{NoAnswer: true})
	e.sim.SetEndpoint("user/2002", fssim.Endpoint{AnswerAfter: 10 * time.Millisecond})
	e.setup("top-down", "2001", "2002")
	e.caller("c-2")
	if r := e.enqueue(queuectl.EnqueueRequest{CallID: "c-2", Queue: "support", Node: "fs1"}); r.Error != nil {
		t.Fatalf("enqueue: %+v", r.Error)
	}
	e.eventually("second agent in call", func() bool { _, st := e.agentState("2002"); return st == "in_call" })
	status, state := e.agentState("2001")
	if status != "on_break" || state != "idle" {
		t.Fatalf("first agent %s/%s after max_no_answer=1, want on_break/idle", status, state)
	}
}

func TestCallerHangupStopsTheRing(t *testing.T) {
	e := newEnv(t)
	e.sim.SetEndpoint("user/3001", fssim.Endpoint{NoAnswer: true})
	e.do("PUT", "/v1/queues/support", map[string]any{"strategy": "ring-all"}, 201)
	e.do("PUT", "/v1/agents/3001", map[string]any{"contact": "user/3001", "ring_timeout_seconds": 30}, 201)
	e.do("PUT", "/v1/queues/support/tiers/3001", map[string]any{}, 200)
	e.do("POST", "/v1/agents/3001/login", nil, 200)
	e.caller("c-3")
	outs := e.outcomes("c-3")
	e.enqueue(queuectl.EnqueueRequest{CallID: "c-3", Queue: "support", Node: "fs1"})
	e.eventually("agent offered", func() bool { _, st := e.agentState("3001"); return st == "offered" })
	e.callEvent("c-3", "hangup", map[string]any{"cause": "NORMAL_CLEARING"})
	if o := wait(t, outs, "outcome"); o.Outcome != "abandoned" {
		t.Fatalf("outcome %+v", o)
	}
	// The ring stopped at once (not after 30 s) and cost the agent nothing.
	e.eventually("agent idle again", func() bool { st, s := e.agentState("3001"); return st == "available" && s == "idle" })
	if n := len(e.sim.Channels()); n != 0 {
		// the caller is still in the simulator (we only told the
		// distributor it hung up); the agent's leg must be gone
		for _, id := range e.sim.Channels() {
			if id != "c-3" {
				t.Fatalf("ghost channel %s left ringing", id)
			}
		}
	}
}

func TestReplacingIsAnUpdateInTheLog(t *testing.T) {
	e := newEnv(t)
	e.do("PUT", "/v1/queues/q", map[string]any{}, 201)
	e.do("PUT", "/v1/queues/q", map[string]any{"strategy": "top-down"}, 200)
	e.do("PUT", "/v1/agents/a", map[string]any{"contact": "user/a"}, 201)
	e.do("PUT", "/v1/agents/a", map[string]any{"contact": "user/b"}, 200)
	for stream, subject := range map[string]string{"QUEUES": "queues.q.updated", "AGENTS": "agents.a.updated"} {
		s, err := e.js.Stream(context.Background(), stream)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetLastMsgForSubject(context.Background(), subject); err != nil {
			t.Errorf("%s: %v", subject, err)
		}
	}
	if q := e.do("GET", "/v1/queues/q", nil, 200); q["strategy"] != "top-down" {
		t.Fatalf("queue after replace: %v", q)
	}
}

func TestRESTValidation(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		method, path string
		body         any
		want         int
	}{
		{"PUT", "/v1/queues/bad.name", map[string]any{}, 400},
		{"PUT", "/v1/queues/q", map[string]any{"strategy": "fastest"}, 400},
		{"PUT", "/v1/agents/a", map[string]any{"contact": ""}, 400},
		{"PUT", "/v1/agents/a", map[string]any{"contact": "user/1\r\nhupall"}, 400},
		{"PUT", "/v1/queues/q/tiers/nobody", map[string]any{}, 404},
		{"PUT", "/v1/agents/a/status", map[string]any{"status": "sleeping"}, 400},
		{"POST", "/v1/agents/nobody/login", nil, 404},
		{"GET", "/v1/queues/none", nil, 404},
		{"GET", "/v1/queues/none/tiers", nil, 404},
		{"GET", "/v1/queues/none/members", nil, 404},
		{"DELETE", "/v1/queues/q/tiers/bad.name", nil, 400},
		{"PUT", "/v1/queues/bad.name/tiers/a", map[string]any{}, 400},
	}
	for _, c := range cases {
		e.do(c.method, c.path, c.body, c.want)
	}
	// The wallboard page needs no token; its data stream does.
	if resp, err := http.Get(e.base + "/wallboard"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("wallboard page: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	req, _ := http.NewRequest("GET", e.base+"/v1/queues", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("no token: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
}

// A stats window longer than the history the projection keeps would show
// a day's numbers under a longer name: refused at start, before anything
// is connected.
func TestStatsWindowIsBoundedByTheHistoryKept(t *testing.T) {
	for _, window := range []time.Duration{-time.Minute, 0, 24*time.Hour + time.Second, 7 * 24 * time.Hour} {
		cfg := Config{AdminToken: "t", RedisURL: "redis://127.0.0.1:1/0", NATSURL: "nats://127.0.0.1:1", StatsWindow: window}
		_, err := New(cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
		if err == nil || !strings.Contains(err.Error(), "--stats-window") {
			t.Errorf("window %v: %v; want the window refused", window, err)
		}
	}
}
