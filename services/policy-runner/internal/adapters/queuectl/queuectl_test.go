package queuectl_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-voice/switchyard/pkg/testinfra"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/adapters/queuectl"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/sandbox"
)

var infra *testinfra.Servers

func TestMain(m *testing.M) { os.Exit(testinfra.Main(m, &infra, testinfra.WithNATS)) }

// distributor answers queuectl as the queue-distributor does on the wire
// (docs/events.md, "queuectl"); each test says what it answers.
type distributor struct {
	t  *testing.T
	nc *nats.Conn

	mu       sync.Mutex
	joined   []map[string]any
	statuses int
}

func newDistributor(t *testing.T, enqueue func(req map[string]any) string, status func(n int) string) *distributor {
	t.Helper()
	nc, err := nats.Connect(infra.NATS.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	d := &distributor{t: t, nc: nc}
	if enqueue != nil {
		nc.Subscribe("queuectl.enqueue", func(m *nats.Msg) {
			var req map[string]any
			json.Unmarshal(m.Data, &req)
			d.mu.Lock()
			d.joined = append(d.joined, req)
			d.mu.Unlock()
			m.Respond([]byte(enqueue(req)))
		})
	}
	if status != nil {
		nc.Subscribe("queuectl.status", func(m *nats.Msg) {
			d.mu.Lock()
			d.statuses++
			n := d.statuses
			d.mu.Unlock()
			m.Respond([]byte(status(n)))
		})
	}
	nc.Flush()
	return d
}

func client(t *testing.T) *queuectl.Client {
	nc, err := nats.Connect(infra.NATS.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	c := queuectl.New(nc)
	c.Poll = 50 * time.Millisecond
	c.RequestTimeout = time.Second
	return c
}

var caller = luaapi.Call{CallID: "9b0f3f7e-0000-4000-8000-000000000001", Node: "fs1", CallerIDNumber: "+441234", CallerIDName: "Ada"}

func TestEnqueueOutcomes(t *testing.T) {
	waiting := `{"state":"waiting","member":{"call_id":"x"}}`
	for _, tc := range []struct {
		name    string
		enqueue string
		status  func(n int) string
		publish string // published on queuectl.outcome.<call> after the join
		want    luaapi.EnqueueResult
		wantErr string
	}{
		{name: "answered, published", enqueue: waiting, status: func(int) string { return waiting },
			publish: `{"outcome":"answered","queue":"sales","agent":"1001","wait_seconds":4.5}`,
			want:    luaapi.EnqueueResult{Outcome: "answered", Agent: "1001", WaitSeconds: 4.5}},
		{name: "no agents, in the reply", enqueue: `{"state":"done","outcome":{"outcome":"no_agents","queue":"sales","wait_seconds":0}}`,
			want: luaapi.EnqueueResult{Outcome: "no_agents"}},
		{name: "missed publication, found by polling", enqueue: waiting, status: func(n int) string {
			if n < 3 {
				return `{"state":"bridged"}`
			}
			return `{"state":"done","outcome":{"outcome":"overflowed","queue":"sales","target":"sales-2","wait_seconds":60}}`
		}, want: luaapi.EnqueueResult{Outcome: "overflowed", Target: "sales-2", WaitSeconds: 60}},
		{name: "exit key", enqueue: waiting, status: func(int) string { return waiting },
			publish: `{"outcome":"exit_key","queue":"sales","digit":"0","wait_seconds":2}`,
			want:    luaapi.EnqueueResult{Outcome: "exit_key", Digit: "0", WaitSeconds: 2}},
		{name: "unknown queue", enqueue: `{"error":{"code":"not_found","message":"no queue named sales"}}`,
			wantErr: "no queue named sales"},
		{name: "refused", enqueue: `{"error":{"code":"invalid_request","message":"skills: skill \"a b\": 1-64 letters"}}`,
			wantErr: "refused by the queue-distributor: invalid_request: skills"},
		{name: "distributor lost the caller", enqueue: waiting, status: func(int) string {
			return `{"error":{"code":"not_found","message":"no member"}}`
		}, wantErr: "no longer knows this call"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enqueue := func(map[string]any) string { return tc.enqueue }
			d := newDistributor(t, enqueue, tc.status)
			c := client(t)
			if tc.publish != "" {
				go func() {
					eventually(t, func() bool { d.mu.Lock(); defer d.mu.Unlock(); return len(d.joined) > 0 })
					d.nc.Publish("queuectl.outcome."+caller.CallID, []byte(tc.publish))
				}()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := c.Enqueue(ctx, caller, luaapi.EnqueueRequest{Queue: "sales"})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestNoDistributorIsNotAvailable(t *testing.T) {
	_, err := client(t).Enqueue(context.Background(), caller, luaapi.EnqueueRequest{Queue: "nobody-serves-this"})
	if !errors.Is(err, luaapi.ErrNotAvailable) {
		t.Fatalf("err %v, want not available", err)
	}
}

func TestWaitEndsWithTheRun(t *testing.T) {
	newDistributor(t, func(map[string]any) string { return `{"state":"waiting"}` }, func(int) string { return `{"state":"waiting"}` })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := client(t).Enqueue(ctx, caller, luaapi.EnqueueRequest{Queue: "sales"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the run's deadline", err)
	}
}

// A policy's queue.enqueue reaches the distributor with the call's node
// and caller, its priority, skills (a list, levels, or both) and timeout,
// and the outcome comes back to the Lua as a table.
func TestPolicyEnqueueOnTheWire(t *testing.T) {
	d := newDistributor(t, func(map[string]any) string {
		return `{"state":"done","outcome":{"outcome":"timeout","queue":"support","wait_seconds":30}}`
	}, nil)
	sb := sandbox.New(sandbox.Limits{})
	defer sb.Close()
	src := `
local r = queue.enqueue("support", {priority = 7, timeout = 30, skills = {"french", billing = 3}})
assert(r.outcome == "timeout" and r.wait_seconds == 30 and r.agent == "", r.outcome)
local ok, err = pcall(queue.enqueue, "support", {skills = {french = "high"}})
assert(not ok and string.find(err, "skills: want"), err)`
	prog, err := sandbox.Compile("t", src, sandbox.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	env := luaapi.Env{Ctx: context.Background(), Call: caller, Queue: client(t), Logger: slog.New(slog.DiscardHandler)}
	if _, err := sb.Run(context.Background(), prog, sandbox.Env{Install: luaapi.InstallFor(env)}); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.joined) != 1 {
		t.Fatalf("%d joins, want 1 (the bad skills never reach the wire)", len(d.joined))
	}
	got, _ := json.Marshal(d.joined[0])
	want := `{"call_id":"9b0f3f7e-0000-4000-8000-000000000001","caller_id_name":"Ada","caller_id_number":"+441234","max_wait_seconds":30,"node":"fs1","priority":7,"queue":"support","skills":{"billing":3,"french":0}}`
	if string(got) != want {
		t.Fatalf("join request\n got %s\nwant %s", got, want)
	}
}

func eventually(t *testing.T, f func() bool) {
	deadline := time.Now().Add(5 * time.Second)
	for !f() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}
