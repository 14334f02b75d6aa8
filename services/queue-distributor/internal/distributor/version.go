package distributor

import (
	"context"
	"fmt"
	"time"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
)

// logVersion is the version of aggregate id (root "queue" or "agent") as
// the log has it — the sequence of its last event, whatever that event
// did — once the projection holds that event, so that what is then read
// from the projection is decided on every event of the aggregate. The
// projection's own version does not move for an event that changed
// nothing in it (a member's event for its queue, a stale or duplicate
// event it ignored), and an aggregate deleted has none; appending with
// it would conflict for ever. ok is false when the log cannot be asked
// (no Config.Version): the projection's version is used.
func (d *Distributor) logVersion(ctx context.Context, root, id string) (v int64, ok bool, err error) {
	if d.cfg.Version == nil {
		return 0, false, nil
	}
	sample := root + ".version"
	stream := domain.Stream(sample)
	last, err := d.cfg.Version(ctx, stream, domain.AggregateFilter(sample, id))
	if err != nil {
		return 0, false, err
	}
	deadline := now().Add(5 * time.Second)
	for {
		got, err := d.cfg.Store.LastApplied(ctx, stream)
		if err != nil {
			return 0, false, err
		}
		if got >= last {
			return int64(last), true, nil
		}
		if now().After(deadline) {
			return 0, false, fmt.Errorf("the projection is at %s #%d, %s %s's last event is #%d", stream, got, root, id, last)
		}
		select {
		case <-ctx.Done():
			return 0, false, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}
