// Package coreapi reads policies from core-api, the platform's configuration
// service, as the original system looked up "Lua scripts from dialplan
// policies": GET {base}/policies/{id}/script, cached by ETag. A call never
// waits on core-api for an unchanged script longer than one conditional
// request, and while core-api is down the cached copy keeps serving for
// StaleFor.
package coreapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/app"
)

// Options configure the store.
type Options struct {
	BaseURL string // e.g. https://core-api.internal/v1
	Token   string // sent as a bearer token when set
	Client  *http.Client
	// MaxAge: a cached script is used without asking again for this long;
	// 0 revalidates (If-None-Match) on every Get.
	MaxAge time.Duration
	// StaleFor: while core-api fails (network, 5xx), a cached copy this
	// young is still served; 0 means 10 minutes, negative never.
	StaleFor time.Duration
	MaxBytes int64 // largest script; 0 means 256 KiB
	Logger   *slog.Logger
}

// maxCached bounds the cache; the oldest entry goes first.
const maxCached = 10000

// Store is app.Store over core-api.
type Store struct {
	opts Options
	base *url.URL

	mu       sync.Mutex
	cache    map[string]*entry
	inflight map[string]*fetch
}

type entry struct {
	policy  app.Policy
	etag    string
	fetched time.Time // last time core-api confirmed it
}

type fetch struct {
	done   chan struct{}
	policy app.Policy
	err    error
}

// New checks the options.
func New(opts Options) (*Store, error) {
	u, err := url.Parse(opts.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("core-api URL %q: want http(s)://host[:port][/path]", opts.BaseURL)
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
			TLSHandshakeTimeout: 5 * time.Second, ResponseHeaderTimeout: 8 * time.Second,
			MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second,
		}}
	}
	if opts.StaleFor == 0 {
		opts.StaleFor = 10 * time.Minute
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 256 << 10
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Store{opts: opts, base: u, cache: map[string]*entry{}, inflight: map[string]*fetch{}}, nil
}

// Get returns the policy's current script.
func (s *Store) Get(ctx context.Context, name string) (app.Policy, error) {
	if !app.ValidName(name) {
		return app.Policy{}, fmt.Errorf("%w: %q is not a policy name", app.ErrNoPolicy, name)
	}
	s.mu.Lock()
	if e, ok := s.cache[name]; ok && s.opts.MaxAge > 0 && time.Since(e.fetched) < s.opts.MaxAge {
		s.mu.Unlock()
		return e.policy, nil
	}
	// One request per name at a time: a burst of calls for one policy
	// shares it.
	if f, ok := s.inflight[name]; ok {
		s.mu.Unlock()
		select {
		case <-f.done:
			return f.policy, f.err
		case <-ctx.Done():
			return app.Policy{}, ctx.Err()
		}
	}
	f := &fetch{done: make(chan struct{})}
	s.inflight[name] = f
	s.mu.Unlock()
	f.policy, f.err = s.fetch(context.WithoutCancel(ctx), name)
	s.mu.Lock()
	delete(s.inflight, name)
	s.mu.Unlock()
	close(f.done)
	return f.policy, f.err
}

func (s *Store) fetch(ctx context.Context, name string) (app.Policy, error) {
	s.mu.Lock()
	cached := s.cache[name]
	s.mu.Unlock()
	u := *s.base
	u.Path += "/policies/" + name + "/script"
	u.RawPath = ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return app.Policy{}, err
	}
	req.Header.Set("Accept", "text/x-lua, text/plain")
	if s.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.opts.Token)
	}
	if cached != nil && cached.etag != "" {
		req.Header.Set("If-None-Match", cached.etag)
	}
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return s.stale(name, cached, fmt.Errorf("core-api unreachable at %s: %w", u.String(), err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && cached != nil:
		s.mu.Lock()
		cached.fetched = time.Now()
		s.mu.Unlock()
		return cached.policy, nil
	case resp.StatusCode == http.StatusOK:
		body, err := io.ReadAll(io.LimitReader(resp.Body, s.opts.MaxBytes+1))
		if err != nil {
			return s.stale(name, cached, fmt.Errorf("reading policy %s from core-api: %w", name, err))
		}
		if int64(len(body)) > s.opts.MaxBytes {
			return app.Policy{}, fmt.Errorf("policy %s from core-api is larger than %d bytes", name, s.opts.MaxBytes)
		}
		etag := resp.Header.Get("ETag")
		p := app.Policy{Name: name, Source: string(body), Version: versionOf(etag, body)}
		s.remember(name, &entry{policy: p, etag: etag, fetched: time.Now()})
		return p, nil
	case resp.StatusCode == http.StatusNotFound:
		s.mu.Lock()
		delete(s.cache, name)
		s.mu.Unlock()
		return app.Policy{}, fmt.Errorf("%w: core-api has no policy %s", app.ErrNoPolicy, name)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return app.Policy{}, fmt.Errorf("core-api refused the token (%s) reading policy %s: check --core-api-token", resp.Status, name)
	case resp.StatusCode >= 500:
		return s.stale(name, cached, fmt.Errorf("core-api answered %s for policy %s", resp.Status, name))
	}
	return app.Policy{}, fmt.Errorf("core-api answered %s for policy %s", resp.Status, name)
}

// stale serves the cached copy while core-api fails, if it is young enough.
func (s *Store) stale(name string, cached *entry, err error) (app.Policy, error) {
	if cached != nil && s.opts.StaleFor > 0 {
		s.mu.Lock()
		age := time.Since(cached.fetched)
		s.mu.Unlock()
		if age < s.opts.StaleFor {
			s.opts.Logger.Warn("core-api failing; serving the cached policy", "policy", name, "age", age.Round(time.Second).String(), "err", err)
			return cached.policy, nil
		}
	}
	return app.Policy{}, err
}

func (s *Store) remember(name string, e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.cache[name]; !ok && len(s.cache) >= maxCached {
		var oldest string
		var at time.Time
		for n, c := range s.cache {
			if oldest == "" || c.fetched.Before(at) {
				oldest, at = n, c.fetched
			}
		}
		delete(s.cache, oldest)
	}
	s.cache[name] = e
}

// versionOf is the ETag without quotes or W/, else a hash of the script.
func versionOf(etag string, body []byte) string {
	v := strings.Trim(strings.TrimPrefix(etag, "W/"), `"`)
	if v != "" && len(v) <= 128 {
		return v
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:6])
}
