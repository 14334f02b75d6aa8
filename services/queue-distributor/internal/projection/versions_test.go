package projection

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
)

// reads counts the commands a client sends to Redis.
type reads struct{ n atomic.Int64 }

func (h *reads) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *reads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h *reads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(int64(len(cmds))); return next(ctx, cmds) }
}

// An agent's version is taken from the events this Store applied when it
// can be (no Redis round trip before a status change), and from Redis
// whenever what it remembers could be wrong about the agent being there.
func TestAgentVersionRemembersWhatThisStoreApplied(t *testing.T) {
	ctx := context.Background()
	status := func(f *fixture, id string) {
		f.ev(domain.AgentStatusChanged, id, domain.StatusData{Status: domain.StatusOnBreak, At: f.clock.UnixMilli()})
	}
	for _, tc := range []struct {
		name string
		// events returns the version the agent has in the log (0: gone).
		events     func(f *fixture) uint64
		remembered bool
		wantReads  int64
	}{
		{"made here", func(f *fixture) uint64 { f.agent("a1", "q", 1, 1, nil); return f.seq["AGENTS"] }, true, 0},
		{"changed here", func(f *fixture) uint64 {
			f.agent("a1", "q", 1, 1, nil)
			status(f, "a1")
			f.available("a1")
			return f.seq["AGENTS"]
		}, true, 0},
		{"asked not to remember", func(f *fixture) uint64 { f.agent("a1", "q", 1, 1, nil); return f.seq["AGENTS"] }, false, 1},
		{"deleted", func(f *fixture) uint64 {
			f.agent("a1", "q", 1, 1, nil)
			f.ev(domain.AgentDeleted, "a1", struct{}{})
			return 0
		}, true, 1},
		{"deleted, then a stale event about it", func(f *fixture) uint64 {
			f.agent("a1", "q", 1, 1, nil)
			f.ev(domain.AgentDeleted, "a1", struct{}{})
			status(f, "a1")
			return 0
		}, true, 1},
		{"an event the projection ignored", func(f *fixture) uint64 {
			f.agent("a1", "q", 1, 1, nil)
			f.ev(domain.AgentStateChanged, "a1", domain.StateData{State: domain.StateInCall, CallID: "c", OfferID: "nobody's", At: 1})
			return f.seq["AGENTS"]
		}, true, 1},
		{"made again after its deletion", func(f *fixture) uint64 {
			f.agent("a1", "q", 1, 1, nil)
			f.ev(domain.AgentDeleted, "a1", struct{}{})
			f.agent("a1", "q", 1, 1, nil)
			return f.seq["AGENTS"]
		}, true, 0},
		{"applied by the follower, in a batch", func(f *fixture) uint64 {
			f.queue(domain.Queue{Name: "q"})
			l := &eventLog{seq: map[string]uint64{"QUEUES": f.seq["QUEUES"]}, clock: f.clock}
			l.add(domain.AgentCreated, "a1", domain.AgentData{Agent: domain.Agent{ID: "a1", Contact: "user/a1"}})
			l.add(domain.AgentStatusChanged, "a1", domain.StatusData{Status: domain.StatusAvailable, At: 1})
			l.add(domain.AgentStatusChanged, "a2", domain.StatusData{Status: domain.StatusAvailable, At: 1}) // no such agent
			if _, err := f.s.ApplyBatch(ctx, l.evs); err != nil {
				t.Fatal(err)
			}
			return l.seq["AGENTS"] - 1
		}, true, 0},
		{"applied by another instance", func(f *fixture) uint64 {
			f.agent("a1", "q", 1, 1, nil)
			status(f, "a1")
			f.s = New(f.s.rdb, f.s.prefix, f.s.lim)
			return f.seq["AGENTS"]
		}, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.queue(domain.Queue{Name: "q"})
			want := tc.events(f)
			h := &reads{}
			f.s.rdb.AddHook(h)
			got, err := f.s.AgentVersion(ctx, "a1", tc.remembered)
			switch {
			case want == 0 && !errors.Is(err, ErrNotFound):
				t.Fatalf("version of a deleted agent: %d, %v; want not found", got, err)
			case want != 0 && (err != nil || got != want):
				t.Fatalf("version %d (%v), want %d", got, err, want)
			}
			if n := h.n.Load(); n != tc.wantReads {
				t.Fatalf("%d Redis commands, want %d", n, tc.wantReads)
			}
			if want != 0 {
				// Once read, it is remembered.
				if got, err := f.s.AgentVersion(ctx, "a1", true); err != nil || got != want || h.n.Load() != tc.wantReads {
					t.Fatalf("second read: %d (%v) after %d commands", got, err, h.n.Load())
				}
			}
		})
	}
}
