// Package coreapistore reads routing policies from core-api, the platform's
// configuration REST service, the way the original system looked up "Lua
// scripts from dialplan policies" by policy id:
//
//	GET {BaseURL}/policies/{name}/script
//
// Scripts are cached with their ETag so an unchanged script costs one
// conditional request (or none within MaxAge), and a core-api outage does
// not take call routing down with it: the last good copy keeps serving for
// StaleFor.
package coreapistore

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/app"
)

// Options configure a Store.
type Options struct {
	// BaseURL is core-api's API root, e.g. https://core-api.internal/v1;
	// required, http or https.
	BaseURL string
	// Token is sent as "Authorization: Bearer <token>" when set.
	Token string
	// Client makes the requests; nil uses one with short timeouts, since a
	// caller is waiting in silence while the policy is fetched.
	Client *http.Client
	// MaxAge is how long a cached script is used without asking core-api
	// again; 0 revalidates (If-None-Match) on every Get.
	MaxAge time.Duration
	// StaleFor is how long after core-api last confirmed a script the
	// cached copy is still served while core-api is unreachable or
	// answers 5xx; 0 means DefaultStaleFor, negative never.
	StaleFor time.Duration
	// MaxBytes is the largest script accepted; 0 means DefaultMaxBytes.
	MaxBytes int64
	// Logger receives warnings about stale copies served; nil discards.
	Logger *slog.Logger
}

// Defaults for the zero Options fields.
const (
	DefaultStaleFor       = 10 * time.Minute
	DefaultMaxBytes int64 = 256 << 10
)

const (
	// maxEntries bounds the cache; names come from channel variables, so
	// the set of names asked for is not ours to bound.
	maxEntries = 10000
	// retryAfterFailure: after core-api failed a revalidation, the stale
	// copy is served without asking for this long, so that during an
	// outage calls do not each wait out a dial timeout first.
	retryAfterFailure = time.Second
	// backstopTimeout bounds a fetch when the Client has no timeout of its
	// own: fetches outlive the caller that started them (others may be
	// waiting on it), so nothing else would stop a hung one.
	backstopTimeout = 30 * time.Second
	userAgent       = "switchyard-policy-runner"
)

var (
	// ErrUnreachable: core-api could not be reached, timed out or answered
	// 5xx, and there was no cached copy young enough to serve instead.
	ErrUnreachable = errors.New("core-api unreachable")
	// ErrUnauthorized: core-api answered 401 or 403.
	ErrUnauthorized = errors.New("core-api refused the token")
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_\-]{1,64}$`)

// Store is an app.Store over core-api. It is safe for concurrent use.
type Store struct {
	client   *http.Client
	base     string // no trailing slash
	shown    string // base with any password redacted, for messages
	token    string
	maxAge   time.Duration
	staleFor time.Duration // 0: never serve stale
	maxBytes int64
	log      *slog.Logger

	// Fields tests replace.
	now        func() time.Time
	maxEntries int
	backstop   time.Duration

	mu       sync.Mutex
	entries  map[string]*list.Element // values are *entry
	lru      *list.List               // front: most recently used
	inflight map[string]*flight
}

type entry struct {
	policy app.Policy
	etag   string // as core-api sent it, for If-None-Match
	// confirmed is when core-api last vouched for this copy (200 or 304);
	// both MaxAge and StaleFor count from it.
	confirmed time.Time
	// retryAt: until then core-api is known to be failing and the stale
	// copy is served without asking.
	retryAt time.Time
}

// flight is one request to core-api that every concurrent Get of the same
// name waits on.
type flight struct {
	done    chan struct{}
	policy  app.Policy
	err     error
	waiters int // read by tests to know everyone has joined
}

// New checks the options and builds a store; it makes no request, so the
// runner starts even while core-api is down.
func New(opts Options) (*Store, error) {
	if strings.TrimSpace(opts.BaseURL) == "" {
		return nil, errors.New("core-api base URL is required (e.g. https://core-api.internal/v1)")
	}
	u, err := url.Parse(opts.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("core-api base URL: %w", err)
	}
	shown := u.Redacted()
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("core-api base URL %q: scheme must be http or https", shown)
	case u.Host == "":
		return nil, fmt.Errorf("core-api base URL %q: no host", shown)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("core-api base URL %q: must not have a query or fragment; /policies/<name>/script is appended to it", shown)
	}
	if strings.ContainsFunc(opts.Token, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		// The token itself is not echoed: it is a secret.
		return nil, errors.New("core-api token contains whitespace or control characters; check --core-api-token")
	}
	if opts.MaxAge < 0 {
		return nil, fmt.Errorf("core-api max age %s is negative; 0 revalidates on every use", opts.MaxAge)
	}
	if opts.MaxBytes < 0 {
		return nil, fmt.Errorf("core-api max script size %d is negative; 0 means %d bytes", opts.MaxBytes, DefaultMaxBytes)
	}
	s := &Store{
		client:     opts.Client,
		base:       strings.TrimRight(u.String(), "/"),
		shown:      strings.TrimRight(shown, "/"),
		token:      opts.Token,
		maxAge:     opts.MaxAge,
		staleFor:   opts.StaleFor,
		maxBytes:   opts.MaxBytes,
		log:        opts.Logger,
		now:        time.Now,
		maxEntries: maxEntries,
		backstop:   backstopTimeout,
		entries:    map[string]*list.Element{},
		lru:        list.New(),
		inflight:   map[string]*flight{},
	}
	if s.client == nil {
		s.client = defaultClient()
	}
	switch {
	case s.staleFor == 0:
		s.staleFor = DefaultStaleFor
	case s.staleFor < 0:
		s.staleFor = 0
	}
	if s.maxBytes == 0 {
		s.maxBytes = DefaultMaxBytes
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// defaultClient fails fast: a policy that takes seconds to arrive is a
// caller hearing silence, and a stale copy is usually there to fall back on.
func defaultClient() *http.Client {
	var t *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		t = dt.Clone() // keeps proxy-from-environment and HTTP/2
	} else {
		t = &http.Transport{Proxy: http.ProxyFromEnvironment}
	}
	t.DialContext = (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 3 * time.Second
	t.ResponseHeaderTimeout = 5 * time.Second
	t.MaxIdleConnsPerHost = 8
	t.IdleConnTimeout = 90 * time.Second
	return &http.Client{Timeout: 10 * time.Second, Transport: t}
}

// Get returns the current script of a policy.
func (s *Store) Get(ctx context.Context, name string) (app.Policy, error) {
	if !nameRE.MatchString(name) {
		return app.Policy{}, fmt.Errorf("%w: %q is not a policy name", app.ErrNoPolicy, name)
	}
	s.mu.Lock()
	now := s.now()
	if e := s.lookup(name); e != nil {
		if s.maxAge > 0 && now.Sub(e.confirmed) < s.maxAge {
			s.mu.Unlock()
			return e.policy, nil
		}
		if now.Before(e.retryAt) && s.usable(e, now) {
			s.mu.Unlock()
			return e.policy, nil
		}
	}
	f := s.inflight[name]
	if f == nil {
		f = &flight{done: make(chan struct{})}
		s.inflight[name] = f
		// The request runs apart from this caller so that its hanging up
		// does not fail the others waiting on the same flight.
		go s.fly(context.WithoutCancel(ctx), name, f)
	}
	f.waiters++
	s.mu.Unlock()

	select {
	case <-f.done:
		return f.policy, f.err
	case <-ctx.Done():
	}
	// The caller cannot wait any longer: a stale copy beats nothing, as it
	// would if core-api had timed out.
	s.mu.Lock()
	e := s.lookup(name)
	ok := e != nil && s.usable(e, s.now())
	var p app.Policy
	if ok {
		p = e.policy
	}
	s.mu.Unlock()
	if ok {
		s.log.Warn("core-api too slow for this call; serving the cached policy", "policy", name, "version", p.Version, "err", ctx.Err())
		return p, nil
	}
	return app.Policy{}, fmt.Errorf("fetching policy %q from core-api at %s: %w", name, s.shown, ctx.Err())
}

// lookup finds a cached entry and marks it used; s.mu is held.
func (s *Store) lookup(name string) *entry {
	el := s.entries[name]
	if el == nil {
		return nil
	}
	s.lru.MoveToFront(el)
	return el.Value.(*entry)
}

// usable: e may be served while core-api fails; s.mu is held.
func (s *Store) usable(e *entry, now time.Time) bool {
	return s.staleFor > 0 && now.Sub(e.confirmed) < s.staleFor
}

// store caches e under name, evicting the least recently used entry when
// full; s.mu is held.
func (s *Store) store(name string, e *entry) {
	if el := s.entries[name]; el != nil {
		el.Value = e
		s.lru.MoveToFront(el)
		return
	}
	for s.lru.Len() >= s.maxEntries && s.lru.Len() > 0 {
		old := s.lru.Back()
		s.lru.Remove(old)
		delete(s.entries, old.Value.(*entry).policy.Name)
	}
	s.entries[name] = s.lru.PushFront(e)
}

func (s *Store) drop(name string) {
	if el := s.entries[name]; el != nil {
		s.lru.Remove(el)
		delete(s.entries, name)
	}
}

// answer is what one request to core-api came to.
type answer struct {
	kind answerKind
	body []byte
	etag string
	err  error
}

type answerKind int

const (
	gotScript   answerKind = iota // 200
	notModified                   // 304
	notFound                      // 404
	unavailable                   // network, timeout, 5xx: stale may serve
	failed                        // anything else: no stale
)

// fly makes the request for a flight and settles the cache with its answer.
func (s *Store) fly(ctx context.Context, name string, f *flight) {
	if s.client.Timeout <= 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.backstop)
		defer cancel()
	}
	s.mu.Lock()
	var prev *entry
	if el := s.entries[name]; el != nil {
		prev = el.Value.(*entry)
	}
	s.mu.Unlock()

	a := s.request(ctx, name, prev)

	var warn, info func()
	s.mu.Lock()
	now := s.now()
	switch a.kind {
	case gotScript:
		e := &entry{
			policy:    app.Policy{Name: name, Version: version(a.etag, a.body), Source: string(a.body)},
			etag:      a.etag,
			confirmed: now,
		}
		if prev != nil && prev.policy.Version != e.policy.Version {
			info = func() {
				s.log.Info("policy changed in core-api", "policy", name, "from", prev.policy.Version, "to", e.policy.Version)
			}
		}
		s.store(name, e)
		f.policy = e.policy
	case notModified:
		if prev == nil {
			f.err = fmt.Errorf("fetching policy %q: core-api answered 304 Not Modified to a request without If-None-Match", name)
			break
		}
		e := *prev
		e.confirmed, e.retryAt = now, time.Time{}
		// Stored anew rather than updated in place: prev may have been
		// evicted while the request was out, and readers must not see
		// a half-updated entry.
		s.store(name, &e)
		f.policy = e.policy
	case notFound:
		s.drop(name)
		f.err = a.err
	case unavailable:
		var e *entry
		if el := s.entries[name]; el != nil {
			e = el.Value.(*entry)
		}
		if e != nil && s.usable(e, now) {
			e.retryAt = now.Add(retryAfterFailure)
			f.policy = e.policy
			age, ver := now.Sub(e.confirmed).Round(time.Second), e.policy.Version
			warn = func() {
				s.log.Warn("core-api unavailable; serving the cached policy", "policy", name, "version", ver,
					"age", age, "stale_for", s.staleFor, "err", a.err)
			}
		} else {
			f.err = a.err
		}
	default:
		f.err = a.err
	}
	delete(s.inflight, name)
	s.mu.Unlock()
	close(f.done)
	if warn != nil {
		warn()
	}
	if info != nil {
		info()
	}
}

// request asks core-api for a script, conditionally when prev is cached.
func (s *Store) request(ctx context.Context, name string, prev *entry) answer {
	target := s.base + "/policies/" + url.PathEscape(name) + "/script"
	shown := s.shown + "/policies/" + url.PathEscape(name) + "/script"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return answer{kind: failed, err: fmt.Errorf("fetching policy %q: building request for %s: %w", name, shown, err)}
	}
	req.Header.Set("Accept", "text/x-lua, text/plain")
	req.Header.Set("User-Agent", userAgent)
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	if prev != nil && prev.etag != "" {
		req.Header.Set("If-None-Match", prev.etag)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		// url.Error repeats method and URL; say them once, redacted.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return answer{kind: unavailable, err: fmt.Errorf("fetching policy %q: %w: GET %s: %w", name, ErrUnreachable, shown, err)}
	}
	defer resp.Body.Close()

	switch code := resp.StatusCode; {
	case code == http.StatusOK:
		if resp.ContentLength > s.maxBytes {
			return answer{kind: failed, err: fmt.Errorf("fetching policy %q from %s: script is %d bytes, over the %d-byte limit", name, shown, resp.ContentLength, s.maxBytes)}
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, s.maxBytes+1))
		if err != nil {
			return answer{kind: unavailable, err: fmt.Errorf("fetching policy %q: %w: reading GET %s: %w", name, ErrUnreachable, shown, err)}
		}
		if int64(len(body)) > s.maxBytes {
			return answer{kind: failed, err: fmt.Errorf("fetching policy %q from %s: script is over the %d-byte limit", name, shown, s.maxBytes)}
		}
		return answer{kind: gotScript, body: body, etag: resp.Header.Get("ETag")}
	case code == http.StatusNotModified:
		return answer{kind: notModified}
	case code == http.StatusNotFound:
		return answer{kind: notFound, err: fmt.Errorf("%w: core-api has no policy %q (GET %s: %s)", app.ErrNoPolicy, name, shown, resp.Status)}
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		hint := "check --core-api-token"
		if s.token == "" {
			hint = "no token is set; set --core-api-token"
		}
		return answer{kind: failed, err: fmt.Errorf("fetching policy %q: %w (GET %s: %s); %s", name, ErrUnauthorized, shown, resp.Status, hint)}
	case code >= 500:
		return answer{kind: unavailable, err: fmt.Errorf("fetching policy %q: %w: GET %s: %s%s", name, ErrUnreachable, shown, resp.Status, said(resp.Body))}
	default:
		return answer{kind: failed, err: fmt.Errorf("fetching policy %q: GET %s: unexpected %s%s", name, shown, resp.Status, said(resp.Body))}
	}
}

// said is the start of an error body, which often names the actual problem.
func said(body io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(body, 512))
	line, _, _ := strings.Cut(strings.TrimSpace(strings.ToValidUTF8(string(b), "?")), "\n")
	line = strings.TrimSpace(line)
	if len(line) > 200 {
		line = strings.ToValidUTF8(line[:200], "") + "…"
	}
	if line == "" {
		return ""
	}
	return fmt.Sprintf(" (core-api said %q)", line)
}

// version names a script's content: the ETag when core-api sends one (it
// already promises same content, same tag), else a hash of the body.
func version(etag string, body []byte) string {
	v := strings.Trim(strings.TrimPrefix(strings.TrimSpace(etag), "W/"), `"`)
	if v != "" {
		return v
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:6])
}
