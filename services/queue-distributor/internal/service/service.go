// Package service wires the queue-distributor: NATS (the event log, the
// gateway, queuectl), Redis (the projection), the followers that keep
// the projection current, the CALLS consumer, timers and the admin API.
package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/switchyard-voice/switchyard/pkg/admin"
	"github.com/switchyard-voice/switchyard/pkg/bus"
	"github.com/switchyard-voice/switchyard/pkg/config"
	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/pkg/retry"

	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/adapters/gateway"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/adapters/push"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/distributor"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/eventlog"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/metrics"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/ports/adminhttp"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/ports/queuectl"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/ports/wallboard"
	"github.com/switchyard-voice/switchyard/services/queue-distributor/internal/projection"
)

// Config is every setting of the queue-distributor.
type Config struct {
	NATSURL     string
	RedisURL    string
	Prefix      string
	AdminAddr   string
	AdminToken  string
	Instance    string
	Workers     int
	StatsWindow time.Duration
	// CountAuditEvery is how often the per-queue agent counts are
	// recounted from the agents (0: never).
	CountAuditEvery time.Duration
	ShutdownGrace   time.Duration
	LogLevel        string
}

// Flags declares the settings.
func (c *Config) Flags(s *config.Set) {
	s.String(&c.NATSURL, "nats-url", "SWITCHYARD_NATS_URL", "nats://127.0.0.1:4222", "NATS server")
	s.String(&c.RedisURL, "redis-url", "SWITCHYARD_REDIS_URL", "redis://127.0.0.1:6379/0", "Redis holding the queue and agent projection (one server, not a cluster)")
	s.String(&c.Prefix, "redis-prefix", "SWITCHYARD_QD_REDIS_PREFIX", "sy:qd:", "prefix of every Redis key of the projection")
	s.String(&c.AdminAddr, "admin-addr", "SWITCHYARD_QD_ADMIN_ADDR", "127.0.0.1:9103", "admin HTTP listen address")
	s.Secret(&c.AdminToken, "admin-token", "SWITCHYARD_ADMIN_TOKEN", "", "bearer token for /v1/ (required)")
	s.String(&c.Instance, "instance", "SWITCHYARD_QD_INSTANCE", config.DefaultInstance("qd"), "this instance's name, unique among running distributors (offers are owned by it)")
	s.Int(&c.Workers, "workers", "SWITCHYARD_QD_WORKERS", 4, "goroutines deciding offers")
	s.Duration(&c.StatsWindow, "stats-window", "SWITCHYARD_QD_STATS_WINDOW", 15*time.Minute, "window of the live stats (service level, abandon rate, …): 1s to 24h")
	s.Duration(&c.CountAuditEvery, "count-audit-every", "SWITCHYARD_QD_COUNT_AUDIT_EVERY", 10*time.Minute, "how often each queue's agent counts are checked against its agents (and repaired); 0: never")
	s.Duration(&c.ShutdownGrace, "shutdown-grace", "SWITCHYARD_QD_SHUTDOWN_GRACE", 30*time.Second, "on SIGTERM, how long running offers may finish")
	s.String(&c.LogLevel, "log-level", "SWITCHYARD_LOG_LEVEL", "info", "debug, info, warn or error")
}

// Service is a running queue-distributor.
type Service struct {
	cfg   Config
	log   *slog.Logger
	nc    *nats.Conn
	js    jetstream.JetStream
	rdb   *redis.Client
	store *projection.Store
	elog  *eventlog.Log
	d     *distributor.Distributor
	m     *metrics.Metrics
	web   *admin.Listener
	ready atomic.Bool

	// Following QUEUES and AGENTS into the projection (projection_guard.go).
	followMu     sync.Mutex
	followStops  []func()
	lostC        chan struct{} // the projection was found lost
	rebuilds     prometheus.Counter
	countRepairs prometheus.Counter // count_audit.go
}

// New builds the service and binds its admin listener.
func New(cfg Config, log *slog.Logger) (*Service, error) {
	if cfg.AdminToken == "" {
		return nil, errors.New("no admin token: set SWITCHYARD_ADMIN_TOKEN (or --admin-token)")
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("--redis-url %q: %w", cfg.RedisURL, err)
	}
	if cfg.CountAuditEvery < 0 {
		return nil, fmt.Errorf("--count-audit-every %v: want 0 (never) or more", cfg.CountAuditEvery)
	}
	if cfg.StatsWindow < time.Second || cfg.StatsWindow > projection.HistoryKept {
		return nil, fmt.Errorf("--stats-window %v: want 1s to %v (the finished calls the projection keeps)", cfg.StatsWindow, projection.HistoryKept)
	}
	s := &Service{cfg: cfg, log: log, rdb: redis.NewClient(opt), m: metrics.New(), lostC: make(chan struct{}, 1)}
	s.rebuilds = prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_qd_projection_rebuilds_total",
		Help: "Rebuilds of the projection this instance ran because Redis had lost it (or was empty at start)."})
	s.m.Registry.MustRegister(s.rebuilds)
	s.countRepairs = prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_qd_agent_count_repairs_total",
		Help: "Queues whose agent counts the audit (--count-audit-every) found wrong and rebuilt from their agents; should stay 0."})
	s.m.Registry.MustRegister(s.countRepairs)
	s.store = projection.New(s.rdb, cfg.Prefix, projection.Limits{})
	if s.nc, err = bus.Connect(cfg.NATSURL, "queue-distributor/"+cfg.Instance, nil); err != nil {
		return nil, err
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		return nil, err
	}
	s.elog = eventlog.New(s.js, "switchyard/queue-distributor/"+cfg.Instance)
	s.d = distributor.New(distributor.Config{
		Instance: cfg.Instance, Log: s.elog, Store: s.store, Gateway: gateway.New(s.nc),
		Notify: &queuectl.Notifier{NC: s.nc, Store: s.store, Log: log}, Logger: log, StatsWindow: cfg.StatsWindow,
		Push:    &push.JetStream{JS: s.js, Instance: cfg.Instance},
		Offered: func(trigger time.Time) { s.m.OfferLatency.Observe(time.Since(trigger).Seconds()) },
		Lost:    s.lost,
	})
	s.d.Pause() // until the projection holds the streams (Run)
	adm := admin.New(admin.Options{Registry: s.m.Registry, Token: cfg.AdminToken, Logger: log, Ready: []admin.Check{
		{Name: "nats", Check: func(context.Context) error {
			if !s.nc.IsConnected() || !s.ready.Load() {
				return fmt.Errorf("not following QUEUES/AGENTS from %s yet", cfg.NATSURL)
			}
			return nil
		}},
		{Name: "redis", Check: func(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }},
		{Name: "projection", Check: func(context.Context) error {
			if s.d.Paused() {
				return errors.New("offers paused: the projection is being rebuilt from the event log or catching up with it")
			}
			return nil
		}},
	}})
	adminhttp.Register(adm, adminhttp.Deps{D: s.d, Store: s.store, Window: cfg.StatsWindow})
	// Wallboards poll each second; they share a snapshot up to half a
	// second old, so one more open wallboard costs Redis nothing.
	const wallboardFresh = 500 * time.Millisecond
	adm.Handle("GET /v1/stats/stream", wallboard.Stream(adminhttp.StatsJSON(s.store, cfg.StatsWindow, wallboardFresh), time.Second))
	// The wallboard page is public (it holds no data; it reads the token
	// from its URL fragment); everything else is the admin API.
	mux := http.NewServeMux()
	mux.Handle("GET /wallboard", wallboard.Page())
	mux.Handle("/", adm.Handler())
	if s.web, err = admin.Listen(cfg.AdminAddr, mux); err != nil {
		s.nc.Close()
		return nil, err
	}
	return s, nil
}

// AdminAddr is the admin HTTP address.
func (s *Service) AdminAddr() string { return s.web.Addr() }

// Run serves until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	go s.web.Serve()
	defer s.web.Close()
	defer s.rdb.Close()
	defer s.nc.Drain()
	var stops []func()
	defer func() {
		for _, f := range stops {
			f()
		}
		s.unfollow()
	}()
	if retry.Every(ctx, time.Second, s.log, "start", func() (err error) { stops, err = s.start(ctx); return err }) != nil {
		return nil
	}
	var wg sync.WaitGroup
	wg.Add(5)
	go func() { defer wg.Done(); s.d.Run(ctx, s.cfg.Workers) }()
	go func() { defer wg.Done(); s.d.Timers(ctx) }()
	go func() { defer wg.Done(); s.d.Waiting(ctx) }()
	go func() { defer wg.Done(); s.guard(ctx) }()
	go func() { defer wg.Done(); s.auditCounts(ctx) }()
	if err := s.catchUp(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("cannot tell whether the projection caught up", "err", err)
	}
	// Resuming looks at every queue once: members may have waited while
	// no distributor ran.
	s.d.Resume(ctx)
	s.ready.Store(true)
	s.log.Info("queue-distributor ready", "admin", s.AdminAddr(), "instance", s.cfg.Instance)
	<-ctx.Done()
	wg.Wait()
	done := make(chan struct{})
	go func() { s.d.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.ShutdownGrace):
		s.log.Warn("offers still running at the end of the grace period")
	}
	return nil
}

// start ensures the streams, follows them into the projection and
// subscribes to calls and queuectl.
func (s *Service) start(ctx context.Context) ([]func(), error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.rdb.Ping(cctx).Err(); err != nil {
		return nil, fmt.Errorf("redis at %s: %w", s.cfg.RedisURL, err)
	}
	if err := bus.EnsureStreams(cctx, s.js, "QUEUES", "AGENTS", "CALLS", "PUSH"); err != nil {
		return nil, err
	}
	var stops []func()
	fail := func(err error) ([]func(), error) {
		for _, f := range stops {
			f()
		}
		return nil, err
	}
	// Rebuilds announced by others pause this instance until they end.
	notice, err := s.nc.Subscribe(RebuildNotice, func(m *nats.Msg) {
		var n Notice
		if json.Unmarshal(m.Data, &n) != nil || n.Prefix != s.cfg.Prefix || n.By == s.cfg.Instance {
			return
		}
		s.log.Warn("another process is rebuilding the projection; offers pause", "by", n.By)
		s.pauseAndRestore()
	})
	if err != nil {
		return fail(fmt.Errorf("subscribe %s: %w", RebuildNotice, err))
	}
	stops = append(stops, func() { _ = notice.Unsubscribe() })
	if err := s.restore(ctx, true); err != nil {
		return fail(err)
	}
	qc := &queuectl.Server{D: s.d, Store: s.store, NC: s.nc, Log: s.log}
	stop, err := qc.Start()
	if err != nil {
		return fail(err)
	}
	stops = append(stops, stop)
	cons, err := s.js.CreateOrUpdateConsumer(cctx, "CALLS", jetstream.ConsumerConfig{
		Durable: "queue-distributor", FilterSubjects: []string{"calls.*.hangup", "calls.*.dtmf", "calls.*.unbridged"},
		AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverNewPolicy, MaxAckPending: 10000, AckWait: callAckWait,
	})
	if err != nil {
		return fail(fmt.Errorf("consumer on CALLS: %w", err))
	}
	cc, err := cons.Consume(s.handleCallMsg)
	if err != nil {
		return fail(fmt.Errorf("consume CALLS: %w", err))
	}
	stops = append(stops, cc.Stop)
	return stops, nil
}

// callAckWait is how long a CALLS event handed to an instance waits for
// its ack before another instance gets it: the events an instance killed
// had taken (a caller's hang-up, an agent's) reach a live one within it.
// A handler that takes longer says it is still at work.
const callAckWait = 5 * time.Second

func (s *Service) handleCallMsg(m jetstream.Msg) {
	working := make(chan struct{})
	defer close(working)
	go func() {
		t := time.NewTicker(callAckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-working:
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	}()
	env, err := events.Parse(m.Data())
	if err != nil {
		s.log.Warn("unreadable CALLS event skipped", "subject", m.Subject(), "err", err)
		_ = m.Term()
		return
	}
	var data struct {
		CallID   string `json:"call_id"`
		Digit    string `json:"digit"`
		OtherLeg string `json:"other_leg"`
	}
	_ = json.Unmarshal(env.Data, &data)
	if data.CallID == "" {
		data.CallID = env.CallID
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	redelivered := false
	if md, err := m.Metadata(); err == nil {
		redelivered = md.NumDelivered > 1
	}
	if err := s.d.HandleCall(ctx, distributor.CallEvent{Type: env.Type, CallID: data.CallID, Digit: data.Digit, OtherLeg: data.OtherLeg, Redelivered: redelivered}); err != nil {
		s.log.Warn("call event not handled; will be redelivered", "callid", data.CallID, "type", env.Type, "err", err)
		_ = m.NakWithDelay(time.Second)
		return
	}
	_ = m.Ack()
}
