package coreapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/app"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/app/apptest"
)

// fakeCoreAPI serves scripts with strong ETags and honours If-None-Match,
// as core-api does.
type fakeCoreAPI struct {
	mu        sync.Mutex
	scripts   map[string]string
	requests  atomic.Int32
	revalid   atomic.Int32 // requests carrying If-None-Match
	status    atomic.Int32 // non-zero: answer this instead
	delay     time.Duration
	lastAuth  atomic.Value
	lastPaths []string
}

func (f *fakeCoreAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	f.lastAuth.Store(r.Header.Get("Authorization"))
	time.Sleep(f.delay)
	if s := f.status.Load(); s != 0 {
		w.WriteHeader(int(s))
		return
	}
	name, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/v1/policies/"), "/script")
	f.mu.Lock()
	f.lastPaths = append(f.lastPaths, r.URL.Path)
	src, found := f.scripts[name]
	f.mu.Unlock()
	if !ok || !found {
		http.NotFound(w, r)
		return
	}
	sum := sha256.Sum256([]byte(src))
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		f.revalid.Add(1)
		if inm == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Type", "text/x-lua")
	w.Write([]byte(src))
}

func (f *fakeCoreAPI) put(name, src string) {
	f.mu.Lock()
	f.scripts[name] = src
	f.mu.Unlock()
}

func newStore(t *testing.T, edit func(*Options)) (*Store, *fakeCoreAPI, *httptest.Server) {
	t.Helper()
	fake := &fakeCoreAPI{scripts: map[string]string{}}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	opts := Options{BaseURL: srv.URL + "/v1", Token: "secret"}
	if edit != nil {
		edit(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, fake, srv
}

func TestCoreAPIStoreSuite(t *testing.T) {
	s, fake, _ := newStore(t, nil)
	apptest.StoreSuite(t, s, fake.put)
	if fake.revalid.Load() == 0 {
		t.Fatal("the store never revalidated with If-None-Match")
	}
	if got := fake.lastAuth.Load(); got != "Bearer secret" {
		t.Fatalf("authorization %v", got)
	}
}

func TestCoreAPICaching(t *testing.T) {
	ctx := context.Background()
	t.Run("304 serves the cache", func(t *testing.T) {
		s, fake, _ := newStore(t, nil)
		fake.put("p", "call.answer()")
		a, _ := s.Get(ctx, "p")
		b, err := s.Get(ctx, "p")
		if err != nil || a != b || fake.revalid.Load() != 1 || fake.requests.Load() != 2 {
			t.Fatalf("%+v %+v %v requests=%d revalidations=%d", a, b, err, fake.requests.Load(), fake.revalid.Load())
		}
	})
	t.Run("max age avoids the request", func(t *testing.T) {
		s, fake, _ := newStore(t, func(o *Options) { o.MaxAge = time.Minute })
		fake.put("p", "x")
		for range 5 {
			s.Get(ctx, "p")
		}
		if n := fake.requests.Load(); n != 1 {
			t.Fatalf("%d requests within the max age", n)
		}
	})
	t.Run("stale copy while core-api fails, then the error", func(t *testing.T) {
		s, fake, srv := newStore(t, func(o *Options) { o.StaleFor = 200 * time.Millisecond })
		fake.put("p", "call.answer()")
		if _, err := s.Get(ctx, "p"); err != nil {
			t.Fatal(err)
		}
		fake.status.Store(503)
		if p, err := s.Get(ctx, "p"); err != nil || p.Source != "call.answer()" {
			t.Fatalf("on a 503: %+v %v", p, err)
		}
		srv.Close()
		if p, err := s.Get(ctx, "p"); err != nil || p.Source != "call.answer()" {
			t.Fatalf("with core-api gone: %+v %v", p, err)
		}
		time.Sleep(250 * time.Millisecond)
		if _, err := s.Get(ctx, "p"); err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("past StaleFor: %v", err)
		}
	})
	t.Run("one request for a burst", func(t *testing.T) {
		s, fake, _ := newStore(t, nil)
		fake.delay = 100 * time.Millisecond
		fake.put("p", "x")
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() { defer wg.Done(); s.Get(ctx, "p") }()
		}
		wg.Wait()
		if n := fake.requests.Load(); n != 1 {
			t.Fatalf("20 concurrent Gets made %d requests", n)
		}
	})
}

func TestCoreAPIErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		status int32
		script string
		policy string
		check  func(error) bool
	}{
		{"404", 0, "", "absent", func(err error) bool { return errors.Is(err, app.ErrNoPolicy) }},
		{"401", 401, "", "p", func(err error) bool { return err != nil && strings.Contains(err.Error(), "--core-api-token") }},
		{"400", 400, "", "p", func(err error) bool { return err != nil && strings.Contains(err.Error(), "400") }},
		{"too big", 0, strings.Repeat("-", 300<<10), "big", func(err error) bool { return err != nil && strings.Contains(err.Error(), "larger") }},
		{"bad name", 0, "", "../x", func(err error) bool { return errors.Is(err, app.ErrNoPolicy) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, fake, _ := newStore(t, nil)
			fake.status.Store(tc.status)
			if tc.script != "" {
				fake.put(tc.policy, tc.script)
			}
			_, err := s.Get(ctx, tc.policy)
			if !tc.check(err) {
				t.Fatalf("%v", err)
			}
			if tc.name == "bad name" && fake.requests.Load() != 0 {
				t.Fatal("a bad name reached core-api")
			}
		})
	}
	if _, err := New(Options{BaseURL: "ftp://x"}); err == nil {
		t.Fatal("an ftp URL was accepted")
	}
}
