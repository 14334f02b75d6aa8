package distributor

import (
	"context"
	"errors"
	"time"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/projection"
)

// ErrRebuilding means the projection is being rebuilt from the event log
// (Redis was flushed or lost): nothing can be decided on it until it
// holds every event again. Callers retry.
var ErrRebuilding = errors.New("the queue projection is being rebuilt from the event log; try again in a moment")

// maxPauseWait is how long a command waits for a rebuild to end before
// it gives up with ErrRebuilding.
const maxPauseWait = 5 * time.Second

// Pause stops decisions while the projection cannot be trusted (being
// rebuilt, or catching up after a start): no offer is decided, no timer
// acts, commands wait. Offers already ringing go on; their events are
// stored and reach the projection once it follows the streams again.
func (d *Distributor) Pause() {
	d.pauseMu.Lock()
	defer d.pauseMu.Unlock()
	if d.resumed == nil {
		d.resumed = make(chan struct{})
		d.pauses.Add(1)
	}
}

// Resume lets decisions go on and looks at every queue: callers may have
// become offerable while paused.
func (d *Distributor) Resume(ctx context.Context) {
	d.pauseMu.Lock()
	if d.resumed != nil {
		close(d.resumed)
		d.resumed = nil
	}
	d.pauseMu.Unlock()
	if names, err := d.cfg.Store.QueueNames(ctx); err == nil {
		for _, q := range names {
			d.Kick(q)
		}
	}
	d.wakeSoon()
}

// Paused reports whether decisions are paused.
func (d *Distributor) Paused() bool {
	d.pauseMu.Lock()
	defer d.pauseMu.Unlock()
	return d.resumed != nil
}

// Steady waits (a few seconds at most) until decisions are not paused.
func (d *Distributor) Steady(ctx context.Context) error {
	d.pauseMu.Lock()
	ch := d.resumed
	d.pauseMu.Unlock()
	if ch == nil {
		return nil
	}
	t := time.NewTimer(maxPauseWait)
	defer t.Stop()
	select {
	case <-ch:
		return nil
	case <-t.C:
		return ErrRebuilding
	case <-ctx.Done():
		return ErrRebuilding
	}
}

// Confirm checks a "not found" from the projection: when the projection
// lost what it held (Redis flushed) it is not an answer but the loss, so
// the rebuild is started and waited for, and retry says read again.
// Other errors come back as they are.
func (d *Distributor) Confirm(ctx context.Context, err error) (retry bool, _ error) {
	if !errors.Is(err, projection.ErrNotFound) || d.cfg.Lost == nil || !d.cfg.Lost(ctx) {
		return false, err
	}
	if err := d.Steady(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// trusted runs read on the projection; a "not found" that was the
// projection's loss is waited out (the rebuild) and read again.
func (d *Distributor) trusted(ctx context.Context, read func() error) error {
	retry, err := d.Confirm(ctx, read())
	if retry {
		return read()
	}
	return err
}
