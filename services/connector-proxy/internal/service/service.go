// Package service wires the connector-proxy: NATS (connector.query and the
// connector configurations' KV bucket), the engine with its connectors, and
// the admin API.
package service

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-voice/switchyard/pkg/admin"
	"github.com/switchyard-voice/switchyard/pkg/bus"
	"github.com/switchyard-voice/switchyard/pkg/config"
	"github.com/switchyard-voice/switchyard/pkg/retry"

	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/adapters/configstore"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/adapters/upstream"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/app"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/domain"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/metrics"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/ports/adminhttp"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/ports/invalidation"
	"github.com/switchyard-voice/switchyard/services/connector-proxy/internal/ports/natsquery"
)

// Config is every setting of the connector-proxy.
type Config struct {
	NATSURL    string
	AdminAddr  string
	AdminToken string
	Instance   string
	LogLevel   string
	Bucket     string
	ConfigKey  string // base64 of 32 bytes; "": secrets stored in clear

	DefaultTimeout    time.Duration
	MaxTimeout        time.Duration
	MaxInFlightPerOrg int
	MaxPending        int
	CacheTTL          time.Duration
	StaleFor          time.Duration
	CacheMaxMB        int
	Retries           int
	RetryBackoff      time.Duration
	BreakerFailures   int
	BreakerOpen       time.Duration
	BreakerSlowCall   time.Duration
	MaxRequestBytes   int
	MaxResultBytes    int

	SalesforceAPIVersion string
	CoreAPIURL           string // for connectors' credentials_id
	CoreAPIToken         string
	ShutdownGrace        time.Duration
}

// Flags declares the settings.
func (c *Config) Flags(s *config.Set) {
	s.String(&c.NATSURL, "nats-url", "SWITCHYARD_NATS_URL", "nats://127.0.0.1:4222", "NATS server")
	s.String(&c.AdminAddr, "admin-addr", "SWITCHYARD_CP_ADMIN_ADDR", "127.0.0.1:9104", "admin HTTP listen address")
	s.Secret(&c.AdminToken, "admin-token", "SWITCHYARD_ADMIN_TOKEN", "", "bearer token for /v1/ (required)")
	s.String(&c.Instance, "instance", "SWITCHYARD_CP_INSTANCE", config.DefaultInstance("cp"), "this instance's name (logs, NATS client name)")
	s.String(&c.LogLevel, "log-level", "SWITCHYARD_LOG_LEVEL", "info", "debug (one line per request), info, warn or error")
	s.String(&c.Bucket, "kv-bucket", "SWITCHYARD_CP_KV_BUCKET", "switchyard_connectors", "JetStream KV bucket of the connector configurations")
	s.Secret(&c.ConfigKey, "config-key", "SWITCHYARD_CP_CONFIG_KEY", "", "base64 of 32 random bytes: seals connector secrets (AES-256-GCM) in the KV bucket; empty stores them in clear")
	s.Duration(&c.DefaultTimeout, "default-timeout", "SWITCHYARD_CP_DEFAULT_TIMEOUT", 2*time.Second, "deadline of a request without timeout_ms")
	s.Duration(&c.MaxTimeout, "max-timeout", "SWITCHYARD_CP_MAX_TIMEOUT", 10*time.Second, "longest deadline a request may ask for (longer ones are clipped)")
	s.Int(&c.MaxInFlightPerOrg, "max-in-flight-per-org", "SWITCHYARD_CP_MAX_IN_FLIGHT_PER_ORG", 32, "bulkhead: upstream calls in flight per org, beyond which requests are refused (bulkhead_full)")
	s.Int(&c.MaxPending, "max-pending", "SWITCHYARD_CP_MAX_PENDING", 4096, "connector.query requests in progress on this instance, beyond which they are refused (overloaded)")
	s.Duration(&c.CacheTTL, "cache-ttl", "SWITCHYARD_CP_CACHE_TTL", 30*time.Second, "how long a read's answer is served from the cache (a connector's cache_ttl_seconds overrides it; 0 disables)")
	s.Duration(&c.StaleFor, "stale-for", "SWITCHYARD_CP_STALE_FOR", 10*time.Minute, "how long past its TTL a cached answer may be served while the upstream fails (stale_for_seconds overrides; 0 disables)")
	s.Int(&c.CacheMaxMB, "cache-max-mb", "SWITCHYARD_CP_CACHE_MAX_MB", 64, "response cache budget in MiB (least recently used out first)")
	s.Int(&c.Retries, "retries", "SWITCHYARD_CP_RETRIES", 2, "retries of a read after a transient upstream failure, inside its deadline (a connector's retries overrides)")
	s.Duration(&c.RetryBackoff, "retry-backoff", "SWITCHYARD_CP_RETRY_BACKOFF", 50*time.Millisecond, "first retry backoff; it doubles (up to 1s), with jitter")
	s.Int(&c.BreakerFailures, "breaker-failures", "SWITCHYARD_CP_BREAKER_FAILURES", 5, "consecutive upstream failures that open an org's connector breaker")
	s.Duration(&c.BreakerOpen, "breaker-open", "SWITCHYARD_CP_BREAKER_OPEN", 30*time.Second, "how long an open breaker refuses calls before one probe is let through")
	s.Duration(&c.BreakerSlowCall, "breaker-slow-call", "SWITCHYARD_CP_BREAKER_SLOW_CALL", 250*time.Millisecond, "a timed-out call counts against the breaker only if it had at least this long")
	s.Int(&c.MaxRequestBytes, "max-request-bytes", "SWITCHYARD_CP_MAX_REQUEST_BYTES", 64<<10, "largest request body")
	s.Int(&c.MaxResultBytes, "max-result-bytes", "SWITCHYARD_CP_MAX_RESULT_BYTES", 1<<20, "largest upstream answer read (and so result returned)")
	s.String(&c.SalesforceAPIVersion, "salesforce-api-version", "SWITCHYARD_CP_SALESFORCE_API_VERSION", "62.0", "Salesforce REST API version of connectors that do not set api_version")
	s.String(&c.CoreAPIURL, "core-api-url", "SWITCHYARD_CP_CORE_API_URL", "", "core-api base URL (e.g. https://core-api.internal/v1) where Salesforce connectors with a credentials_id read their credentials")
	s.Secret(&c.CoreAPIToken, "core-api-token", "SWITCHYARD_CP_CORE_API_TOKEN", "", "bearer token for core-api")
	s.Duration(&c.ShutdownGrace, "shutdown-grace", "SWITCHYARD_CP_SHUTDOWN_GRACE", 10*time.Second, "on SIGTERM, how long requests in progress may finish")
}

func (c *Config) check() ([]byte, error) {
	var errs []error
	if c.AdminToken == "" {
		errs = append(errs, errors.New("no admin token: set SWITCHYARD_ADMIN_TOKEN (or --admin-token)"))
	}
	var key []byte
	if c.ConfigKey != "" {
		k, err := base64.StdEncoding.DecodeString(c.ConfigKey)
		if err != nil || len(k) != 32 {
			errs = append(errs, errors.New("--config-key: want base64 of 32 bytes (openssl rand -base64 32)"))
		}
		key = k
	}
	if c.CoreAPIURL != "" {
		if u, err := url.Parse(c.CoreAPIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--core-api-url %q: want http(s)://host[:port][/path]", c.CoreAPIURL))
		}
	}
	if c.DefaultTimeout <= 0 || c.MaxTimeout < c.DefaultTimeout {
		errs = append(errs, errors.New("--default-timeout must be positive and at most --max-timeout"))
	}
	for _, x := range []struct {
		name string
		v    int
	}{{"--max-in-flight-per-org", c.MaxInFlightPerOrg}, {"--max-pending", c.MaxPending}, {"--cache-max-mb", c.CacheMaxMB},
		{"--breaker-failures", c.BreakerFailures}, {"--max-request-bytes", c.MaxRequestBytes}, {"--max-result-bytes", c.MaxResultBytes}} {
		if x.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", x.name))
		}
	}
	if c.Retries < 0 || c.Retries > 5 {
		errs = append(errs, errors.New("--retries: want 0-5"))
	}
	return key, errors.Join(errs...)
}

// Service is a running connector-proxy.
type Service struct {
	cfg     Config
	log     *slog.Logger
	key     []byte
	m       *metrics.Metrics
	engine  *app.Engine
	factory *factory
	nc      *nats.Conn
	js      jetstream.JetStream
	nq      *natsquery.Server
	inv     *invalidation.Bus
	web     *admin.Listener

	storeMu sync.RWMutex
	store   *configstore.Store
	ready   atomic.Bool
}

// New checks the settings, connects to NATS (retrying in the background)
// and binds the admin listener.
func New(cfg Config, log *slog.Logger) (*Service, error) {
	key, err := cfg.check()
	if err != nil {
		return nil, err
	}
	m := metrics.New()
	s := &Service{cfg: cfg, log: log, key: key, m: m}
	s.engine = app.New(app.Options{
		DefaultTimeout: cfg.DefaultTimeout, MaxTimeout: cfg.MaxTimeout, MaxInFlightPerOrg: cfg.MaxInFlightPerOrg,
		BreakerFailures: cfg.BreakerFailures, BreakerOpenFor: cfg.BreakerOpen, BreakerSlowCall: cfg.BreakerSlowCall,
		RetryBackoff: cfg.RetryBackoff, CacheMaxBytes: int64(cfg.CacheMaxMB) << 20, Metrics: m, Logger: log,
		OnWrite: func(org, connector, object string) { s.inv.Publish(org, connector, object) },
	})
	s.factory = &factory{cfg: cfg, client: upstream.NewClient(), m: m}
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchyard_cp_connectors", Help: "Connectors installed on this instance."},
			func() float64 { return float64(s.engine.Connectors()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchyard_cp_cache_entries", Help: "Answers in the response cache."},
			func() float64 { n, _ := s.engine.CacheStats(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchyard_cp_cache_bytes", Help: "Bytes used by the response cache."},
			func() float64 { _, b := s.engine.CacheStats(); return float64(b) }),
	)
	if s.nc, err = bus.Connect(cfg.NATSURL, "connector-proxy/"+cfg.Instance, func(connected bool, err error) {
		if !connected {
			log.Warn("NATS connection lost; reconnecting", "err", err)
		}
	}); err != nil {
		return nil, err
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		s.nc.Close()
		return nil, err
	}
	s.inv = invalidation.New(s.nc, s.engine, log)
	s.nq = &natsquery.Server{NC: s.nc, Engine: s.engine, Log: log, Metrics: m, MaxRequestBytes: cfg.MaxRequestBytes, MaxPending: cfg.MaxPending}
	adm := admin.New(admin.Options{Registry: m.Registry, Token: cfg.AdminToken, Logger: log, MaxBodyBytes: int64(max(cfg.MaxRequestBytes, 1<<20)),
		Ready: []admin.Check{{Name: "nats", Check: func(context.Context) error {
			if !s.nc.IsConnected() {
				return fmt.Errorf("not connected to %s", cfg.NATSURL)
			}
			if !s.ready.Load() {
				return errors.New("connector configurations not loaded yet")
			}
			return nil
		}}},
		ReadyDetail: func(context.Context) any { return map[string]int{"connectors": s.engine.Connectors()} },
	})
	adminhttp.Register(adm, adminhttp.Deps{
		Engine: s.engine, Store: s.currentStore, MaxRequestBytes: cfg.MaxRequestBytes,
		Check:  func(c domain.Connector) error { _, _, err := s.factory.build(c); return err },
		Apply:  s.apply,
		Remove: func(org, name string) { s.engine.Delete(org, name, 0) },
	})
	if s.web, err = admin.Listen(cfg.AdminAddr, adm.Handler()); err != nil {
		s.nc.Close()
		return nil, err
	}
	return s, nil
}

func (s *Service) currentStore() *configstore.Store {
	s.storeMu.RLock()
	defer s.storeMu.RUnlock()
	return s.store
}

// AdminAddr is the admin HTTP address.
func (s *Service) AdminAddr() string { return s.web.Addr() }

// apply installs a configuration read from the store.
func (s *Service) apply(c domain.Connector, revision uint64) {
	conn, p, err := s.factory.build(c)
	if err != nil {
		s.log.Error("connector configuration not usable; the previous one (if any) stays", "connector", c, "revision", revision, "err", err)
		return
	}
	if s.engine.Put(c, conn, p, revision) {
		s.log.Info("connector installed", "connector", c, "revision", revision)
	}
}

// watched applies one change from the config store's watch.
func (s *Service) watched(ch configstore.Change) {
	switch {
	case ch.Deleted:
		s.engine.Delete(ch.Org, ch.Name, ch.Revision)
		s.log.Info("connector removed", "org", ch.Org, "name", ch.Name, "revision", ch.Revision)
	case ch.Err != nil:
		s.log.Error("connector configuration unreadable; the previous one (if any) stays", "org", ch.Org, "name", ch.Name, "revision", ch.Revision, "err", ch.Err)
	default:
		s.apply(ch.Connector, ch.Revision)
	}
}

// Run serves until ctx ends, then shuts down gracefully: no new requests
// are taken, those in progress are answered (for up to --shutdown-grace),
// the admin server and the NATS connection are closed.
func (s *Service) Run(ctx context.Context) error {
	go s.web.Serve()
	wctx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	var loaded <-chan struct{}
	if retry.Every(ctx, time.Second, s.log, "start", func() (err error) { loaded, err = s.start(ctx, wctx); return err }) != nil {
		return s.shutdown()
	}
	select {
	case <-loaded:
	case <-ctx.Done():
		return s.shutdown()
	}
	// Other instances' writes are heard before requests are taken.
	if retry.Every(ctx, time.Second, s.log, "subscribe", s.inv.Start, "subject", invalidation.Subject) != nil {
		return s.shutdown()
	}
	// Requests are taken once every configuration is installed, so that
	// none is refused as unknown_connector during a start.
	if retry.Every(ctx, time.Second, s.log, "subscribe", s.nq.Start, "subject", natsquery.Subject) != nil {
		return s.shutdown()
	}
	s.ready.Store(true)
	s.log.Info("connector-proxy ready", "admin", s.AdminAddr(), "connectors", s.engine.Connectors(), "subject", natsquery.Subject, "kv_bucket", s.cfg.Bucket)
	<-ctx.Done()
	return s.shutdown()
}

// start opens the config store and watches it.
func (s *Service) start(ctx, watchCtx context.Context) (<-chan struct{}, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	store, err := configstore.Open(cctx, s.js, s.cfg.Bucket, s.key)
	if err != nil {
		return nil, err
	}
	loaded, err := store.Watch(watchCtx, s.watched)
	if err != nil {
		return nil, err
	}
	s.storeMu.Lock()
	s.store = store
	s.storeMu.Unlock()
	return loaded, nil
}

func (s *Service) shutdown() error {
	s.ready.Store(false)
	s.log.Info("shutting down: answering the requests in progress", "grace", s.cfg.ShutdownGrace.String())
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	defer cancel()
	if err := s.nq.Stop(ctx); err != nil {
		s.log.Warn("shutdown", "err", err)
	}
	s.inv.Stop()
	_ = s.web.Shutdown(ctx) // closes what is left when the grace ends
	if err := s.nc.Drain(); err != nil {
		s.nc.Close()
	}
	s.log.Info("connector-proxy stopped")
	return nil
}
