// Package eventlog is the gateway's way onto JetStream: an outbox per call
// (and per node) that publishes events in order, retries through a NATS
// outage, and never blocks the goroutine that controls the call. Retries
// reuse the envelope's id, which JetStream de-duplicates on.
package eventlog

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/events"
)

// PublishFunc stores one envelope on subject (bus.Publish bound to a
// JetStream context).
type PublishFunc func(ctx context.Context, subject string, e *events.Envelope) (duplicate bool, err error)

// Hooks report outcomes to metrics; all optional.
type Hooks struct {
	Published func(typ string, duplicate bool)
	Failed    func(typ string, err error) // one failed attempt; it will be retried
	Dropped   func(typ string)            // given up: over MaxPending, or not flushed before shutdown
}

// Log holds the outboxes.
type Log struct {
	publish    PublishFunc
	hooks      Hooks
	logger     *slog.Logger
	maxPending int64

	mu      sync.Mutex
	queues  map[string]*queue
	pending atomic.Int64
	idle    chan struct{} // signalled whenever pending drops to zero
	stop    chan struct{}
	wg      sync.WaitGroup
}

type item struct {
	subject string
	env     *events.Envelope
	stored  func() // called once JetStream has it
}

type queue struct{ items []item }

// New builds a log. maxPending bounds events held while NATS is away (0:
// one million); past it new events are dropped and reported.
func New(publish PublishFunc, logger *slog.Logger, maxPending int, hooks Hooks) *Log {
	if maxPending <= 0 {
		maxPending = 1_000_000
	}
	return &Log{
		publish: publish, hooks: hooks, logger: logger, maxPending: int64(maxPending),
		queues: map[string]*queue{}, idle: make(chan struct{}, 1), stop: make(chan struct{}),
	}
}

// Append queues an event behind the others with the same key (a call's
// UUID keeps its events in order). stored, if set, runs once JetStream has
// acknowledged it. Append never blocks.
func (l *Log) Append(key, subject string, env *events.Envelope, stored func()) {
	if l.pending.Add(1) > l.maxPending {
		l.pending.Add(-1)
		l.logger.Error("event dropped: too many events waiting for NATS", "type", env.Type, "callid", env.CallID, "max_pending", l.maxPending)
		if l.hooks.Dropped != nil {
			l.hooks.Dropped(env.Type)
		}
		return
	}
	l.mu.Lock()
	q, running := l.queues[key]
	if !running {
		q = &queue{}
		l.queues[key] = q
	}
	q.items = append(q.items, item{subject, env, stored})
	if !running {
		l.wg.Add(1)
		go l.drain(key, q)
	}
	l.mu.Unlock()
}

// Pending is the number of events not yet stored.
func (l *Log) Pending() int { return int(l.pending.Load()) }

func (l *Log) drain(key string, q *queue) {
	defer l.wg.Done()
	for {
		l.mu.Lock()
		if len(q.items) == 0 {
			delete(l.queues, key)
			l.mu.Unlock()
			return
		}
		it := q.items[0]
		l.mu.Unlock()
		ok := l.publishWithRetry(it)
		l.mu.Lock()
		q.items[0] = item{}
		q.items = q.items[1:]
		l.mu.Unlock()
		if ok && it.stored != nil {
			it.stored()
		}
		if l.pending.Add(-1) == 0 {
			select {
			case l.idle <- struct{}{}:
			default:
			}
		}
	}
}

// publishWithRetry keeps trying until JetStream stores the event or the
// log is closed.
func (l *Log) publishWithRetry(it item) bool {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		dup, err := l.publish(ctx, it.subject, it.env)
		cancel()
		if err == nil {
			if l.hooks.Published != nil {
				l.hooks.Published(it.env.Type, dup)
			}
			return true
		}
		if l.hooks.Failed != nil {
			l.hooks.Failed(it.env.Type, err)
		}
		if attempt == 1 || attempt%20 == 0 {
			l.logger.Warn("publishing event failed; retrying", "type", it.env.Type, "callid", it.env.CallID, "attempt", attempt, "err", err)
		}
		select {
		case <-l.stop:
			l.logger.Error("event not stored before shutdown", "type", it.env.Type, "callid", it.env.CallID, "id", it.env.ID)
			if l.hooks.Dropped != nil {
				l.hooks.Dropped(it.env.Type)
			}
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// Flush waits until every queued event is stored or ctx ends; then it
// stops retrying and reports what was left.
func (l *Log) Flush(ctx context.Context) error {
	var err error
	for l.pending.Load() > 0 && err == nil {
		select {
		case <-l.idle:
		case <-ctx.Done():
			err = fmt.Errorf("%d events not stored: %w", l.pending.Load(), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	close(l.stop)
	l.wg.Wait()
	return err
}
