package service

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// A projection an older release built lacks what this one keeps (format
// 1: no acount:<queue>, so every queue would look as if nobody were
// logged in, and the stats would show no agents). It bears that release's mark, not this one's: the service
// rebuilds it from the streams before serving, and then agrees with a
// rebuild.
func TestProjectionOfAnOlderFormatIsRebuiltAtStart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.setup("top-down", "7001")
	e.rebuildMatchesLive()
	e.stop()

	rdb := redis.NewClient(&redis.Options{Addr: servers.Redis.Addr()})
	defer rdb.Close()
	// What format 1 left: its mark (lock:projection) and no online sets.
	if err := rdb.Rename(ctx, ProjectionMark(e.prefix), e.prefix+"lock:projection").Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Del(ctx, e.prefix+"acount:support").Result(); err != nil || n != 1 {
		t.Fatalf("the counts of support: deleted %d (%v), want 1", n, err)
	}

	e.start()
	if in, err := e.svc.store.LoggedIn(ctx, "support"); err != nil || !in {
		t.Fatalf("after the start: anyone logged in to support = %v (%v), want true (7001 logged in)", in, err)
	}
	if st, ok, err := e.svc.store.Stats(ctx, "support", time.Now(), time.Minute); err != nil || !ok || st.Agents["available"] != 1 {
		t.Fatalf("after the start: stats of support %+v (%v %v), want one agent available", st.Agents, ok, err)
	}
	if n, err := rdb.Exists(ctx, ProjectionMark(e.prefix), e.prefix+"lock:projection").Result(); err != nil || n != 1 {
		t.Fatalf("%d marks (%v), want this format's alone", n, err)
	}
	e.rebuildMatchesLive()
}
