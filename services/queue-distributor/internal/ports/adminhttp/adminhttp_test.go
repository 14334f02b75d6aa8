package adminhttp

import (
	"context"
	"encoding/json"
	"os"
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
	st := projection.New(rdb, "statsjson:", projection.Limits{})
	apply := func(seq uint64, typ, id string, data any) {
		raw, _ := json.Marshal(data)
		if _, err := st.Apply(ctx, projection.Event{Stream: domain.Stream(typ), Seq: seq, Type: typ, ID: id, Data: raw, At: time.Now()}, false); err != nil {
			t.Fatal(err)
		}
	}
	q := domain.Queue{Name: "q"}
	_ = q.Validate()
	apply(1, domain.QueueCreated, "q", domain.QueueData{Queue: q})
	src := StatsJSON(st, time.Minute)
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
