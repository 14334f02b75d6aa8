package adminhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchyard-voice/switchyard/pkg/testinfra"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/projection"
)

var servers *testinfra.Servers

func TestMain(m *testing.M) { os.Exit(testinfra.Main(m, &servers, testinfra.WithRedis)) }

// The wallboard stream sends only changed snapshots: while the numbers
// stay the same, so must the bytes (and their time).
func TestStatsJSONChangesOnlyWithTheNumbers(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: servers.Redis.Addr()})
	defer rdb.Close()
	st := projection.New(rdb, fmt.Sprintf("statsjson-%d:", time.Now().UnixNano()), projection.Limits{}) // a prefix per run: -count
	apply := func(seq uint64, typ, id string, data any) {
		raw, _ := json.Marshal(data)
		if _, err := st.Apply(ctx, projection.Event{Stream: domain.Stream(typ), Seq: seq, Type: typ, ID: id, Data: raw, At: time.Now()}, false); err != nil {
			t.Fatal(err)
		}
	}
	q := domain.Queue{Name: "q"}
	_ = q.Validate()
	apply(1, domain.QueueCreated, "q", domain.QueueData{Queue: q})
	src := StatsJSON(st, time.Minute, 0)
	first, err := src(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	same, _ := src(ctx)
	if string(first) != string(same) {
		t.Fatalf("unchanged numbers gave different snapshots:\n%s\n%s", first, same)
	}
	apply(2, domain.AgentCreated, "a", domain.AgentData{Agent: domain.Agent{ID: "a", Contact: "user/a"}})
	apply(2, domain.TierSet, "q", domain.TierData{Agent: "a", Level: 1})
	changed, _ := src(ctx)
	var a, b StatsBody
	_ = json.Unmarshal(first, &a)
	_ = json.Unmarshal(changed, &b)
	if string(first) == string(changed) || !b.At.After(a.At) {
		t.Fatalf("a new agent did not change the snapshot or its time:\n%s\n%s", first, changed)
	}
}

// Every open wallboard polls the stats each second, and a snapshot holds
// Redis for a script per queue: the streams share snapshots, so twenty
// wallboards asking at once cost one, and a snapshot younger than fresh is
// handed out again without Redis.
func TestWallboardsShareStatsSnapshots(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: servers.Redis.Addr()})
	defer rdb.Close()
	st := projection.New(rdb, "statsshared:", projection.Limits{})
	q := domain.Queue{Name: "q"}
	_ = q.Validate()
	raw, _ := json.Marshal(domain.QueueData{Queue: q})
	if _, err := st.Apply(ctx, projection.Event{Stream: "QUEUES", Seq: 1, Type: domain.QueueCreated, ID: "q", Data: raw, At: time.Now()}, false); err != nil {
		t.Fatal(err)
	}
	var cmds atomic.Int64
	rdb.AddHook(countHook{&cmds})
	src := StatsJSON(st, time.Minute, time.Hour)
	start := make(chan struct{})
	var wg sync.WaitGroup
	got := make([][]byte, 20)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			b, err := src(ctx)
			if err != nil {
				t.Error(err)
			}
			got[i] = b
		}()
	}
	close(start)
	wg.Wait()
	perSnapshot := int64(2) // the queue names, the queue's script
	if n := cmds.Load(); n > 2*perSnapshot {
		t.Fatalf("20 wallboards asking at once sent %d commands to Redis, want one snapshot's %d (two at most)", n, perSnapshot)
	}
	for _, b := range got {
		if !bytes.Contains(b, []byte(`"queue":"q"`)) {
			t.Fatalf("a wallboard got %s", b)
		}
	}
	before := cmds.Load()
	if _, err := src(ctx); err != nil || cmds.Load() != before {
		t.Fatalf("a fresh snapshot asked again went to Redis (%d commands, %v)", cmds.Load()-before, err)
	}
}

// countHook counts the commands a client sends.
type countHook struct{ n *atomic.Int64 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(int64(len(cmds))); return next(ctx, cmds) }
}
