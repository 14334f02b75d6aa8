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
	Events int
	// Skipped: on no aggregate's subject. Malformed: recorded, not
	// applied (projection.ApplyResult.Problem).
	Skipped, Malformed int
	Checksum           string
}

// Run empties the projection and replays both streams into it, then
// makes agents whose delays are over offerable.
//
// Events are applied in batches (projection.ApplyBatch), and the next
// batch is read from JetStream and decoded while Redis applies the last
// one: reading and applying each take about as long, so a rebuild takes
// the longer of the two rather than their sum. The order is the streams'
// (all of QUEUES, then all of AGENTS), as one by one.
func Run(ctx context.Context, js jetstream.JetStream, store *projection.Store) (Result, error) {
	if err := store.Reset(ctx); err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	batches := make(chan []projection.Event, 4)
	applied := make(chan error, 1)
	var malformed int
	go func() { applied <- applyAll(ctx, store, batches, cancel, &malformed) }()

	res, err := read(ctx, eventlog.New(js, "switchyard/queue-distributor/rebuild"), batches)
	close(batches)
	aerr := <-applied
	res.Malformed = malformed
	if aerr != nil {
		// The reader stopped because applying failed: that is the error.
		return res, aerr
	}
	if err != nil {
		return res, err
	}
	if _, _, err := store.Wake(ctx, time.Now()); err != nil {
		return res, err
	}
	sum, err := store.Checksum(ctx)
	res.Checksum = sum
	return res, err
}

// read replays both streams into batches of projection.MaxBatch events.
func read(ctx context.Context, log *eventlog.Log, batches chan<- []projection.Event) (Result, error) {
	var res Result
	batch := make([]projection.Event, 0, projection.MaxBatch)
	for _, stream := range []string{"QUEUES", "AGENTS"} {
		n, err := log.Replay(ctx, stream, func(ev projection.Event, err error) error {
			if err != nil {
				res.Skipped++
				return nil
			}
			batch = append(batch, ev)
			if len(batch) < cap(batch) {
				return nil
			}
			batches <- batch
			batch = make([]projection.Event, 0, projection.MaxBatch)
			return nil
		})
		res.Events += n
		if err != nil {
			return res, fmt.Errorf("rebuild from %s: %w", stream, err)
		}
	}
	if len(batch) > 0 {
		batches <- batch
	}
	return res, nil
}

// applyAll applies batches in order until the channel closes. After a
// failure it stops the reader (through cancel) and drains the channel so
// the reader never blocks on it. It counts the events recorded as
// malformed in *malformed, to be read once it has returned.
func applyAll(ctx context.Context, store *projection.Store, batches <-chan []projection.Event, cancel context.CancelCauseFunc, malformed *int) error {
	var failed error
	for b := range batches {
		if failed != nil {
			continue
		}
		rs, err := store.ApplyBatch(ctx, b)
		for _, r := range rs {
			if r.Problem != "" {
				*malformed++
			}
		}
		if err != nil {
			failed = fmt.Errorf("rebuild: %w", err)
			cancel(failed)
		}
	}
	return failed
}
