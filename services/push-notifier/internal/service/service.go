// Package service wires the push-notifier: NATS (the PUSH stream, its
// durable consumer, the events it publishes), Redis (device registry,
// idempotency record, rate limit), the APNs and FCM providers and the
// admin API.
package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/switchyard-voice/switchyard/pkg/admin"
	"github.com/switchyard-voice/switchyard/pkg/bus"
	"github.com/switchyard-voice/switchyard/pkg/config"
	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/pkg/retry"

	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/adapters/apns"
	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/adapters/fcm"
	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/adapters/intake"
	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/adapters/ledger"
	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/adapters/ratelimit"
	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/adapters/registry"
	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/app"
	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/domain"
	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/metrics"
	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/ports/adminhttp"
	"github.com/switchyard-voice/switchyard/services/push-notifier/internal/ports/consumer"
)

// Config is every setting of the push-notifier.
type Config struct {
	NATSURL        string
	RedisURL       string
	Prefix         string
	AdminAddr      string
	AdminToken     string
	Instance       string
	Workers        int
	ShutdownGrace  time.Duration
	LogLevel       string
	APNs           apns.Config
	FCM            fcm.Config
	AttemptTimeout time.Duration
	MaxRetryWindow time.Duration
	VoIPTTL        time.Duration
	AlertTTL       time.Duration
	RateLimit      int
	RateWindow     time.Duration
	MaxDevices     int
	MaxDeliver     int

	// stepByStep leaves the intake out: every request reads its record
	// and devices, then claims (the benchmark's comparison).
	stepByStep bool
	// ackWait replaces the consumer's 30 s ack wait (tests of the
	// keep-alive).
	ackWait time.Duration
}

// Flags declares the settings.
func (c *Config) Flags(s *config.Set) {
	s.String(&c.NATSURL, "nats-url", "SWITCHYARD_NATS_URL", "nats://127.0.0.1:4222", "NATS server")
	s.String(&c.RedisURL, "redis-url", "SWITCHYARD_REDIS_URL", "redis://127.0.0.1:6379/0", "Redis holding devices, the idempotency record and rate limits (one server, not a cluster)")
	s.String(&c.Prefix, "redis-prefix", "SWITCHYARD_PUSH_REDIS_PREFIX", "sy:push:", "prefix of every Redis key of the push-notifier")
	s.String(&c.AdminAddr, "admin-addr", "SWITCHYARD_PUSH_ADMIN_ADDR", "127.0.0.1:9105", "admin HTTP listen address")
	s.Secret(&c.AdminToken, "admin-token", "SWITCHYARD_ADMIN_TOKEN", "", "bearer token for /v1/ (required)")
	s.String(&c.Instance, "instance", "SWITCHYARD_PUSH_INSTANCE", config.DefaultInstance("push"), "this instance's name (events' source, claims' owner)")
	s.Int(&c.Workers, "workers", "SWITCHYARD_PUSH_WORKERS", 64, "push requests handled at once")
	s.Duration(&c.ShutdownGrace, "shutdown-grace", "SWITCHYARD_PUSH_SHUTDOWN_GRACE", 10*time.Second, "on SIGTERM, how long pushes in hand may finish")
	s.String(&c.LogLevel, "log-level", "SWITCHYARD_LOG_LEVEL", "info", "debug, info, warn or error")

	s.String(&c.APNs.KeyFile, "apns-key-file", "SWITCHYARD_PUSH_APNS_KEY_FILE", "", "APNs token authentication: the .p8 signing key")
	s.String(&c.APNs.KeyID, "apns-key-id", "SWITCHYARD_PUSH_APNS_KEY_ID", "", "APNs token authentication: the key's id (kid)")
	s.String(&c.APNs.TeamID, "apns-team-id", "SWITCHYARD_PUSH_APNS_TEAM_ID", "", "APNs token authentication: the Apple developer team id (iss)")
	s.String(&c.APNs.CertFile, "apns-cert-file", "SWITCHYARD_PUSH_APNS_CERT_FILE", "", "APNs certificate authentication: .p12 or .pem (certificate and key)")
	s.Secret(&c.APNs.CertPassword, "apns-cert-password", "SWITCHYARD_PUSH_APNS_CERT_PASSWORD", "", "password of --apns-cert-file")
	s.String(&c.APNs.ProductionURL, "apns-production-url", "SWITCHYARD_PUSH_APNS_PRODUCTION_URL", "https://api.push.apple.com", "APNs host for production devices")
	s.String(&c.APNs.SandboxURL, "apns-sandbox-url", "SWITCHYARD_PUSH_APNS_SANDBOX_URL", "https://api.sandbox.push.apple.com", "APNs host for sandbox (development) devices")
	s.String(&c.APNs.CAFile, "apns-ca-file", "SWITCHYARD_PUSH_APNS_CA_FILE", "", "extra CA certificates (PEM) to trust for APNs (a proxy, a test double)")
	s.String(&c.FCM.CredentialsFile, "fcm-credentials-file", "SWITCHYARD_PUSH_FCM_CREDENTIALS_FILE", "", "FCM: the service-account JSON key")
	s.String(&c.FCM.Project, "fcm-project", "SWITCHYARD_PUSH_FCM_PROJECT", "", "FCM project id (default: the key's project_id)")
	s.String(&c.FCM.URL, "fcm-url", "SWITCHYARD_PUSH_FCM_URL", "https://fcm.googleapis.com", "FCM HTTP v1 base URL")
	s.String(&c.FCM.CAFile, "fcm-ca-file", "SWITCHYARD_PUSH_FCM_CA_FILE", "", "extra CA certificates (PEM) to trust for FCM and its token endpoint")

	s.Duration(&c.AttemptTimeout, "attempt-timeout", "SWITCHYARD_PUSH_ATTEMPT_TIMEOUT", 5*time.Second, "one send to APNs/FCM; no answer in time means in doubt (not retried)")
	s.Duration(&c.MaxRetryWindow, "max-retry-window", "SWITCHYARD_PUSH_MAX_RETRY_WINDOW", 2*time.Minute, "retries of 429/5xx stop at the push's expiry or after this long")
	s.Duration(&c.VoIPTTL, "voip-ttl", "SWITCHYARD_PUSH_VOIP_TTL", 30*time.Second, "expiry of a voip push that gives none")
	s.Duration(&c.AlertTTL, "alert-ttl", "SWITCHYARD_PUSH_ALERT_TTL", time.Hour, "expiry of an alert push that gives none")
	s.Int(&c.RateLimit, "rate-limit", "SWITCHYARD_PUSH_RATE_LIMIT", 60, "push requests per user per --rate-window (0: no limit)")
	s.Duration(&c.RateWindow, "rate-window", "SWITCHYARD_PUSH_RATE_WINDOW", time.Minute, "the rate limit's sliding window")
	s.Int(&c.MaxDevices, "max-devices", "SWITCHYARD_PUSH_MAX_DEVICES", 16, "devices one user may register")
	s.Int(&c.MaxDeliver, "max-deliver", "SWITCHYARD_PUSH_MAX_DELIVER", 10, "deliveries of one request before it is dead-lettered")
}

// Service is a running push-notifier.
type Service struct {
	cfg   Config
	log   *slog.Logger
	nc    *nats.Conn
	js    jetstream.JetStream
	rdb   *redis.Client
	n     *app.Notifier
	m     *metrics.Metrics
	apns  *apns.Provider
	fcm   *fcm.Provider
	web   *admin.Listener
	ready atomic.Bool
}

// New builds the service and binds its admin listener.
func New(cfg Config, log *slog.Logger) (*Service, error) {
	if cfg.AdminToken == "" {
		return nil, errors.New("no admin token: set SWITCHYARD_ADMIN_TOKEN (or --admin-token)")
	}
	if cfg.Workers < 1 || cfg.Workers > 10000 {
		return nil, fmt.Errorf("--workers %d: want 1..10000", cfg.Workers)
	}
	if cfg.RateLimit < 0 || cfg.RateWindow <= 0 {
		return nil, fmt.Errorf("--rate-limit %d / --rate-window %v: want a limit ≥ 0 and a positive window", cfg.RateLimit, cfg.RateWindow)
	}
	if cfg.AttemptTimeout <= 0 || cfg.VoIPTTL <= 0 || cfg.AlertTTL <= 0 || cfg.VoIPTTL > domain.MaxTTL || cfg.AlertTTL > domain.MaxTTL {
		return nil, fmt.Errorf("--attempt-timeout, --voip-ttl and --alert-ttl must be positive (TTLs at most %v)", domain.MaxTTL)
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("--redis-url %q: %w", cfg.RedisURL, err)
	}
	s := &Service{cfg: cfg, log: log, m: metrics.New()}
	senders := map[string]app.Sender{}
	if cfg.APNs.Configured() {
		if s.apns, err = apns.New(cfg.APNs); err != nil {
			return nil, err
		}
		senders[domain.IOS] = s.apns
	} else {
		log.Warn("no APNs credentials (--apns-key-file or --apns-cert-file): pushes to iOS devices fail with no_provider")
	}
	if cfg.FCM.Configured() {
		if s.fcm, err = fcm.New(cfg.FCM); err != nil {
			return nil, err
		}
		senders[domain.Android] = s.fcm
	} else {
		log.Warn("no FCM credentials (--fcm-credentials-file): pushes to Android devices fail with no_provider")
	}
	s.rdb = redis.NewClient(opt)
	if s.nc, err = bus.Connect(cfg.NATSURL, "push-notifier/"+cfg.Instance, nil); err != nil {
		return nil, err
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		return nil, err
	}
	source := "switchyard/push-notifier/" + cfg.Instance
	pub := publisher{js: s.js}
	reg := registry.New(s.rdb, cfg.Prefix, cfg.MaxDevices)
	led := ledger.New(s.rdb, cfg.Prefix)
	s.n = app.New(app.Config{Owner: cfg.Instance + "/" + nonce(), Source: source, AttemptTimeout: cfg.AttemptTimeout, MaxRetryWindow: cfg.MaxRetryWindow},
		log, reg, led, ratelimit.New(s.rdb, cfg.Prefix, cfg.RateLimit, cfg.RateWindow), pub, senders, s.m)
	if !cfg.stepByStep {
		s.n.WithIntake(intake.New(s.rdb, cfg.Prefix, cfg.RateLimit, cfg.RateWindow))
	}
	adm := admin.New(admin.Options{Registry: s.m.Registry, Token: cfg.AdminToken, Logger: log, Ready: []admin.Check{
		{Name: "nats", Check: func(context.Context) error {
			if !s.nc.IsConnected() || !s.ready.Load() {
				return fmt.Errorf("not consuming PUSH from %s yet", cfg.NATSURL)
			}
			return nil
		}},
		{Name: "redis", Check: func(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }},
	}, MaxBodyBytes: 16 << 10})
	adminhttp.Register(adm, adminhttp.Deps{Registry: reg, Ledger: led, Pub: pub, Source: source, Defaults: s.defaults()})
	if s.web, err = admin.Listen(cfg.AdminAddr, adm.Handler()); err != nil {
		s.nc.Close()
		return nil, err
	}
	return s, nil
}

func (s *Service) defaults() domain.Defaults {
	return domain.Defaults{VoIPTTL: s.cfg.VoIPTTL, AlertTTL: s.cfg.AlertTTL}
}

// nonce tells this process's claims from those of an earlier process
// with the same instance name.
func nonce() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// AdminAddr is the admin HTTP address.
func (s *Service) AdminAddr() string { return s.web.Addr() }

// Run serves until ctx ends, then stops taking requests and lets those in
// hand finish for the shutdown grace.
func (s *Service) Run(ctx context.Context) error {
	go s.web.Serve()
	defer s.rdb.Close()
	defer s.nc.Drain()
	var c *consumer.Consumer
	if retry.Every(ctx, time.Second, s.log, "start", func() (err error) { c, err = s.start(ctx); return err }) != nil {
		return s.shutdownHTTP()
	}
	if s.fcm != nil {
		if err := s.fcm.Warm(); err != nil {
			s.log.Warn("no FCM access token yet; the first Android push will try again", "err", err)
		}
	}
	s.ready.Store(true)
	s.log.Info("push-notifier ready", "admin", s.AdminAddr(), "instance", s.cfg.Instance)
	<-ctx.Done()
	s.ready.Store(false)
	s.log.Info("shutting down: no new push requests; finishing those in hand", "grace", s.cfg.ShutdownGrace)
	c.Stop(s.cfg.ShutdownGrace)
	if s.apns != nil {
		s.apns.CloseIdleConnections()
	}
	if s.fcm != nil {
		s.fcm.CloseIdleConnections()
	}
	return s.shutdownHTTP()
}

func (s *Service) shutdownHTTP() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.web.Shutdown(ctx)
}

func (s *Service) start(ctx context.Context) (*consumer.Consumer, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.rdb.Ping(cctx).Err(); err != nil {
		return nil, fmt.Errorf("redis at %s: %w", s.cfg.RedisURL, err)
	}
	if err := bus.EnsureStreams(cctx, s.js, "PUSH"); err != nil {
		return nil, err
	}
	return consumer.Start(cctx, s.js, s.n, s.log, consumer.Config{Workers: s.cfg.Workers, AckWait: s.cfg.ackWait, MaxDeliver: s.cfg.MaxDeliver, Defaults: s.defaults()})
}

// publisher stores events on JetStream.
type publisher struct{ js jetstream.JetStream }

func (p publisher) Publish(ctx context.Context, subject string, e *events.Envelope) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := bus.Publish(ctx, p.js, subject, e)
	return err
}
