package service

import (
	"context"
	"time"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/projection"
)

// follower applies one stream's events as the consumer delivers them.
// The consumer hands them over and goes on reading; the applier takes
// whatever has queued up meanwhile (up to projection.MaxBatch) and
// applies it in one script call. One at a time, each event cost a Redis
// round trip and the follower fell behind a busy contact centre; batched,
// a burst costs one round trip per batch, and a lone event is applied at
// once as before.
type follower struct {
	s    *Service
	evs  chan projection.Event
	done chan struct{}
	over chan struct{}
	gone bool // the projection was found gone: nothing more is applied
}

func (s *Service) newFollower() *follower {
	f := &follower{s: s, evs: make(chan projection.Event, 4*projection.MaxBatch), done: make(chan struct{}), over: make(chan struct{})}
	go f.run()
	return f
}

// deliver is the consumer's callback. An event that cannot be decoded is
// counted and logged, never applied.
func (f *follower) deliver(ev projection.Event, err error) {
	if err != nil {
		f.s.m.Applied.WithLabelValues(ev.Stream, "bad").Inc()
		f.s.log.Error("event skipped: not a valid queue/agent event", "err", err)
		return
	}
	select {
	case f.evs <- ev:
	case <-f.done:
	}
}

// stop ends the applier once its batch is applied. Events still queued
// are dropped: the next start follows from the projection's position.
func (f *follower) stop() {
	close(f.done)
	<-f.over
}

func (f *follower) run() {
	defer close(f.over)
	batch := make([]projection.Event, 0, projection.MaxBatch)
	for {
		select {
		case <-f.done:
			return
		case ev := <-f.evs:
			batch = append(batch[:0], ev)
		}
	more:
		for len(batch) < cap(batch) {
			select {
			case ev := <-f.evs:
				batch = append(batch, ev)
			default:
				break more
			}
		}
		f.apply(batch)
	}
}

// apply applies batch, retrying from the first event not applied while
// Redis fails (the stream is the truth; the projection waits for Redis).
// Every event applied is counted and its queues looked at.
func (f *follower) apply(batch []projection.Event) {
	// Applied to a projection that is gone (Redis flushed), a batch would
	// stand on nothing, and, during a rebuild, make the replay skip what
	// came before it: look for the projection's mark first.
	if f.gone || !f.s.present(context.Background()) {
		if !f.gone {
			f.gone = true
			f.s.log.Error("the projection in Redis is gone: not following the streams into it", "stream", batch[0].Stream, "seq", batch[0].Seq)
			f.s.pauseAndRestore()
		}
		return
	}
	for attempt := 0; len(batch) > 0; attempt++ {
		rs, err := f.s.store.ApplyBatch(context.Background(), batch)
		for i, r := range rs {
			ev := batch[i]
			if r.Problem != "" {
				f.s.m.Applied.WithLabelValues(ev.Stream, projection.Malformed).Inc()
				f.s.log.Error("event cannot be applied: its sequence is recorded, its data ignored", "stream", ev.Stream, "seq", ev.Seq, "type", ev.Type, "id", ev.ID, "problem", r.Problem)
				f.s.d.Applied(r)
				continue
			}
			f.s.m.Applied.WithLabelValues(ev.Stream, r.Status).Inc()
			if r.Status == projection.Ignored {
				f.s.log.Debug("event ignored by the projection", "stream", ev.Stream, "seq", ev.Seq, "type", ev.Type, "id", ev.ID, "why", r.Detail)
			}
			f.s.d.Applied(r)
		}
		batch = batch[len(rs):]
		if err == nil {
			return
		}
		f.s.log.Warn("cannot apply events to redis; retrying", "stream", batch[0].Stream, "seq", batch[0].Seq, "err", err)
		select {
		case <-f.done:
			return
		case <-time.After(min(time.Duration(attempt+1)*100*time.Millisecond, 2*time.Second)):
		}
	}
}
