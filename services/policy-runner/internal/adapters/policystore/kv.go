// Package policystore keeps routing policies in a NATS KV bucket: every
// put is a new version (the bucket's revision), the runner sees a new
// version at once (a watch keeps the latest of every policy in memory),
// and any of the last versions can be rolled back to.
package policystore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/app"
)

// Bucket is the KV bucket the policies live in.
const Bucket = "switchyard_policies"

// History is how many versions of a policy are kept.
const History = 64

// ErrBadName: not a policy name.
var ErrBadName = errors.New("a policy name is 1 to 64 letters, digits, _ or -")

// KV is the store.
type KV struct {
	kv jetstream.KeyValue

	mu     sync.RWMutex
	latest map[string]app.Policy
	ready  chan struct{}
}

// Open creates or opens the bucket and starts watching it; ctx bounds the
// set-up, watch stops with the returned stop function.
func Open(ctx context.Context, js jetstream.JetStream) (*KV, func(), error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: Bucket, History: History, Description: "Switchyard routing policies"})
	if err != nil {
		return nil, nil, fmt.Errorf("policy bucket: %w", err)
	}
	s := &KV{kv: kv, latest: map[string]app.Policy{}, ready: make(chan struct{})}
	wctx, cancel := context.WithCancel(context.Background())
	w, err := kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("watch policies: %w", err)
	}
	go s.follow(w)
	select {
	case <-s.ready:
	case <-ctx.Done():
		cancel()
		return nil, nil, ctx.Err()
	}
	return s, func() { w.Stop(); cancel() }, nil
}

// follow keeps the latest version of every policy; a nil entry marks the
// end of the initial values.
func (s *KV) follow(w jetstream.KeyWatcher) {
	once := sync.Once{}
	for e := range w.Updates() {
		if e == nil {
			once.Do(func() { close(s.ready) })
			continue
		}
		s.mu.Lock()
		if e.Operation() == jetstream.KeyValuePut {
			s.latest[e.Key()] = app.Policy{Name: e.Key(), Version: strconv.FormatUint(e.Revision(), 10), Source: string(e.Value())}
		} else {
			delete(s.latest, e.Key())
		}
		s.mu.Unlock()
	}
	once.Do(func() { close(s.ready) })
}

// Get returns the latest version of a policy.
func (s *KV) Get(ctx context.Context, name string) (app.Policy, error) {
	s.mu.RLock()
	p, ok := s.latest[name]
	s.mu.RUnlock()
	if ok {
		return p, nil
	}
	if !app.ValidName(name) {
		return app.Policy{}, fmt.Errorf("%w: %q", app.ErrNoPolicy, name)
	}
	e, err := s.kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return app.Policy{}, fmt.Errorf("%w: %s", app.ErrNoPolicy, name)
	}
	if err != nil {
		return app.Policy{}, fmt.Errorf("read policy %s: %w", name, err)
	}
	return app.Policy{Name: name, Version: strconv.FormatUint(e.Revision(), 10), Source: string(e.Value())}, nil
}

// Put stores a new version and returns it.
func (s *KV) Put(ctx context.Context, name, source string) (app.Policy, error) {
	if !app.ValidName(name) {
		return app.Policy{}, ErrBadName
	}
	rev, err := s.kv.PutString(ctx, name, source)
	if err != nil {
		return app.Policy{}, fmt.Errorf("store policy %s: %w", name, err)
	}
	p := app.Policy{Name: name, Version: strconv.FormatUint(rev, 10), Source: source}
	s.mu.Lock()
	if old, ok := s.latest[name]; !ok || versionLess(old.Version, p.Version) {
		s.latest[name] = p
	}
	s.mu.Unlock()
	return p, nil
}

func versionLess(a, b string) bool {
	x, _ := strconv.ParseUint(a, 10, 64)
	y, _ := strconv.ParseUint(b, 10, 64)
	return x < y
}

// Version is one stored version.
type Version struct {
	Version string    `json:"version"`
	Created time.Time `json:"created"`
	Bytes   int       `json:"bytes"`
}

// Versions lists the kept versions, oldest first.
func (s *KV) Versions(ctx context.Context, name string) ([]Version, error) {
	hist, err := s.kv.History(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %s", app.ErrNoPolicy, name)
	}
	if err != nil {
		return nil, err
	}
	var out []Version
	for _, e := range hist {
		if e.Operation() == jetstream.KeyValuePut {
			out = append(out, Version{Version: strconv.FormatUint(e.Revision(), 10), Created: e.Created(), Bytes: len(e.Value())})
		}
	}
	return out, nil
}

// Rollback makes an earlier version the latest again (as a new version).
func (s *KV) Rollback(ctx context.Context, name, version string) (app.Policy, error) {
	rev, err := strconv.ParseUint(version, 10, 64)
	if err != nil {
		return app.Policy{}, fmt.Errorf("version %q is not a version number", version)
	}
	e, err := s.kv.GetRevision(ctx, name, rev)
	if err != nil || e.Key() != name {
		return app.Policy{}, fmt.Errorf("%w: %s has no version %s (kept: the last %d)", app.ErrNoPolicy, name, version, History)
	}
	return s.Put(ctx, name, string(e.Value()))
}

// List names every policy, sorted.
func (s *KV) List() []app.Policy {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]app.Policy, 0, len(s.latest))
	for _, p := range s.latest {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Seed stores every dir/<name>.lua that the bucket does not have yet, so
// a first start has the shipped policies and later starts change nothing.
func (s *KV) Seed(ctx context.Context, dir string) (int, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.lua"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".lua")
		if !app.ValidName(name) {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			return n, err
		}
		if _, err := s.kv.Create(ctx, name, src); err == nil {
			n++
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			return n, fmt.Errorf("seed %s: %w", name, err)
		}
	}
	return n, nil
}

// GetVersion returns one kept version of a policy: what a past call ran,
// for replay.
func (s *KV) GetVersion(ctx context.Context, name, version string) (app.Policy, error) {
	rev, err := strconv.ParseUint(version, 10, 64)
	if err != nil {
		return app.Policy{}, fmt.Errorf("%w: version %q is not a version number", app.ErrNoPolicy, version)
	}
	e, err := s.kv.GetRevision(ctx, name, rev)
	if err != nil || e.Key() != name || e.Operation() != jetstream.KeyValuePut {
		return app.Policy{}, fmt.Errorf("%w: %s has no version %s (kept: the last %d)", app.ErrNoPolicy, name, version, History)
	}
	return app.Policy{Name: name, Version: version, Source: string(e.Value())}, nil
}
