package app

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	corefake "github.com/switchyard-voice/switchyard/pkg/crmfake/coreapi"

	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/adapters/coreapi"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/adapters/httpjson"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/domain"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/metrics"
)

// env is an engine with a core-api connector "core" for orgs acme and
// beta, both against one fake core-api.
type env struct {
	t    *testing.T
	core *corefake.Server
	e    *Engine
	m    *metrics.Metrics
	url  string
}

func newEnv(t *testing.T, opts Options, p Policy) *env {
	core := corefake.New("tok")
	srv := httptest.NewServer(core)
	t.Cleanup(srv.Close)
	for _, org := range []string{"acme", "beta"} {
		for i := range 3 {
			core.PutGroup(org, fmt.Sprintf("g%d", i), map[string]any{"id": fmt.Sprintf("g%d", i), "org": org})
		}
	}
	m := metrics.New()
	opts.Metrics = m
	ev := &env{t: t, core: core, e: New(opts), m: m, url: srv.URL + "/v1"}
	for _, org := range []string{"acme", "beta"} {
		ev.put(org, p, 1)
	}
	return ev
}

func (ev *env) put(org string, p Policy, revision uint64) bool {
	cfg := domain.Connector{Org: org, Name: "core", Type: domain.TypeCoreAPI, CoreAPI: &domain.CoreAPISettings{URL: ev.url, Token: "tok"}}
	return ev.e.Put(cfg, coreapi.New(coreapi.Options{Org: org, Settings: *cfg.CoreAPI}), p, revision)
}

func group(org, id string, timeoutMS int64) *domain.Request {
	return &domain.Request{Org: org, Connector: "core", Op: domain.OpGet, Object: "group", ID: id, TimeoutMS: timeoutMS}
}

func (ev *env) query(r *domain.Request) Reply {
	ev.t.Helper()
	if err := r.Validate(); err != nil {
		ev.t.Error(err) // not Fatal: tests call query from goroutines too
		return Reply{Error: domain.AsError(err)}
	}
	return ev.e.Query(context.Background(), r)
}

func (ev *env) count(typ, op, outcome string) float64 {
	return testutil.ToFloat64(ev.m.Requests.WithLabelValues(typ, op, outcome))
}

// waitFor polls cond until it holds or a second passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// slack is what a busy test machine (-race, cores shared with other
// suites) may add to an answer's time. It stays well under the slow
// upstream's latency in the tests that use it, so an answer that waited
// for the upstream still fails them.
const slack = 150 * time.Millisecond

var fast = Options{DefaultTimeout: time.Second, MaxTimeout: 2 * time.Second, BreakerFailures: 3, BreakerOpenFor: 200 * time.Millisecond,
	BreakerSlowCall: 100 * time.Millisecond, RetryBackoff: 5 * time.Millisecond, MaxInFlightPerOrg: 4}

// Every outcome, with its reply and its metric label.
func TestOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		policy  Policy
		opts    func(o *Options)
		setup   func(ev *env) *domain.Request
		outcome string
		source  string
		code    string
	}{
		{"ok", Policy{CacheTTL: time.Minute}, nil, func(ev *env) *domain.Request { return group("acme", "g1", 0) }, domain.OutcomeOK, SourceUpstream, ""},
		{"cached", Policy{CacheTTL: time.Minute}, nil, func(ev *env) *domain.Request {
			ev.query(group("acme", "g1", 0))
			ev.core.SetDown(true) // a hit never reaches the upstream
			return group("acme", "g1", 0)
		}, domain.OutcomeCached, SourceCache, ""},
		{"stale", Policy{CacheTTL: 30 * time.Millisecond, StaleFor: time.Minute}, nil, func(ev *env) *domain.Request {
			ev.query(group("acme", "g1", 0))
			time.Sleep(40 * time.Millisecond)
			ev.core.SetDown(true)
			return group("acme", "g1", 0)
		}, domain.OutcomeStale, SourceStale, ""},
		{"stale on timeout", Policy{CacheTTL: 30 * time.Millisecond, StaleFor: time.Minute}, nil, func(ev *env) *domain.Request {
			ev.query(group("acme", "g1", 0))
			time.Sleep(40 * time.Millisecond)
			ev.core.SetLatency(time.Second)
			return group("acme", "g1", 100)
		}, domain.OutcomeStale, SourceStale, ""},
		{"no stale when disabled", Policy{CacheTTL: 30 * time.Millisecond}, nil, func(ev *env) *domain.Request {
			ev.query(group("acme", "g1", 0))
			time.Sleep(40 * time.Millisecond)
			ev.core.SetDown(true)
			return group("acme", "g1", 0)
		}, domain.OutcomeUpstreamError, "", domain.CodeUpstreamError},
		{"timeout", Policy{}, nil, func(ev *env) *domain.Request {
			ev.core.SetLatency(time.Second)
			return group("acme", "g1", 100)
		}, domain.OutcomeTimeout, "", domain.CodeTimeout},
		{"upstream error", Policy{}, nil, func(ev *env) *domain.Request { ev.core.SetDown(true); return group("acme", "g1", 0) },
			domain.OutcomeUpstreamError, "", domain.CodeUpstreamError},
		{"rate limited", Policy{}, nil, func(ev *env) *domain.Request {
			ev.core.SetRequestLimit(1)
			ev.query(group("acme", "g2", 0))
			return group("acme", "g1", 0)
		},
			domain.OutcomeUpstreamError, "", domain.CodeRateLimited},
		{"breaker open", Policy{}, nil, func(ev *env) *domain.Request {
			ev.core.SetDown(true)
			for range 3 {
				ev.query(group("acme", "g1", 0))
			}
			return group("acme", "g1", 0)
		}, domain.OutcomeBreakerOpen, "", domain.CodeBreakerOpen},
		{"bulkhead full", Policy{}, func(o *Options) { o.MaxInFlightPerOrg = 1 }, func(ev *env) *domain.Request {
			ev.core.SetLatency(300 * time.Millisecond)
			go ev.query(group("acme", "g2", 0))
			waitFor(ev.t, "a call in flight", func() bool { return ev.e.bulk.inFlight("acme") == 1 })
			return group("acme", "g1", 0)
		}, domain.OutcomeBulkheadFull, "", domain.CodeBulkheadFull},
		{"not found", Policy{}, nil, func(ev *env) *domain.Request { return group("acme", "nope", 0) }, domain.OutcomeNotFound, "", domain.CodeNotFound},
		{"unknown connector", Policy{}, nil, func(ev *env) *domain.Request { return &domain.Request{Org: "zeta", Connector: "core", Query: "groups"} },
			domain.OutcomeInvalid, "", domain.CodeUnknownConnector},
		{"unsupported", Policy{}, nil, func(ev *env) *domain.Request { return &domain.Request{Org: "acme", Connector: "core", Query: "users"} },
			domain.OutcomeInvalid, "", domain.CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := fast
			if tc.opts != nil {
				tc.opts(&o)
			}
			ev := newEnv(t, o, tc.policy)
			r := tc.setup(ev)
			start := time.Now()
			rep := ev.query(r)
			if rep.Outcome != tc.outcome || rep.Source != tc.source || (tc.code == "") != (rep.Error == nil) || (rep.Error != nil && rep.Error.Code != tc.code) {
				t.Fatalf("reply %+v (error %+v), want %s/%s/%s", rep, rep.Error, tc.outcome, tc.source, tc.code)
			}
			if rep.Error == nil && (len(rep.Result) == 0 || rep.Result[0] != '{') {
				t.Fatalf("result %s", rep.Result)
			}
			if tc.source == SourceStale && rep.StaleReason == "" {
				t.Fatal("a stale answer without its reason")
			}
			// The engine aims at the deadline less its reserve; the slack is
			// for a busy machine (-race, shared cores).
			if r.TimeoutMS > 0 && time.Since(start) > time.Duration(r.TimeoutMS)*time.Millisecond+slack {
				t.Fatalf("answered after %v, past its %d ms deadline", time.Since(start), r.TimeoutMS)
			}
			typ := domain.TypeCoreAPI
			if tc.code == domain.CodeUnknownConnector {
				typ = "unknown"
			}
			if n := ev.count(typ, r.Op, tc.outcome); n < 1 {
				t.Fatalf("metric switchyard_cp_requests_total{type=%s,op=%s,outcome=%s} = %v", typ, r.Op, tc.outcome, n)
			}
		})
	}
}

// One slow org fills its own bulkhead, not another org's.
func TestBulkheadIsPerOrg(t *testing.T) {
	o := fast
	o.MaxInFlightPerOrg = 2
	ev := newEnv(t, o, Policy{})
	ev.core.SetLatency(300 * time.Millisecond)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() { ev.query(group("acme", fmt.Sprintf("g%d", i), 0)) })
	}
	waitFor(t, "acme's bulkhead full", func() bool { return ev.e.bulk.inFlight("acme") == 2 })
	if rep := ev.query(group("acme", "g2", 0)); rep.Error == nil || rep.Error.Code != domain.CodeBulkheadFull {
		t.Fatalf("acme: %+v", rep)
	}
	if rep := ev.query(group("beta", "g2", 0)); rep.Error != nil {
		t.Fatalf("beta starved by acme: %+v", rep.Error)
	}
	wg.Wait()
}

func TestIdenticalReadsAreCoalesced(t *testing.T) {
	ev := newEnv(t, fast, Policy{})
	ev.core.SetLatency(100 * time.Millisecond)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 50 {
		wg.Go(func() {
			if rep := ev.query(group("acme", "g1", 0)); rep.Error != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if hits := ev.core.Hits(); hits != 1 || failed.Load() != 0 {
		t.Fatalf("50 identical reads made %d upstream calls (%d failed)", hits, failed.Load())
	}
	if n := testutil.ToFloat64(ev.m.Coalesced); n != 49 {
		t.Fatalf("coalesced %v", n)
	}
}

// Waiters on one call each keep their own deadline; the call goes on for
// the one still waiting, and stops when nobody waits.
func TestCoalescedWaitersKeepTheirDeadlines(t *testing.T) {
	ev := newEnv(t, fast, Policy{})
	// The second waiter joins while the first still waits (a window of
	// ~250 ms, wide enough for a loaded machine); the first then leaves.
	ev.core.SetLatency(800 * time.Millisecond)
	short := make(chan Reply)
	go func() { short <- ev.query(group("acme", "g1", 300)) }()
	waitFor(t, "the first call upstream", func() bool { return ev.core.Hits() == 1 })
	long := ev.query(group("acme", "g1", 3000))
	if s := <-short; s.Error == nil || s.Error.Code != domain.CodeTimeout {
		t.Fatalf("short waiter: %+v", s)
	}
	if long.Error != nil || ev.core.Hits() != 1 {
		t.Fatalf("long waiter: %+v after %d calls", long.Error, ev.core.Hits())
	}
	// Alone, a waiter that leaves takes its call with it.
	ev.core.SetLatency(5 * time.Second)
	if rep := ev.query(group("acme", "g2", 50)); rep.Error == nil || rep.Error.Code != domain.CodeTimeout {
		t.Fatalf("abandoned: %+v", rep)
	}
	waitFor(t, "the abandoned call cancelled", func() bool { return testutil.ToFloat64(ev.m.InFlight) == 0 && ev.e.bulk.inFlight("acme") == 0 })
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		retries  int
		fail     int
		timeout  int64
		backoff  time.Duration
		wantHits int
		wantOK   bool
	}{
		{"recovers", 2, 2, 0, 5 * time.Millisecond, 3, true},
		{"gives up", 1, 2, 0, 5 * time.Millisecond, 2, false},
		{"no retries", 0, 1, 0, 5 * time.Millisecond, 1, false},
		{"backoff would pass the deadline", 3, 1, 150, 400 * time.Millisecond, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := fast
			o.RetryBackoff, o.RetryBackoffMax = tc.backoff, tc.backoff
			ev := newEnv(t, o, Policy{Retries: tc.retries})
			ev.core.FailNext(tc.fail)
			start := time.Now()
			rep := ev.query(group("acme", "g1", tc.timeout))
			if (rep.Error == nil) != tc.wantOK || ev.core.Hits() != tc.wantHits {
				t.Fatalf("%+v after %d calls, want ok=%t after %d", rep.Error, ev.core.Hits(), tc.wantOK, tc.wantHits)
			}
			if tc.timeout > 0 && time.Since(start) > time.Duration(tc.timeout)*time.Millisecond+slack {
				t.Fatalf("answered after %v", time.Since(start))
			}
		})
	}
	t.Run("not for non-retryable errors or writes", func(t *testing.T) {
		var hits atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			http.Error(w, "bad gateway", http.StatusBadGateway)
		}))
		defer srv.Close()
		o := fast
		o.BreakerFailures = 10
		ev := newEnv(t, o, Policy{Retries: 3})
		cfg := domain.Connector{Org: "acme", Name: "api", Type: domain.TypeHTTP, HTTP: &domain.HTTPSettings{Endpoints: map[string]domain.Endpoint{
			"log": {Method: "POST", URL: srv.URL + "/log", Body: `{"a": {{a}}}`}, "read": {URL: srv.URL + "/read"}}}}
		ev.e.Put(cfg, httpjson.New(httpjson.Options{Settings: *cfg.HTTP}), Policy{Retries: 3}, 1)
		ev.query(&domain.Request{Org: "acme", Connector: "api", Query: "log", Params: map[string]any{"a": 1}})
		if hits.Load() != 1 {
			t.Fatalf("a POST was sent %d times", hits.Load())
		}
		ev.query(&domain.Request{Org: "acme", Connector: "api", Query: "read"})
		if hits.Load() != 5 {
			t.Fatalf("a GET was sent %d times, want 1 + 3 retries", hits.Load()-1)
		}
		ev.query(group("acme", "nope", 0))
		if ev.core.Hits() != 1 {
			t.Fatalf("a not_found was retried: %d calls", ev.core.Hits())
		}
	})
}

func TestBreaker(t *testing.T) {
	ev := newEnv(t, fast, Policy{})
	// Not-found answers and the caller's own errors say nothing bad about
	// the upstream.
	for range 5 {
		ev.query(group("acme", "nope", 0))
	}
	if s, _ := ev.e.Status("acme", "core"); s.Breaker != "closed" {
		t.Fatalf("breaker %s after not_found answers", s.Breaker)
	}
	// Timeouts shorter than the slow-call threshold are not counted.
	ev.core.SetLatency(time.Second)
	for range 4 {
		ev.query(group("acme", "g1", 30))
	}
	if s, _ := ev.e.Status("acme", "core"); s.Breaker != "closed" {
		t.Fatalf("breaker %s after short timeouts", s.Breaker)
	}
	ev.core.SetLatency(0)
	ev.core.SetDown(true)
	for range 3 {
		ev.query(group("acme", "g1", 0))
	}
	hits := ev.core.Hits()
	if rep := ev.query(group("acme", "g2", 0)); rep.Error == nil || rep.Error.Code != domain.CodeBreakerOpen || ev.core.Hits() != hits {
		t.Fatalf("open breaker: %+v, %d calls", rep.Error, ev.core.Hits()-hits)
	}
	if g := testutil.ToFloat64(ev.m.BreakerOpen.WithLabelValues("acme", "core", "open")); g != 1 {
		t.Fatalf("breaker gauge %v", g)
	}
	if rep := ev.query(group("beta", "g1", 0)); rep.Error == nil || rep.Error.Code != domain.CodeUpstreamError {
		t.Fatalf("beta's breaker is its own: %+v", rep.Error)
	}
	// After the open period one probe goes through; success closes it.
	ev.core.SetDown(false)
	waitFor(t, "half-open", func() bool { s, _ := ev.e.Status("acme", "core"); return s.Breaker == "half-open" })
	if rep := ev.query(group("acme", "g1", 0)); rep.Error != nil {
		t.Fatalf("probe: %+v", rep.Error)
	}
	if s, _ := ev.e.Status("acme", "core"); s.Breaker != "closed" {
		t.Fatalf("breaker %s after a good probe", s.Breaker)
	}
	if testutil.CollectAndCount(ev.m.BreakerOpen) != 0 {
		t.Fatal("breaker gauge left behind after closing")
	}
}

func TestCacheBehaviour(t *testing.T) {
	ev := newEnv(t, fast, Policy{CacheTTL: time.Minute})
	ev.query(group("acme", "g1", 0))
	for _, tc := range []struct {
		name   string
		r      *domain.Request
		source string
	}{
		{"same read", group("acme", "g1", 0), SourceCache},
		{"other id", group("acme", "g2", 0), SourceUpstream},
		{"other org", group("beta", "g1", 0), SourceUpstream},
		{"no_cache", &domain.Request{Org: "acme", Connector: "core", Op: domain.OpGet, Object: "group", ID: "g1", NoCache: true}, SourceUpstream},
	} {
		if rep := ev.query(tc.r); rep.Source != tc.source {
			t.Errorf("%s: source %s, want %s", tc.name, rep.Source, tc.source)
		}
	}
	// An older configuration is ignored; a new one starts with no cache.
	if ev.put("acme", Policy{CacheTTL: time.Minute}, 1) {
		t.Fatal("a revision already installed replaced the connector")
	}
	if !ev.put("acme", Policy{CacheTTL: time.Minute}, 2) {
		t.Fatal("a newer revision was refused")
	}
	if rep := ev.query(group("acme", "g1", 0)); rep.Source != SourceUpstream {
		t.Fatalf("new configuration answered from the old one's cache")
	}
	ev.e.Delete("acme", "core", 3)
	if rep := ev.query(group("acme", "g1", 0)); rep.Error == nil || rep.Error.Code != domain.CodeUnknownConnector {
		t.Fatalf("deleted connector: %+v", rep)
	}
}

func TestTimeoutIsClipped(t *testing.T) {
	o := fast
	o.MaxTimeout = 200 * time.Millisecond
	ev := newEnv(t, o, Policy{})
	ev.core.SetLatency(2 * time.Second)
	start := time.Now()
	rep := ev.query(group("acme", "g1", 3_600_000))
	if took := time.Since(start); rep.Error == nil || rep.Error.Code != domain.CodeTimeout || took < 150*time.Millisecond || took > time.Second {
		t.Fatalf("%+v after %v, want a timeout at the 200 ms maximum", rep.Error, took)
	}
}

func TestCacheEviction(t *testing.T) {
	c := newCache(8 * (entryOverhead + termOverhead + 2 + 100))
	now := time.Now()
	val := make([]byte, 100)
	for i := range 10 {
		c.put(fmt.Sprintf("k%d", i), "", nil, 0, val, now, time.Minute, 0)
		if i == 7 {
			c.get("k0", now) // k0 is used just before the budget is spent: k1 and k2 go first
		}
	}
	n, size := c.stats()
	if n != 8 || size > c.max {
		t.Fatalf("%d entries, %d bytes of %d", n, size, c.max)
	}
	for k, want := range map[string]bool{"k0": true, "k1": false, "k2": false, "k3": true, "k9": true} {
		if _, ok := c.get(k, now); ok != want {
			t.Errorf("%s cached=%t", k, ok)
		}
	}
	if _, ok := c.get("k9", now.Add(2*time.Minute)); ok {
		t.Error("an entry past its stale window was served")
	}
	c.put("huge", "", nil, 0, make([]byte, c.max), now, time.Minute, 0)
	if _, ok := c.get("huge", now); ok {
		t.Error("an entry bigger than an eighth of the budget was cached")
	}
}

// memConn is an upstream of records in memory, object → id → value: get
// reads one, query reads every record of the objects its text names,
// update sets one, and op "post" (a write naming no object, as an HTTP
// endpoint that is not a read) changes every record. hold, while set,
// blocks reads until it is closed.
type memConn struct {
	mu      sync.Mutex
	records map[string]map[string]string
	calls   atomic.Int64
	hold    chan struct{}
}

func (c *memConn) Check(*domain.Request) error { return nil }
func (c *memConn) ReadOnly(r *domain.Request) bool {
	return r.Op != domain.OpUpdate && r.Query != "post"
}

func (c *memConn) Do(ctx context.Context, r *domain.Request) (json.RawMessage, error) {
	c.calls.Add(1)
	c.mu.Lock()
	hold := c.hold
	c.mu.Unlock()
	if hold != nil && c.ReadOnly(r) {
		<-hold
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case r.Op == domain.OpUpdate: // object names are case-insensitive, as in Salesforce
		for obj, recs := range c.records {
			if strings.EqualFold(obj, r.Object) {
				recs[r.ID] = fmt.Sprint(r.Values["v"])
			}
		}
		return json.RawMessage(`{"ok":true}`), nil
	case r.Query == "post":
		for _, recs := range c.records {
			for id := range recs {
				recs[id] += "+"
			}
		}
		return json.RawMessage(`{"ok":true}`), nil
	case r.Op == domain.OpGet:
		b, _ := json.Marshal(c.records[r.Object][r.ID])
		return b, nil
	}
	out := map[string]map[string]string{}
	for obj, recs := range c.records {
		if strings.Contains(r.Query, obj) {
			out[obj] = maps.Clone(recs)
		}
	}
	b, _ := json.Marshal(out)
	return b, nil
}

func (c *memConn) holdReads() func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold = make(chan struct{})
	h := c.hold
	return func() {
		c.mu.Lock()
		c.hold = nil
		c.mu.Unlock()
		close(h)
	}
}

// A write through the proxy drops the cached reads that name what it
// wrote — in this instance at once, in others through Invalidate — and a
// read that overlapped the write neither stores nor shares what it got.
func TestWritesInvalidateCachedReads(t *testing.T) {
	type world struct {
		e      *Engine
		crm    *memConn
		writes chan string
	}
	newWorld := func(t *testing.T) world {
		w := world{writes: make(chan string, 16)}
		o := fast
		o.OnWrite = func(org, connector, object string) { w.writes <- org + "/" + connector + "/" + object }
		w.e = New(o)
		w.crm = &memConn{records: map[string]map[string]string{"Account": {"1": "gold", "2": "silver"}, "Contact": {"7": "ann"}}}
		for _, org := range []string{"acme", "beta"} {
			w.e.Put(domain.Connector{Org: org, Name: "crm", Type: domain.TypeHTTP}, w.crm, Policy{CacheTTL: time.Hour, StaleFor: time.Hour}, 1)
		}
		return w
	}
	ask := func(t *testing.T, w world, r domain.Request) Reply {
		t.Helper()
		if r.Org == "" {
			r.Org = "acme"
		}
		r.Connector = "crm"
		if r.Op == "" {
			r.Op = domain.OpQuery
		}
		rep := w.e.Query(context.Background(), &r)
		if rep.Error != nil {
			t.Fatalf("%+v: %v", r, rep.Error)
		}
		return rep
	}
	getAcc := domain.Request{Op: domain.OpGet, Object: "Account", ID: "1"}
	qAcc := domain.Request{Query: "SELECT Name FROM Account"}
	qRel := domain.Request{Query: "SELECT Account.Name FROM Contact"}
	qCon := domain.Request{Query: "SELECT Name FROM Contact"}
	update := domain.Request{Op: domain.OpUpdate, Object: "account", ID: "1", Values: map[string]any{"v": "platinum"}}
	expect := func(t *testing.T, rep Reply, source, contains string) {
		t.Helper()
		if rep.Source != source || !strings.Contains(string(rep.Result), contains) {
			t.Fatalf("answer %s from %s; want %q from %s", rep.Result, rep.Source, contains, source)
		}
	}

	t.Run("a write drops the reads that name its object, only those", func(t *testing.T) {
		w := newWorld(t)
		for _, r := range []domain.Request{getAcc, qAcc, qRel, qCon} {
			ask(t, w, r)
			expect(t, ask(t, w, r), SourceCache, "")
		}
		ask(t, w, domain.Request{Org: "beta", Op: domain.OpGet, Object: "Account", ID: "1"})
		ask(t, w, update) // object names are matched regardless of case
		expect(t, ask(t, w, getAcc), SourceUpstream, "platinum")
		expect(t, ask(t, w, qAcc), SourceUpstream, "platinum")
		expect(t, ask(t, w, qRel), SourceUpstream, "platinum")
		expect(t, ask(t, w, qCon), SourceCache, "ann")
		expect(t, ask(t, w, domain.Request{Org: "beta", Op: domain.OpGet, Object: "Account", ID: "1"}), SourceCache, "gold") // another org's connector
		if got := <-w.writes; got != "acme/crm/account" {
			t.Fatalf("OnWrite told %q", got)
		}
		if n := testutil.ToFloat64(w.e.m.CacheInvalidated); n != 3 {
			t.Fatalf("switchyard_cp_cache_invalidated_total = %v, want 3", n)
		}
	})

	t.Run("a write naming no object drops every read of its connector", func(t *testing.T) {
		w := newWorld(t)
		ask(t, w, qCon)
		ask(t, w, getAcc)
		ask(t, w, domain.Request{Query: "post"})
		expect(t, ask(t, w, qCon), SourceUpstream, "ann+")
		expect(t, ask(t, w, getAcc), SourceUpstream, "gold+")
	})

	t.Run("another instance's write, told through Invalidate", func(t *testing.T) {
		w := newWorld(t)
		ask(t, w, getAcc)
		ask(t, w, qCon)
		w.crm.records["Account"]["1"] = "changed elsewhere"
		w.e.Invalidate("acme", "crm", "Account")
		expect(t, ask(t, w, getAcc), SourceUpstream, "changed elsewhere")
		w.e.Invalidate("nobody", "crm", "Account") // not installed here
		if n := len(w.e.cache.epochs); n != 1 {
			t.Fatalf("the cache keeps %d scopes, want 1 (acme/crm)", n)
		}
		expect(t, ask(t, w, qCon), SourceCache, "ann")
	})

	// Reads held upstream while an update goes through: what they bring
	// back may predate it.
	overlap := func(t *testing.T, w world) (early func() Reply, release func()) {
		release = w.crm.holdReads()
		ch := make(chan Reply, 1)
		go func() {
			ch <- w.e.Query(context.Background(), &domain.Request{Org: "acme", Connector: "crm", Op: domain.OpGet, Object: "Account", ID: "1"})
		}()
		waitFor(t, "the early read upstream", func() bool { return w.crm.calls.Load() == 1 })
		ask(t, w, update)
		return func() Reply { return <-ch }, release
	}
	t.Run("a read overlapping a write stores nothing", func(t *testing.T) {
		w := newWorld(t)
		early, release := overlap(t, w)
		release()
		early()
		expect(t, ask(t, w, getAcc), SourceUpstream, "platinum")
	})
	t.Run("a read after a write does not join a call begun before it", func(t *testing.T) {
		w := newWorld(t)
		early, release := overlap(t, w)
		late := make(chan Reply, 1)
		go func() {
			late <- w.e.Query(context.Background(), &domain.Request{Org: "acme", Connector: "crm", Op: domain.OpGet, Object: "Account", ID: "1"})
		}()
		waitFor(t, "the late read upstream", func() bool { return w.crm.calls.Load() == 3 })
		release()
		early()
		expect(t, <-late, SourceUpstream, "platinum")
	})
}
