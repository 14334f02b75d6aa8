// Package eventlog is the queue-distributor's source of truth: QUEUES and
// AGENTS in JetStream. It appends events with optimistic concurrency per
// aggregate (a queue, an agent) and follows the streams in order to feed
// the Redis projection.
package eventlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/bus"
	"github.com/switchyard-voice/switchyard/pkg/events"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/domain"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/projection"
)

// ErrConflict means the aggregate changed since the version the caller
// decided on: read it again and retry (or give up).
var ErrConflict = errors.New("changed concurrently")

// Any skips the version check (events only their owner writes, e.g. a
// member's offer outcome, carry de-duplicating ids instead).
const Any = -1

// Log appends to and follows QUEUES and AGENTS.
type Log struct {
	js     jetstream.JetStream
	source string
}

// New returns the log; source names this instance in envelopes.
func New(js jetstream.JetStream, source string) *Log { return &Log{js: js, source: source} }

// Ensure creates the streams if they are missing.
func (l *Log) Ensure(ctx context.Context) error {
	return bus.EnsureStreams(ctx, l.js, "QUEUES", "AGENTS")
}

// Appended is a stored event.
type Appended struct {
	Event     projection.Event
	Duplicate bool // JetStream had it already (a retried append)
}

// Append stores one event of type typ about aggregate id. expect is the
// aggregate's version (the sequence of its last event; 0: it must not
// exist yet; Any: no check). eventID, when not empty, makes a retry
// store the event once.
func (l *Log) Append(ctx context.Context, eventID, typ, id, callID string, data any, expect int64) (Appended, error) {
	subject := domain.Subject(typ, id)
	env, err := events.New(eventID, l.source, typ, subject, callID, data)
	if err != nil {
		return Appended{}, err
	}
	body, err := env.Marshal()
	if err != nil {
		return Appended{}, err
	}
	msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	msg.Header.Set(nats.MsgIdHdr, env.ID)
	msg.Header.Set("Ce-Type", typ)
	var opts []jetstream.PublishOpt
	if expect != Any {
		opts = append(opts, jetstream.WithExpectLastSequenceForSubject(uint64(expect), domain.AggregateFilter(typ, id)))
	}
	ack, err := l.js.PublishMsg(ctx, msg, opts...)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return Appended{}, fmt.Errorf("append %s to %s: %w (expected version %d)", typ, id, ErrConflict, expect)
		}
		return Appended{}, fmt.Errorf("append %s to %s: %w", typ, id, err)
	}
	return Appended{Duplicate: ack.Duplicate, Event: projection.Event{
		Stream: ack.Stream, Seq: ack.Sequence, Type: typ, ID: id, Data: env.Data, At: env.Time, EventID: env.ID,
	}}, nil
}

// Decode turns a stored message into a projection event. A message on a
// subject that names no aggregate of stream is an error: nothing can be
// done with it. Any other message is an event of its aggregate, counted
// in its version as JetStream counts it; when it is not an envelope, or
// its type does not belong on its subject, it carries the Problem, and
// the projection records it and changes nothing else (as it does with
// data its scripts cannot read: projection.CheckData).
func Decode(stream string, seq uint64, subject string, body []byte) (projection.Event, error) {
	parts := strings.SplitN(subject, ".", 3)
	if len(parts) < 3 || parts[1] == "" || parts[2] == "" || strings.ToUpper(parts[0]) != stream {
		return projection.Event{Stream: stream}, fmt.Errorf("%s #%d: subject %s names no aggregate of the stream", stream, seq, subject)
	}
	ev := projection.Event{Stream: stream, Seq: seq, ID: parts[1]}
	env, err := events.Parse(body)
	switch {
	case err != nil:
		ev.Problem = fmt.Sprintf("not an event envelope: %v", err)
	case domain.Subject(env.Type, parts[1]) != subject:
		ev.Type, ev.EventID = env.Type, env.ID
		ev.Problem = fmt.Sprintf("type %s does not belong on subject %s", env.Type, subject)
	default:
		ev.Type, ev.Data, ev.At, ev.EventID = env.Type, env.Data, env.Time, env.ID
	}
	return ev, nil
}

// Follow delivers stream's events after sequence from, in order, to fn,
// until ctx ends; fn's error is logged by the caller and the event is
// not retried (a projection that cannot apply an event must not block
// the ones behind it). Follow survives NATS restarts (an ordered
// consumer re-creates itself where it stopped).
func (l *Log) Follow(ctx context.Context, stream string, from uint64, fn func(projection.Event, error)) (stop func(), err error) {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if from > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = from + 1
	}
	c, err := l.js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("follow %s from #%d: %w", stream, from, err)
	}
	cc, err := c.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			fn(projection.Event{Stream: stream}, fmt.Errorf("%s: message without metadata: %w", stream, err))
			return
		}
		ev, err := Decode(stream, md.Sequence.Stream, m.Subject(), m.Data())
		fn(ev, err)
	})
	if err != nil {
		return nil, fmt.Errorf("follow %s: %w", stream, err)
	}
	return cc.Stop, nil
}

// Last is the stream's last sequence (0 when empty).
func (l *Log) Last(ctx context.Context, stream string) (uint64, error) {
	s, err := l.js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	return info.State.LastSeq, nil
}

// Replay reads stream from the start up to its current end, in order,
// batch by batch (for rebuild); fn returning an error stops it.
func (l *Log) Replay(ctx context.Context, stream string, fn func(projection.Event, error) error) (n int, err error) {
	last, err := l.Last(ctx, stream)
	if err != nil || last == 0 {
		return 0, err
	}
	c, err := l.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return 0, fmt.Errorf("replay %s: %w", stream, err)
	}
	for {
		batch, err := c.FetchNoWait(1000)
		if err != nil {
			return n, fmt.Errorf("replay %s: %w", stream, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return n, fmt.Errorf("replay %s: %w", stream, err)
			}
			if err := fn(Decode(stream, md.Sequence.Stream, m.Subject(), m.Data())); err != nil {
				return n, err
			}
			n++
			if md.Sequence.Stream >= last {
				return n, nil
			}
		}
		if err := batch.Error(); err != nil {
			return n, fmt.Errorf("replay %s: %w", stream, err)
		}
		if got == 0 {
			select {
			case <-ctx.Done():
				return n, ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
}
