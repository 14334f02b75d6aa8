package replay_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/bus"
	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/pkg/testinfra"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/app"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/replay"
)

// Fetch finds the end of each call's policy run in POLICIES — the later
// of completed and failed — tells a run without an end from a readable
// one, and leaves no consumer behind however often it is asked.
func TestFetchReadsTheRunsEndAndLeavesNoConsumer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := nats.Connect(testinfra.NewNATS(t).URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := bus.EnsureStreams(ctx, js, "POLICIES"); err != nil {
		t.Fatal(err)
	}
	publish := func(call, what string, ev app.RunEvent) {
		t.Helper()
		ev.CallID = call
		subject := "policies." + call + "." + what
		e, err := events.New(call+".policy."+what, "switchyard/test", "policy."+what, subject, call, ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bus.Publish(ctx, js, subject, e); err != nil {
			t.Fatal(err)
		}
	}
	const (
		done    = "0b5e7a4c-0000-4000-8000-000000000001"
		failed  = "0b5e7a4c-0000-4000-8000-000000000002"
		retried = "0b5e7a4c-0000-4000-8000-000000000003" // failed, then ran again to the end
		running = "0b5e7a4c-0000-4000-8000-000000000004"
		never   = "0b5e7a4c-0000-4000-8000-000000000005"
	)
	publish(done, "started", app.RunEvent{Policy: "vip"})
	publish(done, "completed", app.RunEvent{Policy: "vip", Outcome: "completed", DurationMS: 12})
	publish(failed, "started", app.RunEvent{Policy: "vip"})
	publish(failed, "failed", app.RunEvent{Policy: "vip", Error: "attempt to call a nil value", Line: 7})
	publish(retried, "failed", app.RunEvent{Policy: "vip", Error: "timeout"})
	publish(retried, "completed", app.RunEvent{Policy: "vip", Outcome: "caller_hung_up"})
	publish(running, "started", app.RunEvent{Policy: "vip"})
	cases := []struct {
		call, typ, outcome, err string
		line                    int
	}{
		{call: done, typ: "policy.completed", outcome: "completed"},
		{call: failed, typ: "policy.failed", err: "attempt to call a nil value", line: 7},
		{call: retried, typ: "policy.completed", outcome: "caller_hung_up"},
	}
	for range 10 {
		for _, c := range cases {
			rec, err := replay.Fetch(ctx, js, c.call)
			if err != nil {
				t.Fatalf("%s: %v", c.call, err)
			}
			if rec.Type != c.typ || rec.Event.CallID != c.call || rec.Event.Outcome != c.outcome || rec.Event.Error != c.err || rec.Event.Line != c.line {
				t.Fatalf("%s: %s %+v", c.call, rec.Type, rec.Event)
			}
		}
		for _, call := range []string{running, never} {
			if _, err := replay.Fetch(ctx, js, call); !errors.Is(err, replay.ErrNotRecorded) {
				t.Fatalf("%s: %v, want ErrNotRecorded", call, err)
			}
		}
	}
	if _, err := replay.Fetch(ctx, js, "policies.>"); err == nil {
		t.Fatal("a wildcard read as a call UUID")
	}
	s, err := js.Stream(ctx, "POLICIES")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(ctx); err != nil || info.State.Consumers != 0 {
		t.Fatalf("POLICIES has %d consumers after 50 replays (%v), want 0", info.State.Consumers, err)
	}
}
