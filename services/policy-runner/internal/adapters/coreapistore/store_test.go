package coreapistore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/app"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/app/apptest"
)

// fakeCore is core-api as far as scripts go: real ETags, real
// If-None-Match handling, and knobs to make it fail.
type fakeCore struct {
	srv *httptest.Server

	mu      sync.Mutex
	scripts map[string]string
	etags   string // "strong", "weak" or "" (no ETag header)
	status  int    // when set, every request is answered with it
	token   string // when set, requests without this bearer token get 401
	chunked bool   // send bodies without Content-Length
	hold    chan struct{}
	reqs    []*http.Request
	n304    int
}

func newFake(t *testing.T) *fakeCore {
	f := &fakeCore{scripts: map[string]string{}, etags: "strong"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/policies/{name}/script", f.serve)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCore) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.reqs = append(f.reqs, r.Clone(context.Background()))
	hold := f.hold
	f.mu.Unlock()
	if hold != nil {
		<-hold
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	if f.status != 0 {
		http.Error(w, "core-api is having a bad day\nsecond line", f.status)
		return
	}
	src, ok := f.scripts[r.PathValue("name")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if f.etags != "" {
		sum := sha256.Sum256([]byte(src))
		tag := `"` + hex.EncodeToString(sum[:8]) + `"`
		if f.etags == "weak" {
			tag = "W/" + tag
		}
		w.Header().Set("ETag", tag)
		for _, c := range strings.Split(r.Header.Get("If-None-Match"), ",") {
			c = strings.TrimPrefix(strings.TrimSpace(c), "W/")
			if c == strings.TrimPrefix(tag, "W/") || c == "*" {
				f.n304++
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
	}
	w.Header().Set("Content-Type", "text/x-lua")
	if f.chunked {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
	}
	w.Write([]byte(src))
}

// holdRequests makes requests wait until release is called; a failing
// test releases them too, so that closing the server does not hang.
func (f *fakeCore) holdRequests(t *testing.T) (release func()) {
	ch := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release)
	f.set(func(f *fakeCore) { f.hold = ch })
	return release
}

func (f *fakeCore) put(name, src string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scripts[name] = src
}

func (f *fakeCore) remove(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.scripts, name)
}

func (f *fakeCore) set(fn func(*fakeCore)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeCore) requests() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.reqs...)
}

func (f *fakeCore) notModified() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n304
}

// clock is a settable time source, so that MaxAge and StaleFor are tested
// without sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time           { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration)      { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }
func newClock() *clock                    { return &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }
func (s *Store) useClock(c *clock) *clock { s.now = c.Now; return c }

// logBuf collects log lines safely across goroutines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func open(t *testing.T, f *fakeCore, opts Options) *Store {
	t.Helper()
	opts.BaseURL = f.srv.URL + "/v1"
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func get(t *testing.T, s *Store, name string) app.Policy {
	t.Helper()
	p, err := s.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	return p
}

func TestStoreSuite(t *testing.T) {
	for _, etags := range []string{"strong", "weak", ""} {
		t.Run("etag="+etags, func(t *testing.T) {
			f := newFake(t)
			f.etags = etags
			apptest.StoreSuite(t, open(t, f, Options{}), f.put)
		})
	}
}

func TestVersions(t *testing.T) {
	tests := []struct {
		etag, body, want string
	}{
		{`"abc123"`, "x", "abc123"},
		{`W/"abc123"`, "x", "abc123"},
		{` "abc123" `, "x", "abc123"},
		{"", "call.answer()", shortHash("call.answer()")},
		{`""`, "call.answer()", shortHash("call.answer()")},
	}
	for _, tt := range tests {
		if got := version(tt.etag, []byte(tt.body)); got != tt.want {
			t.Errorf("version(%q, %q) = %q, want %q", tt.etag, tt.body, got, tt.want)
		}
	}
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}

// A second Get asks with If-None-Match, core-api answers 304, and the
// cached script is what comes back.
func TestRevalidationServesCacheOn304(t *testing.T) {
	f := newFake(t)
	f.put("greet", "call.answer()")
	s := open(t, f, Options{})
	p1 := get(t, s, "greet")
	p2 := get(t, s, "greet")
	if p1 != p2 || p2.Source != "call.answer()" {
		t.Fatalf("after 304: %+v, first %+v", p2, p1)
	}
	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2 (MaxAge 0 revalidates every Get)", len(reqs))
	}
	if inm := reqs[0].Header.Get("If-None-Match"); inm != "" {
		t.Fatalf("first request sent If-None-Match %q", inm)
	}
	if inm := reqs[1].Header.Get("If-None-Match"); inm != `"`+p1.Version+`"` {
		t.Fatalf("revalidation sent If-None-Match %q, want the ETag", inm)
	}
	if f.notModified() != 1 {
		t.Fatalf("core-api answered 304 %d times, want 1", f.notModified())
	}
	// A change is seen on the next revalidation.
	f.put("greet", "call.hangup()")
	if p := get(t, s, "greet"); p.Source != "call.hangup()" || p.Version == p1.Version {
		t.Fatalf("after a change: %+v", p)
	}
}

func TestMaxAgeAvoidsRequests(t *testing.T) {
	f := newFake(t)
	f.put("greet", "call.answer()")
	s := open(t, f, Options{MaxAge: time.Minute})
	c := s.useClock(newClock())
	get(t, s, "greet")
	f.put("greet", "call.hangup()")
	c.Add(59 * time.Second)
	if p := get(t, s, "greet"); p.Source != "call.answer()" {
		t.Fatalf("within MaxAge: %q, want the cached script", p.Source)
	}
	if n := len(f.requests()); n != 1 {
		t.Fatalf("%d requests within MaxAge, want 1", n)
	}
	c.Add(2 * time.Second)
	if p := get(t, s, "greet"); p.Source != "call.hangup()" {
		t.Fatalf("after MaxAge: %q, want the new script", p.Source)
	}
	reqs := f.requests()
	if len(reqs) != 2 || reqs[1].Header.Get("If-None-Match") == "" {
		t.Fatalf("after MaxAge: %d requests, want a second, conditional one", len(reqs))
	}
}

// A 404 is app.ErrNoPolicy and forgets the cached copy, so that a deleted
// policy is not resurrected by a later outage.
func TestNotFoundDropsCache(t *testing.T) {
	f := newFake(t)
	s := open(t, f, Options{})
	if _, err := s.Get(context.Background(), "absent"); !errors.Is(err, app.ErrNoPolicy) {
		t.Fatalf("absent: %v, want app.ErrNoPolicy", err)
	}
	f.put("greet", "call.answer()")
	get(t, s, "greet")
	f.remove("greet")
	if _, err := s.Get(context.Background(), "greet"); !errors.Is(err, app.ErrNoPolicy) {
		t.Fatalf("deleted: %v, want app.ErrNoPolicy", err)
	}
	f.set(func(f *fakeCore) { f.status = http.StatusServiceUnavailable })
	_, err := s.Get(context.Background(), "greet")
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("deleted, then core-api down: %v, want ErrUnreachable and no stale copy", err)
	}
}

func TestBadNamesNeverReachCoreAPI(t *testing.T) {
	f := newFake(t)
	s := open(t, f, Options{})
	for _, name := range []string{
		"", "../etc/passwd", "a b", "x/y", "%2e%2e", "..", "a.lua", "a?b", "a#b", "a%2Fb", "é", "a\x00b", "a\n",
		strings.Repeat("a", 65),
	} {
		if _, err := s.Get(context.Background(), name); !errors.Is(err, app.ErrNoPolicy) {
			t.Errorf("%q: %v, want app.ErrNoPolicy", name, err)
		}
	}
	if n := len(f.requests()); n != 0 {
		t.Fatalf("bad names made %d requests", n)
	}
	// The longest good name does get through.
	long := strings.Repeat("A-_9", 16)
	f.put(long, "x")
	if p := get(t, s, long); p.Source != "x" {
		t.Fatalf("64-character name: %+v", p)
	}
}

func TestRequestHeaders(t *testing.T) {
	tests := []struct {
		token, wantAuth string
	}{
		{"s3cret", "Bearer s3cret"},
		{"", ""},
	}
	for _, tt := range tests {
		f := newFake(t)
		f.put("greet", "x")
		get(t, open(t, f, Options{Token: tt.token}), "greet")
		r := f.requests()[0]
		if got := r.Header.Get("Authorization"); got != tt.wantAuth {
			t.Errorf("token %q: Authorization %q, want %q", tt.token, got, tt.wantAuth)
		}
		if got := r.Header.Get("Accept"); got != "text/x-lua, text/plain" {
			t.Errorf("Accept %q", got)
		}
		if r.URL.Path != "/v1/policies/greet/script" {
			t.Errorf("path %q", r.URL.Path)
		}
	}
}

func TestStatusErrors(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		token     string // sent by the store
		wantIs    error
		wantInMsg []string
	}{
		{"401", http.StatusUnauthorized, "wrong", ErrUnauthorized, []string{"refused the token", "401", "check --core-api-token"}},
		{"403", http.StatusForbidden, "wrong", ErrUnauthorized, []string{"refused the token", "403", "--core-api-token"}},
		{"401 without a token", http.StatusUnauthorized, "", ErrUnauthorized, []string{"no token is set", "--core-api-token"}},
		{"400", http.StatusBadRequest, "", nil, []string{"400 Bad Request", "core-api is having a bad day", `"greet"`}},
		{"418", http.StatusTeapot, "", nil, []string{"418"}},
		{"204", http.StatusNoContent, "", nil, []string{"unexpected 204"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			f.put("greet", "call.answer()")
			s := open(t, f, Options{Token: tt.token})
			get(t, s, "greet") // cached: these errors must not be papered over
			f.set(func(f *fakeCore) { f.status = tt.status })
			_, err := s.Get(context.Background(), "greet")
			if err == nil {
				t.Fatal("no error; a cached copy was served")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Fatalf("%v, want %v", err, tt.wantIs)
			}
			if errors.Is(err, app.ErrNoPolicy) || errors.Is(err, ErrUnreachable) {
				t.Fatalf("%v: misclassified", err)
			}
			for _, w := range tt.wantInMsg {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
		})
	}
}

// While core-api fails, the last good copy serves for StaleFor, then the
// failure shows.
func TestStaleWhileUnavailable(t *testing.T) {
	tests := []struct {
		name  string
		fail  func(*fakeCore)
		retry bool // the fake still counts requests after failing
	}{
		{"500", func(f *fakeCore) { f.set(func(f *fakeCore) { f.status = 500 }) }, true},
		{"503", func(f *fakeCore) { f.set(func(f *fakeCore) { f.status = 503 }) }, true},
		{"server killed", func(f *fakeCore) { f.srv.Close() }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			f.put("greet", "call.answer()")
			logs := &logBuf{}
			s := open(t, f, Options{StaleFor: 10 * time.Minute, Logger: slog.New(slog.NewTextHandler(logs, nil))})
			c := s.useClock(newClock())
			want := get(t, s, "greet")
			tt.fail(f)

			c.Add(time.Minute)
			if p := get(t, s, "greet"); p != want {
				t.Fatalf("core-api down 1m: %+v, want the cached %+v", p, want)
			}
			if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "serving the cached policy") {
				t.Fatalf("no warning logged: %s", logs)
			}
			// Right after a failure the stale copy serves without asking.
			before := len(f.requests())
			get(t, s, "greet")
			if n := len(f.requests()); n != before {
				t.Fatalf("asked core-api again %d time(s) right after it failed", n-before)
			}
			c.Add(8 * time.Minute)
			if p := get(t, s, "greet"); p != want {
				t.Fatalf("core-api down 9m: %+v, want the cached %+v", p, want)
			}
			if tt.retry && len(f.requests()) == before {
				t.Fatal("core-api was not asked again once the retry pause was over")
			}
			c.Add(time.Minute + time.Second)
			_, err := s.Get(context.Background(), "greet")
			if !errors.Is(err, ErrUnreachable) {
				t.Fatalf("core-api down past StaleFor: %v, want ErrUnreachable", err)
			}
			if wantURL := f.srv.URL + "/v1/policies/greet/script"; !strings.Contains(err.Error(), wantURL) {
				t.Fatalf("%q does not say which URL was tried (%s)", err, wantURL)
			}
		})
	}
}

func TestStaleDisabledAndColdCache(t *testing.T) {
	tests := []struct {
		name     string
		staleFor time.Duration
		warm     bool
	}{
		{"stale disabled", -1, true},
		{"nothing cached", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			f.put("greet", "x")
			s := open(t, f, Options{StaleFor: tt.staleFor})
			if tt.warm {
				get(t, s, "greet")
			}
			f.srv.Close()
			if _, err := s.Get(context.Background(), "greet"); !errors.Is(err, ErrUnreachable) {
				t.Fatalf("%v, want ErrUnreachable", err)
			}
		})
	}
}

func TestMaxBytes(t *testing.T) {
	tests := []struct {
		name    string
		size    int
		chunked bool
		ok      bool
	}{
		{"at the limit", 16, false, true},
		{"over, with Content-Length", 17, false, false},
		{"over, chunked", 17, true, false},
		{"far over, chunked", 1 << 20, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			f.chunked = tt.chunked
			f.put("big", strings.Repeat("-", tt.size))
			_, err := open(t, f, Options{MaxBytes: 16}).Get(context.Background(), "big")
			if tt.ok && err != nil {
				t.Fatal(err)
			}
			if !tt.ok && (err == nil || !strings.Contains(err.Error(), "16-byte limit")) {
				t.Fatalf("%v, want a refusal naming the limit", err)
			}
		})
	}
}

func TestDefaultMaxBytes(t *testing.T) {
	f := newFake(t)
	f.put("big", strings.Repeat("-", int(DefaultMaxBytes)+1))
	f.put("fits", strings.Repeat("-", int(DefaultMaxBytes)))
	s := open(t, f, Options{})
	if _, err := s.Get(context.Background(), "big"); err == nil {
		t.Fatal("a script over 256 KiB was accepted")
	}
	get(t, s, "fits")
}

// Bytes are passed through as they are; the sandbox decides.
func TestNonUTF8PassesThrough(t *testing.T) {
	f := newFake(t)
	f.put("bin", "\xff\xfe-- \x80")
	if p := get(t, open(t, f, Options{}), "bin"); p.Source != "\xff\xfe-- \x80" {
		t.Fatalf("%q", p.Source)
	}
}

func TestConcurrentGetsShareOneRequest(t *testing.T) {
	f := newFake(t)
	f.put("greet", "call.answer()")
	release := f.holdRequests(t)
	s := open(t, f, Options{})
	const n = 20
	var wg sync.WaitGroup
	got := make([]app.Policy, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { got[i], errs[i] = s.Get(context.Background(), "greet") })
	}
	apptest.WaitTrue(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		fl := s.inflight["greet"]
		return fl != nil && fl.waiters == n
	})
	release()
	wg.Wait()
	for i := range n {
		if errs[i] != nil || got[i].Source != "call.answer()" || got[i] != got[0] {
			t.Fatalf("Get %d: %+v %v", i, got[i], errs[i])
		}
	}
	if r := len(f.requests()); r != 1 {
		t.Fatalf("%d concurrent Gets made %d requests, want 1", n, r)
	}
}

// The Get that started a request hanging up does not fail the others
// waiting on it, and the answer still lands in the cache.
func TestCallerGivingUpDoesNotFailOthers(t *testing.T) {
	f := newFake(t)
	f.put("greet", "call.answer()")
	release := f.holdRequests(t)
	s := open(t, f, Options{MaxAge: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := s.Get(ctx, "greet"); first <- err }()
	apptest.WaitTrue(t, func() bool { return len(f.requests()) == 1 })
	second := make(chan error, 1)
	go func() { _, err := s.Get(context.Background(), "greet"); second <- err }()
	apptest.WaitTrue(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.inflight["greet"] != nil && s.inflight["greet"].waiters == 2
	})
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v, want context.Canceled", err)
	}
	release()
	if err := <-second; err != nil {
		t.Fatalf("the other caller: %v", err)
	}
	get(t, s, "greet")
	if r := len(f.requests()); r != 1 {
		t.Fatalf("%d requests, want 1 (the answer should have been cached)", r)
	}
}

// A caller that cannot wait gets the stale copy rather than nothing.
func TestSlowCoreAPIServesStaleToImpatientCaller(t *testing.T) {
	f := newFake(t)
	f.put("greet", "call.answer()")
	s := open(t, f, Options{})
	want := get(t, s, "greet")
	f.holdRequests(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	p, err := s.Get(ctx, "greet")
	if err != nil || p != want {
		t.Fatalf("%+v %v, want the cached %+v", p, err, want)
	}
}

func TestCacheIsBounded(t *testing.T) {
	f := newFake(t)
	s := open(t, f, Options{MaxAge: time.Hour})
	s.maxEntries = 3
	for _, n := range []string{"a", "b", "c", "d"} {
		f.put(n, n)
	}
	get(t, s, "a")
	get(t, s, "b")
	get(t, s, "c")
	get(t, s, "a") // used again: b is now the oldest
	get(t, s, "d")
	s.mu.Lock()
	var cached []string
	for n := range s.entries {
		cached = append(cached, n)
	}
	lruLen := s.lru.Len()
	s.mu.Unlock()
	if len(cached) != 3 || lruLen != 3 || s.entries["b"] != nil {
		t.Fatalf("cached %v (list %d), want a, c, d", cached, lruLen)
	}
	before := len(f.requests())
	get(t, s, "a")
	get(t, s, "c")
	get(t, s, "d")
	if n := len(f.requests()) - before; n != 0 {
		t.Fatalf("%d requests for names that should be cached", n)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string // "" means valid
	}{
		{"https", Options{BaseURL: "https://core-api.internal/v1"}, ""},
		{"http, trailing slash", Options{BaseURL: "http://core-api:8080/v1/"}, ""},
		{"all set", Options{BaseURL: "http://c/v1", Token: "t0k.en-_~+/=", MaxAge: time.Second, StaleFor: -1, MaxBytes: 1}, ""},
		{"empty", Options{}, "required"},
		{"no scheme", Options{BaseURL: "core-api.internal/v1"}, "http or https"},
		{"ftp", Options{BaseURL: "ftp://core-api/v1"}, "http or https"},
		{"no host", Options{BaseURL: "http:///v1"}, "no host"},
		{"query", Options{BaseURL: "http://c/v1?x=1"}, "query"},
		{"unparsable", Options{BaseURL: "http://c/%zz"}, "base URL"},
		{"token with newline", Options{BaseURL: "http://c", Token: "a\nb"}, "--core-api-token"},
		{"token with space", Options{BaseURL: "http://c", Token: "Bearer x"}, "whitespace"},
		{"negative max age", Options{BaseURL: "http://c", MaxAge: -time.Second}, "negative"},
		{"negative max bytes", Options{BaseURL: "http://c", MaxBytes: -1}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.opts)
			switch {
			case tt.want == "" && err != nil:
				t.Fatal(err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("%v, want an error saying %q", err, tt.want)
			case tt.want == "" && (s.client == nil || s.maxBytes <= 0):
				t.Fatalf("defaults not filled in: %+v", s)
			}
		})
	}
	s, _ := New(Options{BaseURL: "http://c"})
	if s.staleFor != DefaultStaleFor || s.maxBytes != DefaultMaxBytes || s.client.Timeout == 0 {
		t.Fatalf("defaults: stale %s, max %d, timeout %s", s.staleFor, s.maxBytes, s.client.Timeout)
	}
	if s, _ := New(Options{BaseURL: "http://c", StaleFor: -1}); s.staleFor != 0 {
		t.Fatalf("negative StaleFor kept as %s", s.staleFor)
	}
}

// A password in the URL never shows up in errors.
func TestErrorsRedactPassword(t *testing.T) {
	f := newFake(t)
	f.srv.Close()
	s, err := New(Options{BaseURL: strings.Replace(f.srv.URL, "http://", "http://user:hunter2@", 1) + "/v1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(context.Background(), "greet")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("%v", err)
	}
}
