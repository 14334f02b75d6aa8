package service

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
)

// RebuildNotice is published (core NATS, a Notice) by whoever is about to
// reset and rebuild a projection — a distributor that found it lost, or
// `queue-distributor rebuild`. Every distributor using that projection
// pauses its decisions and waits for the rebuild lock to be free again.
const RebuildNotice = "queuectl.projection.rebuilding"

// Notice is RebuildNotice's payload.
type Notice struct {
	By     string `json:"by"`     // an instance, or "queue-distributor rebuild"
	Prefix string `json:"prefix"` // the projection's Redis key prefix
}

// RebuildGrace is how long a rebuilder waits after its notice before it
// resets the projection: time for the others to pause.
const RebuildGrace = 500 * time.Millisecond

const rebuildLockTTL = 30 * time.Second

// ProjectionFormat is the layout of the projection this code reads and
// writes. It is part of the mark's key, so a projection another layout
// built (an older release) bears no mark this release knows, and is
// rebuilt from the streams at start. Raise it whenever what the events
// write changes in a way old state lacks. 2: the online:<queue> sets;
// 3: the acount:<queue> counts of agents by status and state; 4: those
// counts also by tier level (in:<level>), in place of the online sets;
// 5: the stats' sums of finished calls per 10 s bucket (hsum:, hbk:).
const ProjectionFormat = 5

// ProjectionMark is the Redis key a complete build of the projection
// under prefix leaves (a rebuild, or the first start on empty streams).
// It lies inside the prefix, so that whatever empties the projection
// takes it too: its absence is how a running distributor knows the
// projection is gone. (Under lock:, which the checksum leaves out.)
func ProjectionMark(prefix string) string {
	return prefix + "lock:projection:v" + strconv.Itoa(ProjectionFormat)
}

// MarkProjection leaves the mark of a complete build by by.
func MarkProjection(ctx context.Context, rdb redis.UniversalClient, prefix, by string) error {
	if err := rdb.Set(ctx, ProjectionMark(prefix), by+" "+time.Now().UTC().Format(time.RFC3339), 0).Err(); err != nil {
		return fmt.Errorf("mark the projection built: %w", err)
	}
	return nil
}

// RebuildLockKey is the rebuild lock's Redis key. It lies outside the
// projection's prefix so that the reset it guards does not delete it.
func RebuildLockKey(prefix string) string { return "rebuild-lock:" + prefix }

var (
	unlockScript  = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)
	refreshScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`)
)

// LockRebuild takes the lock that lets one process at a time reset and
// rebuild the projection under prefix, waiting while another holds it
// (waiting, if not nil, is told once who that is). The lock lives as long
// as its holder refreshes it: one killed mid-rebuild lets it go within
// 30 s, and what it replayed so far is a consistent prefix of the log
// that following the streams completes.
func LockRebuild(ctx context.Context, rdb redis.UniversalClient, prefix, holder string, waiting func(holder string)) (unlock func(), err error) {
	key := RebuildLockKey(prefix)
	token := holder + " " + strconv.FormatInt(time.Now().UnixNano(), 36)
	for told := false; ; {
		ok, err := rdb.SetNX(ctx, key, token, rebuildLockTTL).Result()
		if err != nil {
			return nil, fmt.Errorf("take the rebuild lock %s: %w", key, err)
		}
		if ok {
			break
		}
		if !told && waiting != nil {
			by, _ := rdb.Get(ctx, key).Result()
			waiting(by)
			told = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(rebuildLockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_ = refreshScript.Run(context.Background(), rdb, []string{key}, token, rebuildLockTTL.Milliseconds()).Err()
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		_ = unlockScript.Run(context.Background(), rdb, []string{key}, token).Err()
	}, nil
}

// AnnounceRebuild tells every distributor that by is about to rebuild
// the projection under prefix, then waits RebuildGrace for them to pause.
func AnnounceRebuild(ctx context.Context, nc *nats.Conn, prefix, by string) error {
	b, _ := json.Marshal(Notice{By: by, Prefix: prefix})
	if err := nc.Publish(RebuildNotice, b); err != nil {
		return fmt.Errorf("announce the rebuild: %w", err)
	}
	if err := nc.FlushTimeout(2 * time.Second); err != nil {
		return fmt.Errorf("announce the rebuild: %w", err)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(RebuildGrace):
		return nil
	}
}
