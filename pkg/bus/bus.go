// Package bus wires services to NATS: a connection that keeps trying while
// NATS is away, the JetStream streams of the contract, and publishing event
// envelopes with their id as Nats-Msg-Id so that a retried publish is stored
// once.
package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/events"
)

// Connect dials NATS and keeps reconnecting for ever: a service starts and
// keeps serving what it can while NATS is down. name identifies the client
// in NATS' monitoring. The handlers, if set, report connection changes.
func Connect(url, name string, onChange func(connected bool, err error)) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectBufSize(8 << 20),
	}
	if onChange != nil {
		opts = append(opts,
			nats.ConnectHandler(func(*nats.Conn) { onChange(true, nil) }),
			nats.ReconnectHandler(func(*nats.Conn) { onChange(true, nil) }),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { onChange(false, err) }),
		)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", url, err)
	}
	return nc, nil
}

// Stream is one JetStream stream of the contract.
type Stream struct {
	Name     string
	Subjects []string
	MaxAge   time.Duration
}

// Streams are the streams of docs/architecture.md.
var Streams = []Stream{
	{Name: "CALLS", Subjects: []string{"calls.>"}, MaxAge: 7 * 24 * time.Hour},
	{Name: "QUEUES", Subjects: []string{"queues.>"}},
	{Name: "AGENTS", Subjects: []string{"agents.>"}},
	{Name: "POLICIES", Subjects: []string{"policies.>"}, MaxAge: 7 * 24 * time.Hour},
	{Name: "PUSH", Subjects: []string{"push.>"}, MaxAge: 7 * 24 * time.Hour},
	{Name: "FSEVENTS", Subjects: []string{"fs.*.events.>"}, MaxAge: 24 * time.Hour},
}

// DedupWindow is how long JetStream remembers a Nats-Msg-Id. A publisher
// that retries for longer than this after an outage may store a duplicate;
// publishers bound their retries by it.
const DedupWindow = 10 * time.Minute

// noPerSubjectLimit is a per-subject message limit no subject reaches.
// Set, it makes nats-server (2.15) store the stream in 4 MiB blocks
// instead of the 8 MiB it gives a stream with no limits; that halves the
// stall every block costs its readers. A block's write cache grows
// 256 KiB → 1 MiB → 4 MiB → 8 MiB as it fills, and each step copies what
// it holds into a fresh buffer while the stream's locks are held: the
// copy of 4 MiB into new memory held deliveries for 20-80 ms every ~14,000
// of our messages on a 2-core machine; the last step of a 4 MiB block
// copies 1 MiB (docs/benchmarks.md, push-notifier). There is no block
// size in a stream's configuration; this is the setting that chooses one
// (autoTuneFileStorageBlockSize in nats-server's stream.go). It takes
// effect when a stream is created or the server restarts.
const noPerSubjectLimit = 1_000_000_000

// Config is the stream's JetStream configuration: file-backed, with the
// de-duplication window.
func (s Stream) Config() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:       s.Name,
		Subjects:   s.Subjects,
		Storage:    jetstream.FileStorage,
		MaxAge:     s.MaxAge,
		Duplicates: DedupWindow,
		// No real limit: it is there for the block size it brings.
		MaxMsgsPerSubject: noPerSubjectLimit,
	}
}

// EnsureStreams creates or updates the named streams (all when none are
// named) with their Config.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, names ...string) error {
	for _, s := range Streams {
		if len(names) > 0 && !contains(names, s.Name) {
			continue
		}
		if _, err := js.CreateOrUpdateStream(ctx, s.Config()); err != nil {
			return fmt.Errorf("ensure stream %s: %w", s.Name, err)
		}
	}
	return nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// Publish stores one envelope on subject, with its id as Nats-Msg-Id. It
// reports whether JetStream had already stored it (a duplicate of a retry).
func Publish(ctx context.Context, js jetstream.JetStream, subject string, e *events.Envelope) (duplicate bool, err error) {
	body, err := e.Marshal()
	if err != nil {
		return false, err
	}
	msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	msg.Header.Set(nats.MsgIdHdr, e.ID)
	msg.Header.Set("Ce-Type", e.Type)
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		return false, fmt.Errorf("publish %s to %s: %w", e.Type, subject, err)
	}
	return ack.Duplicate, nil
}

// ErrNoResponders is what a request to a subject nobody serves returns;
// re-exported so callers need not import nats.go to branch on it.
var ErrNoResponders = nats.ErrNoResponders

// IsUnavailable reports whether err means NATS could not be reached (as
// opposed to a refusal by JetStream).
func IsUnavailable(err error) bool {
	return errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrNoServers) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionReconnecting)
}
