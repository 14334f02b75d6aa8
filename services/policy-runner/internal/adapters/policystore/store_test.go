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
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/app/apptest"
)

func TestDirStoreSuite(t *testing.T) {
	dir := t.TempDir()
	apptest.StoreSuite(t, app.DirStore{Dir: dir}, func(name, src string) {
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
	apptest.StoreSuite(t, s, func(name, src string) {
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
