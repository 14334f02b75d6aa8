// Package rebuild replays QUEUES and AGENTS into an empty projection.
package rebuild

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/eventlog"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/projection"
)

// Result says what a rebuild did.
type Result struct {
	Events, Skipped int
	Checksum        string
}

// Run empties the projection and replays both streams into it, then
// makes agents whose delays are over offerable.
func Run(ctx context.Context, js jetstream.JetStream, store *projection.Store) (Result, error) {
	if err := store.Reset(ctx); err != nil {
		return Result{}, err
	}
	log := eventlog.New(js, "switchyard/queue-distributor/rebuild")
	var res Result
	for _, stream := range []string{"QUEUES", "AGENTS"} {
		n, err := log.Replay(ctx, stream, func(ev projection.Event, err error) error {
			if err != nil {
				res.Skipped++
				return nil
			}
			if _, err := store.Apply(ctx, ev, false); err != nil {
				return err
			}
			return nil
		})
		res.Events += n
		if err != nil {
			return res, fmt.Errorf("rebuild from %s: %w", stream, err)
		}
	}
	if _, _, err := store.Wake(ctx, time.Now()); err != nil {
		return res, err
	}
	sum, err := store.Checksum(ctx)
	res.Checksum = sum
	return res, err
}
