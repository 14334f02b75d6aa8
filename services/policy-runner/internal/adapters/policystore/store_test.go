package policystore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/testinfra"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/app"
)

// storeSuite is what every policy store must do for the runner: the one
// conformance suite both stores pass.
func storeSuite(t *testing.T, s app.Store, put func(name, src string)) {
	ctx := context.Background()
	if _, err := s.Get(ctx, "absent"); !errors.Is(err, app.ErrNoPolicy) {
		t.Fatalf("missing policy: %v", err)
	}
	if _, err := s.Get(ctx, "../etc/passwd"); !errors.Is(err, app.ErrNoPolicy) {
		t.Fatalf("a path as a name: %v", err)
	}
	put("greet", "call.answer()")
	var p1 app.Policy
	waitTrue(t, func() bool { p, err := s.Get(ctx, "greet"); p1 = p; return err == nil && p.Source == "call.answer()" })
	put("greet", "call.hangup()")
	var p2 app.Policy
	waitTrue(t, func() bool { p, err := s.Get(ctx, "greet"); p2 = p; return err == nil && p.Source == "call.hangup()" })
	if p1.Version == "" || p1.Version == p2.Version || p2.Name != "greet" {
		t.Fatalf("versions: %+v then %+v", p1, p2)
	}
}

func waitTrue(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDirStoreSuite(t *testing.T) {
	dir := t.TempDir()
	storeSuite(t, app.DirStore{Dir: dir}, func(name, src string) {
		os.WriteFile(filepath.Join(dir, name+".lua"), []byte(src), 0o644)
	})
}

func openKV(t *testing.T) (*KV, jetstream.JetStream) {
	srv := testinfra.NewNATS(t)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, stop, err := Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return s, js
}

// The KV store passes the suite with writes from another client, so what
// it serves comes from its watch, as in a fleet of runners.
func TestKVStoreSuite(t *testing.T) {
	s, js := openKV(t)
	raw, err := js.KeyValue(context.Background(), Bucket)
	if err != nil {
		t.Fatal(err)
	}
	storeSuite(t, s, func(name, src string) {
		if _, err := raw.PutString(context.Background(), name, src); err != nil {
			t.Fatal(err)
		}
	})
}

func TestKVVersionsRollbackAndSeed(t *testing.T) {
	ctx := context.Background()
	s, _ := openKV(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "default.lua"), []byte("call.answer()"), 0o644)
	os.WriteFile(filepath.Join(dir, "bad name.lua"), []byte("x"), 0o644)
	if n, err := s.Seed(ctx, dir); err != nil || n != 1 {
		t.Fatalf("seed: %d %v", n, err)
	}
	v1, _ := s.Put(ctx, "default", "call.answer() call.hangup()")
	if n, _ := s.Seed(ctx, dir); n != 0 {
		t.Fatal("a second seed overwrote a policy")
	}
	if p, _ := s.Get(ctx, "default"); p.Source != "call.answer() call.hangup()" {
		t.Fatalf("seed changed the live version: %q", p.Source)
	}
	vers, err := s.Versions(ctx, "default")
	if err != nil || len(vers) != 2 {
		t.Fatalf("versions: %v %v", vers, err)
	}
	rolled, err := s.Rollback(ctx, "default", vers[0].Version)
	if err != nil || rolled.Source != "call.answer()" || !versionLess(v1.Version, rolled.Version) {
		t.Fatalf("rollback: %+v %v", rolled, err)
	}
	if p, _ := s.Get(ctx, "default"); p.Source != "call.answer()" {
		t.Fatalf("after rollback the runner sees %q", p.Source)
	}
	if _, err := s.Rollback(ctx, "default", "999"); !errors.Is(err, app.ErrNoPolicy) {
		t.Fatalf("rollback to a missing version: %v", err)
	}
	if _, err := s.Put(ctx, "bad name", "x"); !errors.Is(err, ErrBadName) {
		t.Fatalf("bad name: %v", err)
	}
	if l := s.List(); len(l) != 1 || l[0].Name != "default" {
		t.Fatalf("list: %+v", l)
	}
}
