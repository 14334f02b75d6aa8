// Package app is the connector-proxy's use case: answer a look-up within
// the caller's deadline, whatever the upstream does. Around every
// connector it puts a deadline, retries with backoff (reads only, only
// while the deadline allows), a circuit breaker per org and connector, a
// bulkhead per org, a TTL cache with stale-while-error, and coalescing of
// identical concurrent reads. Every answer has an outcome label.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/domain"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/metrics"
)

// Connector is one configured upstream, as the engine drives it.
type Connector interface {
	// Check refuses, before anything is cached or sent, what this
	// connector cannot do (an op it lacks, params that do not bind).
	Check(req *domain.Request) error
	// ReadOnly reports whether the request may be cached, coalesced and
	// retried.
	ReadOnly(req *domain.Request) bool
	// Do calls the upstream; the result is JSON. Errors are *domain.Error.
	Do(ctx context.Context, req *domain.Request) (json.RawMessage, error)
}

// Policy is a connector's effective fail-safe settings.
type Policy struct {
	CacheTTL time.Duration // 0: reads are not cached
	StaleFor time.Duration // 0: no stale-while-error
	Retries  int
}

// Options configure the engine.
type Options struct {
	DefaultTimeout    time.Duration // a request without timeout_ms
	MaxTimeout        time.Duration // longer ones are clipped to it
	MaxInFlightPerOrg int           // the bulkhead
	BreakerFailures   int           // consecutive failures that open a breaker
	BreakerOpenFor    time.Duration // before one probe is let through
	// BreakerSlowCall: a call that ran out of time counts as a failure
	// only if it had at least this long; shorter deadlines say nothing
	// about the upstream.
	BreakerSlowCall time.Duration
	RetryBackoff    time.Duration // first backoff; doubles, with full jitter
	RetryBackoffMax time.Duration
	CacheMaxBytes   int64
	// OnWrite, if set, is told of every write this engine sent upstream
	// (whatever its result), once it has ended: other instances' caches
	// drop what it may have changed (Invalidate).
	OnWrite func(org, connector, object string)
	Metrics *metrics.Metrics
	Logger  *slog.Logger
}

// Reply is the answer to one request: a result or an error, never both.
type Reply struct {
	Result json.RawMessage `json:"result,omitempty"`
	// Source: upstream, cache (fresh) or stale (served because the
	// upstream failed: StaleReason is the error code).
	Source      string        `json:"source,omitempty"`
	AgeMS       int64         `json:"age_ms,omitempty"` // of a cache or stale answer
	StaleReason string        `json:"stale_reason,omitempty"`
	TookMS      float64       `json:"took_ms"`
	Error       *domain.Error `json:"error,omitempty"`
	Outcome     string        `json:"-"`
}

// Sources.
const (
	SourceUpstream = "upstream"
	SourceCache    = "cache"
	SourceStale    = "stale"
)

// Status is a connector's live state, for the admin API.
type Status struct {
	Revision       uint64 `json:"revision"`
	Breaker        string `json:"breaker"` // closed, open, half-open
	BreakerFailing uint32 `json:"breaker_consecutive_failures"`
	OrgInFlight    int64  `json:"org_in_flight"`
}

// Engine serves requests against the configured connectors.
type Engine struct {
	opts    Options
	log     *slog.Logger
	m       *metrics.Metrics
	cache   *cache
	flights *flights
	bulk    *bulkhead

	mu      sync.RWMutex
	entries map[string]*entry // org + "/" + name
	gen     uint64
}

type entry struct {
	cfg      domain.Connector
	conn     Connector
	policy   Policy
	revision uint64
	gen      uint64 // part of cache keys: a new configuration starts cold
	breaker  *gobreaker.TwoStepCircuitBreaker[struct{}]
}

// New builds an engine with no connectors.
func New(opts Options) *Engine {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	if opts.MaxTimeout <= 0 {
		opts.MaxTimeout = 10 * time.Second
	}
	if opts.DefaultTimeout <= 0 {
		opts.DefaultTimeout = 2 * time.Second
	}
	if opts.MaxInFlightPerOrg <= 0 {
		opts.MaxInFlightPerOrg = 32
	}
	if opts.BreakerFailures <= 0 {
		opts.BreakerFailures = 5
	}
	if opts.BreakerOpenFor <= 0 {
		opts.BreakerOpenFor = 30 * time.Second
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = 50 * time.Millisecond
	}
	if opts.RetryBackoffMax <= 0 {
		opts.RetryBackoffMax = time.Second
	}
	if opts.CacheMaxBytes <= 0 {
		opts.CacheMaxBytes = 64 << 20
	}
	return &Engine{opts: opts, log: opts.Logger, m: opts.Metrics, cache: newCache(opts.CacheMaxBytes),
		flights: newFlights(opts.MaxTimeout), bulk: newBulkhead(int64(opts.MaxInFlightPerOrg)), entries: map[string]*entry{}}
}

func key(org, name string) string { return org + "/" + name }

// Put installs or replaces a connector. A revision not newer than the
// installed one is ignored (the config store's watch may deliver what this
// instance already applied); revision 0 always replaces. The new
// configuration gets a closed breaker and an empty cache.
func (e *Engine) Put(cfg domain.Connector, c Connector, p Policy, revision uint64) bool {
	k := key(cfg.Org, cfg.Name)
	e.mu.Lock()
	defer e.mu.Unlock()
	if old, ok := e.entries[k]; ok && revision != 0 && old.revision >= revision {
		return false
	}
	e.gen++
	ent := &entry{cfg: cfg, conn: c, policy: p, revision: revision, gen: e.gen}
	ent.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        k,
		MaxRequests: 1,
		Timeout:     e.opts.BreakerOpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(e.opts.BreakerFailures) },
		IsSuccessful: func(err error) bool {
			return err == nil || !domain.TripsBreaker(domain.AsError(err).Code)
		},
		IsExcluded:    func(err error) bool { return errors.Is(err, errShortTimeout) },
		OnStateChange: func(_ string, from, to gobreaker.State) { e.breakerChanged(cfg, from, to) },
	})
	if old, ok := e.entries[k]; ok {
		e.m.BreakerOpen.DeleteLabelValues(old.cfg.Org, old.cfg.Name, gobreaker.StateOpen.String())
		e.m.BreakerOpen.DeleteLabelValues(old.cfg.Org, old.cfg.Name, gobreaker.StateHalfOpen.String())
	}
	e.entries[k] = ent
	return true
}

// Delete removes a connector (revision 0: whatever is installed).
func (e *Engine) Delete(org, name string, revision uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if old, ok := e.entries[key(org, name)]; ok && (revision == 0 || old.revision < revision) {
		delete(e.entries, key(org, name))
		e.m.BreakerOpen.DeleteLabelValues(org, name, gobreaker.StateOpen.String())
		e.m.BreakerOpen.DeleteLabelValues(org, name, gobreaker.StateHalfOpen.String())
	}
}

// Status is a connector's live state.
func (e *Engine) Status(org, name string) (Status, bool) {
	e.mu.RLock()
	ent, ok := e.entries[key(org, name)]
	e.mu.RUnlock()
	if !ok {
		return Status{}, false
	}
	return Status{Revision: ent.revision, Breaker: ent.breaker.State().String(),
		BreakerFailing: ent.breaker.Counts().ConsecutiveFailures, OrgInFlight: e.bulk.inFlight(org)}, true
}

// Connectors is how many connectors are installed.
func (e *Engine) Connectors() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return len(e.entries)
}

// CacheStats are the cache's entries and bytes.
func (e *Engine) CacheStats() (int, int64) { return e.cache.stats() }

func (e *Engine) breakerChanged(cfg domain.Connector, from, to gobreaker.State) {
	e.m.BreakerChanges.WithLabelValues(to.String()).Inc()
	e.m.BreakerOpen.DeleteLabelValues(cfg.Org, cfg.Name, from.String())
	if to != gobreaker.StateClosed {
		e.m.BreakerOpen.WithLabelValues(cfg.Org, cfg.Name, to.String()).Set(1)
	}
	lvl := slog.LevelInfo
	if to == gobreaker.StateOpen {
		lvl = slog.LevelWarn
	}
	e.log.Log(context.Background(), lvl, "circuit breaker "+to.String(), "org", cfg.Org, "connector", cfg.Name, "type", cfg.Type, "from", from.String())
}

func (e *Engine) lookup(org, name string) *entry {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.entries[key(org, name)]
}

// reserve is how long before the deadline the engine answers, so that a
// caller waiting exactly timeout_ms still receives the answer.
func reserve(timeout time.Duration) time.Duration { return min(timeout/10, 20*time.Millisecond) }

// Query answers one validated request.
func (e *Engine) Query(ctx context.Context, req *domain.Request) (rep Reply) {
	start := time.Now()
	typ := "unknown"
	defer func() {
		rep.TookMS = float64(time.Since(start).Microseconds()) / 1000
		if rep.Outcome == "" {
			rep.Outcome = domain.Outcome(rep.Error.Code)
		}
		e.m.Requests.WithLabelValues(typ, req.Op, rep.Outcome).Inc()
		e.m.Duration.WithLabelValues(typ, rep.Outcome).Observe(time.Since(start).Seconds())
		if e.log.Enabled(ctx, slog.LevelDebug) {
			attrs := []any{"org", req.Org, "connector", req.Connector, "op", req.Op, "outcome", rep.Outcome, "took_ms", rep.TookMS}
			if req.CallID != "" {
				attrs = append(attrs, "callid", req.CallID)
			}
			if rep.Error != nil {
				attrs = append(attrs, "code", rep.Error.Code, "err", rep.Error.Message)
			}
			e.log.Debug("connector request", attrs...)
		}
	}()
	timeout := req.Timeout(e.opts.DefaultTimeout, e.opts.MaxTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout-reserve(timeout))
	defer cancel()
	ent := e.lookup(req.Org, req.Connector)
	if ent == nil {
		return Reply{Error: domain.Errorf(domain.CodeUnknownConnector, "org %s has no connector %q", req.Org, req.Connector)}
	}
	typ = ent.cfg.Type
	if err := ent.conn.Check(req); err != nil {
		return Reply{Error: domain.AsError(err)}
	}
	if !ent.conn.ReadOnly(req) {
		// What this write may change is not served from the cache
		// after it, nor stored by a read that overlapped it.
		e.drop(req.Org, req.Connector, req.Object)
		defer func() {
			e.drop(req.Org, req.Connector, req.Object)
			if e.opts.OnWrite != nil {
				e.opts.OnWrite(req.Org, req.Connector, req.Object)
			}
		}()
		res, err := e.call(ctx, ent, req, false, nil)
		if err != nil {
			return Reply{Error: asReplyError(ctx, err)}
		}
		return Reply{Result: res, Source: SourceUpstream, Outcome: domain.OutcomeOK}
	}
	return e.read(ctx, ent, req)
}

// read serves a read: from the cache when fresh, else from one coalesced
// upstream call, else — if the upstream failed — from the cache if stale.
func (e *Engine) read(ctx context.Context, ent *entry, req *domain.Request) Reply {
	k := req.CacheKey(ent.gen)
	var hit cached
	var have bool
	if ent.policy.CacheTTL > 0 {
		now := time.Now()
		if hit, have = e.cache.get(k, now); have && !req.NoCache && now.Before(hit.freshUntil) {
			return Reply{Result: hit.val, Source: SourceCache, AgeMS: now.Sub(hit.stored).Milliseconds(), Outcome: domain.OutcomeCached}
		}
	}
	// A read joins only a call that began after the scope's last write
	// (one begun before may return what the write replaced).
	scope := key(req.Org, req.Connector)
	epoch := e.cache.epoch(scope)
	res, err, joined := e.flights.do(ctx, k+"\x00"+strconv.FormatUint(epoch, 10), func(fctx context.Context, deadline func() time.Time) (json.RawMessage, error) {
		res, err := e.call(fctx, ent, req, true, deadline)
		if err == nil && ent.policy.CacheTTL > 0 {
			e.cache.put(k, scope, readTerms(req), epoch, res, time.Now(), ent.policy.CacheTTL, ent.policy.StaleFor)
		}
		return res, err
	})
	if joined {
		e.m.Coalesced.Inc()
	}
	if err == nil {
		return Reply{Result: res, Source: SourceUpstream, Outcome: domain.OutcomeOK}
	}
	de := asReplyError(ctx, err)
	if have && domain.ServeStale(de.Code) {
		if now := time.Now(); now.Before(hit.staleUntil) {
			return Reply{Result: hit.val, Source: SourceStale, AgeMS: now.Sub(hit.stored).Milliseconds(), StaleReason: de.Code, Outcome: domain.OutcomeStale}
		}
	}
	return Reply{Error: de}
}

// Invalidate drops the cached reads of org's connector that name object
// (object "": all of them), and keeps reads in flight from storing their
// results: a write to it went through another instance. A connector not
// installed here is ignored (and leaves no trace: notices cannot grow the
// cache's bookkeeping).
func (e *Engine) Invalidate(org, connector, object string) {
	if e.lookup(org, connector) != nil {
		e.drop(org, connector, object)
	}
}

// drop marks a write to object through org's connector in the cache
// (cache.write) and counts the entries it dropped.
func (e *Engine) drop(org, connector, object string) {
	n := e.cache.write(key(org, connector), object)
	if n == 0 {
		return
	}
	e.m.CacheInvalidated.Add(float64(n))
	if e.log.Enabled(context.Background(), slog.LevelDebug) {
		e.log.Debug("cache entries dropped by a write", "org", org, "connector", connector, "object", object, "entries", n)
	}
}

// readTerms are the words a read is indexed by in the cache: its object
// and the identifiers of its query text, lower case — a write to an object
// drops the cached reads that name it (SOQL's FROM and relationship paths
// such as Account.Name do). A read naming more than maxTerms words is
// dropped by any write to its connector.
func readTerms(req *domain.Request) []string {
	seen := map[string]bool{}
	var terms []string
	add := func(w string) {
		if w = strings.ToLower(w); w != "" && !seen[w] {
			seen[w] = true
			terms = append(terms, w)
		}
	}
	add(req.Object)
	for _, w := range strings.FieldsFunc(req.Query, func(r rune) bool {
		return !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) {
		add(w)
	}
	if len(terms) > maxTerms {
		return []string{anyTerm}
	}
	return terms
}

// asReplyError is the error a caller sees: a context that ended is a
// timeout.
func asReplyError(ctx context.Context, err error) *domain.Error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || (ctx.Err() != nil && !isDomain(err)) {
		return domain.Errorf(domain.CodeTimeout, "no answer within the request's deadline")
	}
	return domain.AsError(err)
}

func isDomain(err error) bool {
	var e *domain.Error
	return errors.As(err, &e)
}

// errShortTimeout wraps a timeout the breaker should not count.
var errShortTimeout = errors.New("timed out under the breaker's slow-call threshold")

// call runs one request upstream under the org's bulkhead, retrying a
// read's transient failures while the deadline allows.
func (e *Engine) call(ctx context.Context, ent *entry, req *domain.Request, read bool, deadline func() time.Time) (json.RawMessage, error) {
	if !e.bulk.acquire(req.Org) {
		return nil, domain.Errorf(domain.CodeBulkheadFull, "org %s has %d upstream calls in flight, its maximum", req.Org, e.opts.MaxInFlightPerOrg)
	}
	defer e.bulk.release(req.Org)
	e.m.InFlight.Inc()
	defer e.m.InFlight.Dec()
	retries := 0
	if read {
		retries = ent.policy.Retries
	}
	for attempt := 0; ; attempt++ {
		res, err := e.attempt(ctx, ent, req)
		if err == nil {
			return res, nil
		}
		de := domain.AsError(err)
		if attempt >= retries || !de.Retryable {
			return nil, de
		}
		backoff := e.backoff(attempt)
		if deadline == nil || time.Until(deadline()) < backoff+minAttempt {
			return nil, de
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, de
		case <-t.C:
		}
		e.m.Retries.WithLabelValues(ent.cfg.Type).Inc()
	}
}

// minAttempt is the least time worth a retry.
const minAttempt = 20 * time.Millisecond

// backoff is exponential with full jitter.
func (e *Engine) backoff(attempt int) time.Duration {
	d := min(e.opts.RetryBackoff<<attempt, e.opts.RetryBackoffMax)
	return d/2 + rand.N(d/2+1)
}

// attempt is one upstream call through the breaker.
func (e *Engine) attempt(ctx context.Context, ent *entry, req *domain.Request) (json.RawMessage, error) {
	done, err := ent.breaker.Allow()
	if err != nil {
		return nil, domain.Errorf(domain.CodeBreakerOpen, "connector %s of org %s failed repeatedly; not calling it for up to %s", ent.cfg.Name, ent.cfg.Org, e.opts.BreakerOpenFor)
	}
	start := time.Now()
	res, err := ent.conn.Do(ctx, req)
	took := time.Since(start)
	e.m.UpstreamDuration.WithLabelValues(ent.cfg.Type).Observe(took.Seconds())
	if err == nil {
		done(nil)
		e.m.Upstream.WithLabelValues(ent.cfg.Type, "ok").Inc()
		return res, nil
	}
	de := asReplyError(ctx, err)
	if !isDomain(err) {
		de.Retryable = ctx.Err() == nil
	}
	e.m.Upstream.WithLabelValues(ent.cfg.Type, de.Code).Inc()
	if de.Code == domain.CodeTimeout && took < e.opts.BreakerSlowCall {
		done(errShortTimeout)
	} else {
		done(de)
	}
	return nil, de
}

// bulkhead bounds upstream calls in flight per org.
type bulkhead struct {
	max int64
	mu  sync.Mutex
	n   map[string]int64
}

func newBulkhead(max int64) *bulkhead { return &bulkhead{max: max, n: map[string]int64{}} }

func (b *bulkhead) acquire(org string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n[org] >= b.max {
		return false
	}
	b.n[org]++
	return true
}

func (b *bulkhead) release(org string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n[org]--; b.n[org] <= 0 {
		delete(b.n, org)
	}
}

func (b *bulkhead) inFlight(org string) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n[org]
}
