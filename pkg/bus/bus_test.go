package bus

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/pkg/testinfra"
)

func TestStreamsAndDeduplicatedPublish(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := testinfra.NewNATS(t)
	nc, err := Connect(srv.URL(), "bus-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	for i := 0; i < 2; i++ { // idempotent
		if err := EnsureStreams(ctx, js); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range Streams {
		info, err := js.Stream(ctx, s.Name)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if cfg := info.CachedInfo().Config; cfg.Duplicates != DedupWindow {
			t.Errorf("%s de-duplication window %v", s.Name, cfg.Duplicates)
		}
	}
	env, _ := events.New("evt-1", "test", "call.started", "calls.u.started", "u", map[string]string{"a": "b"})
	if dup, err := Publish(ctx, js, "calls.u.started", env); err != nil || dup {
		t.Fatalf("first publish: dup %v err %v", dup, err)
	}
	if dup, err := Publish(ctx, js, "calls.u.started", env); err != nil || !dup {
		t.Fatalf("retry: dup %v err %v", dup, err)
	}
	s, _ := js.Stream(ctx, "CALLS")
	info, _ := s.Info(ctx)
	if info.State.Msgs != 1 {
		t.Fatalf("CALLS holds %d messages, want 1", info.State.Msgs)
	}
	// fs.<node>.api is request-reply, never stored by FSEVENTS.
	fs, _ := js.Stream(ctx, "FSEVENTS")
	if _, err := js.Publish(ctx, "fs.fs1.api", []byte("x")); err == nil {
		t.Fatal("fs.<node>.api was captured by a stream")
	}
	fsInfo, _ := fs.Info(ctx)
	if fsInfo.State.Msgs != 0 {
		t.Fatal("FSEVENTS stored an api request")
	}
}
