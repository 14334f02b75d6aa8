package bus

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/pkg/testinfra"
)

// newServer is a nats-server of the test's own and JetStream over a
// connection made by Connect.
func newServer(t *testing.T) (*testinfra.NATS, jetstream.JetStream) {
	srv := testinfra.NewNATS(t)
	nc, err := Connect(srv.URL(), "bus-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	return srv, js
}

func TestStreamsAndDeduplicatedPublish(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, js := newServer(t)
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

// Our streams are stored in 4 MiB blocks, not the 8 MiB nats-server gives
// a stream without limits: each block's write cache, growing, stalls
// deliveries for as long as it takes to copy half a block into fresh
// memory. A nats-server that chooses block sizes differently fails here.
func TestStreamsAreStoredInSmallBlocks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, js := newServer(t)
	if err := EnsureStreams(ctx, js, "PUSH"); err != nil {
		t.Fatal(err)
	}
	// 6 MiB: two blocks of 4 MiB, or part of one of 8 MiB.
	body := make([]byte, 1024)
	var acks []jetstream.PubAckFuture
	for i := range 6 * 1024 {
		f, err := js.PublishAsync(fmt.Sprintf("push.u%d.requested", i%50), body)
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, f)
	}
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatal(err)
		case <-ctx.Done():
			t.Fatal("publishes not acknowledged")
		}
	}
	blocks, err := filepath.Glob(filepath.Join(srv.StoreDir(), "jetstream", "$G", "streams", "PUSH", "msgs", "*.blk"))
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) < 2 {
		t.Fatalf("6 MiB stored in %d block file(s) %q: blocks are larger than 4 MiB", len(blocks), blocks)
	}
}
