package eventlog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/bus"
	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/pkg/testinfra"
)

// Events appended while NATS is dead are stored, once each and in order per
// call, when it comes back; the appender never blocks.
func TestOutboxSurvivesNATSRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := testinfra.NewNATS(t)
	nc, err := bus.Connect(srv.URL(), "eventlog-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := bus.EnsureStreams(ctx, js, "CALLS"); err != nil {
		t.Fatal(err)
	}
	log := New(func(ctx context.Context, subject string, e *events.Envelope) (bool, error) {
		return bus.Publish(ctx, js, subject, e)
	}, slog.New(slog.NewTextHandler(io.Discard, nil)), 0, Hooks{})

	const calls, perCall = 20, 10
	appendAll := func(from, to int) {
		for i := from; i < to; i++ {
			for c := 0; c < calls; c++ {
				id := fmt.Sprintf("call-%d", c)
				env, _ := events.New(fmt.Sprintf("%s.%d", id, i), "test", "call.dtmf", "", id, map[string]int{"seq": i})
				start := time.Now()
				log.Append(id, "calls."+id+".dtmf", env, nil)
				if time.Since(start) > 50*time.Millisecond {
					t.Fatalf("Append blocked for %v", time.Since(start))
				}
			}
		}
	}
	appendAll(0, perCall/2)
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	appendAll(perCall/2, perCall)
	if log.Pending() == 0 {
		t.Fatal("nothing pending while NATS is dead")
	}
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := log.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	for c := 0; c < calls; c++ {
		id := fmt.Sprintf("call-%d", c)
		cons, err := js.OrderedConsumer(ctx, "CALLS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"calls." + id + ".>"}})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < perCall; i++ {
			msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
			if err != nil {
				t.Fatalf("%s: event %d: %v", id, i, err)
			}
			env, _ := events.Parse(msg.Data())
			if env.ID != fmt.Sprintf("%s.%d", id, i) {
				t.Fatalf("%s: event %d is %s: out of order", id, i, env.ID)
			}
		}
		if msg, err := cons.Next(jetstream.FetchMaxWait(200 * time.Millisecond)); err == nil {
			t.Fatalf("%s: a duplicate or extra event: %s", id, msg.Data())
		}
	}
}

// Flush gives up at its deadline and says how many were left.
func TestFlushDeadlineReportsLeftovers(t *testing.T) {
	log := New(func(ctx context.Context, _ string, _ *events.Envelope) (bool, error) {
		return false, nats.ErrNoServers
	}, slog.New(slog.NewTextHandler(io.Discard, nil)), 0, Hooks{})
	env, _ := events.New("x", "test", "call.hangup", "", "c", nil)
	log.Append("c", "calls.c.hangup", env, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := log.Flush(ctx); err == nil {
		t.Fatal("Flush claimed success with an event unstored")
	}
}

func TestMaxPendingDropsAndReports(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	dropped := 0
	log := New(func(ctx context.Context, _ string, _ *events.Envelope) (bool, error) {
		<-block
		return false, nil
	}, slog.New(slog.NewTextHandler(io.Discard, nil)), 3, Hooks{Dropped: func(string) { dropped++ }})
	for i := 0; i < 5; i++ {
		env, _ := events.New(fmt.Sprint(i), "test", "call.dtmf", "", "c", nil)
		log.Append("c", "calls.c.dtmf", env, nil)
	}
	if dropped != 2 || log.Pending() != 3 {
		t.Fatalf("dropped %d, pending %d", dropped, log.Pending())
	}
}
