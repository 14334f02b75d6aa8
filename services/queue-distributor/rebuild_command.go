package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/switchyard-voice/switchyard/pkg/bus"
	"github.com/switchyard-voice/switchyard/pkg/config"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/projection"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/rebuild"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/service"
)

// rebuildCommand replays the event log into an empty projection and prints
// its checksum. Running distributors need not be stopped: it takes the
// rebuild lock (waiting for a rebuild under way) and announces itself, so
// they pause their offers until it is done, then follow the streams from
// where it left the projection.
func rebuildCommand(ctx context.Context, args []string, getenv func(string) string, out, errOut io.Writer) (int, error) {
	var natsURL string
	var p projectionFlags
	set := p.declare("queue-distributor rebuild", getenv, errOut)
	set.String(&natsURL, "nats-url", "SWITCHYARD_NATS_URL", "nats://127.0.0.1:4222", "NATS server")
	rdb, prefix, err := p.open(set, args)
	if err != nil {
		return 2, err
	}
	defer rdb.Close()
	nc, err := bus.Connect(natsURL, "queue-distributor-rebuild", nil)
	if err != nil {
		return 1, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 1, err
	}
	unlock, err := service.LockRebuild(ctx, rdb, prefix, "queue-distributor rebuild", func(by string) {
		fmt.Fprintf(errOut, "waiting for the rebuild under way (%s)\n", by)
	})
	if err != nil {
		return 1, err
	}
	defer unlock()
	if err := service.AnnounceRebuild(ctx, nc, prefix, "queue-distributor rebuild"); err != nil {
		return 1, err
	}
	start := time.Now()
	store := projection.New(rdb, prefix, projection.Limits{})
	res, err := rebuild.Run(ctx, js, store)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return 1, errors.New("interrupted: the projection is partial; run rebuild again")
		}
		return 1, err
	}
	if err := service.MarkProjection(ctx, rdb, prefix, "queue-distributor rebuild"); err != nil {
		return 1, err
	}
	fmt.Fprintf(out, "rebuilt %d events (%d skipped, %d malformed: recorded, not applied) in %v; checksum %s\n", res.Events, res.Skipped, res.Malformed, time.Since(start).Round(time.Millisecond), res.Checksum)
	return 0, nil
}

// checksumCommand prints the checksum of the projection as it is (a
// running service's, to compare with what `rebuild` printed).
func checksumCommand(ctx context.Context, args []string, getenv func(string) string, out, errOut io.Writer) (int, error) {
	var p projectionFlags
	rdb, prefix, err := p.open(p.declare("queue-distributor checksum", getenv, errOut), args)
	if err != nil {
		return 2, err
	}
	defer rdb.Close()
	store := projection.New(rdb, prefix, projection.Limits{})
	sum, err := store.Checksum(ctx)
	if err != nil {
		return 1, err
	}
	var pos []string
	for _, stream := range []string{"QUEUES", "AGENTS"} {
		seq, err := store.LastApplied(ctx, stream)
		if err != nil {
			return 1, err
		}
		pos = append(pos, fmt.Sprintf("%s #%d", stream, seq))
	}
	fmt.Fprintf(out, "projection at %s; checksum %s\n", strings.Join(pos, ", "), sum)
	return 0, nil
}

// projectionFlags are the settings every subcommand on the projection
// takes: where it is in Redis.
type projectionFlags struct{ redisURL, prefix string }

// declare starts the subcommand's settings with the projection's.
func (p *projectionFlags) declare(name string, getenv func(string) string, errOut io.Writer) *config.Set {
	set := config.New(name)
	set.Getenv(getenv)
	set.SetOutput(errOut)
	set.String(&p.redisURL, "redis-url", "SWITCHYARD_REDIS_URL", "redis://127.0.0.1:6379/0", "Redis holding the projection")
	set.String(&p.prefix, "redis-prefix", "SWITCHYARD_QD_REDIS_PREFIX", "sy:qd:", "prefix of the projection's keys")
	return set
}

// open parses args and connects to the projection's Redis.
func (p *projectionFlags) open(set *config.Set, args []string) (*redis.Client, string, error) {
	if err := set.Parse(args); err != nil {
		return nil, "", err
	}
	opt, err := redis.ParseURL(p.redisURL)
	if err != nil {
		return nil, "", fmt.Errorf("--redis-url %q: %w", p.redisURL, err)
	}
	return redis.NewClient(opt), p.prefix, nil
}
