// Package service wires the policy-runner: NATS, the call.started consumer
// shared by every instance, the runner, the admin endpoints.
package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-voice/switchyard/pkg/admin"
	"github.com/switchyard-voice/switchyard/pkg/bus"
	"github.com/switchyard-voice/switchyard/pkg/config"
	"github.com/switchyard-voice/switchyard/pkg/events"
	"github.com/switchyard-voice/switchyard/pkg/retry"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/adapters/callctl"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/adapters/connector"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/adapters/coreapi"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/adapters/policystore"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/adapters/push"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/adapters/queuectl"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/adapters/schedulefile"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/adapters/tenantstate"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/app"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/metrics"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/ports/adminhttp"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/sandbox"
)

// Config is every setting of the policy-runner.
type Config struct {
	NATSURL          string
	PolicyDir        string
	PolicyStore      string
	CoreAPIURL       string
	CoreAPIToken     string
	CoreAPIMaxAge    time.Duration
	LibDir           string
	DefaultPolicy    string
	Routes           []string
	FallbackTransfer string
	FallbackCause    string
	AdminAddr        string
	AdminToken       string
	Instance         string
	CommandTimeout   time.Duration
	APITimeout       time.Duration
	Schedules        string
	StateTTL         time.Duration
	StateMaxBytes    int
	MaxTapeBytes     int
	ShutdownGrace    time.Duration
	LogLevel         string
}

// Flags declares the settings.
func (c *Config) Flags(s *config.Set) {
	s.String(&c.NATSURL, "nats-url", "SWITCHYARD_NATS_URL", "nats://127.0.0.1:4222", "NATS server")
	s.String(&c.PolicyDir, "policies", "SWITCHYARD_PR_POLICIES", "lua/policies", "directory of policies (<name>.lua): the store itself with --policy-store=dir, the seed of a new KV bucket with kv")
	s.String(&c.PolicyStore, "policy-store", "SWITCHYARD_PR_POLICY_STORE", "kv", "kv (NATS KV, versioned), dir (files, read-only) or coreapi (GET <core-api-url>/policies/<name>/script, ETag-cached)")
	s.String(&c.CoreAPIURL, "core-api-url", "SWITCHYARD_PR_CORE_API_URL", "", "core-api base URL for --policy-store=coreapi, e.g. https://core-api.internal/v1")
	s.Secret(&c.CoreAPIToken, "core-api-token", "SWITCHYARD_PR_CORE_API_TOKEN", "", "bearer token for core-api")
	s.Duration(&c.CoreAPIMaxAge, "core-api-max-age", "SWITCHYARD_PR_CORE_API_MAX_AGE", 5*time.Second, "how long a policy from core-api is used before it is revalidated (If-None-Match)")
	s.String(&c.LibDir, "lib", "SWITCHYARD_PR_LIB", "lua/lib", "directory require() loads modules from")
	s.String(&c.DefaultPolicy, "default-policy", "SWITCHYARD_PR_DEFAULT_POLICY", "default", "policy for calls no route names")
	s.List(&c.Routes, "routes", "SWITCHYARD_PR_ROUTES", "", "destination=policy pairs that seed the route table on first start (then: admin REST /v1/routes); a destination ending in * is a prefix, one starting with ~ a regular expression")
	s.String(&c.FallbackTransfer, "fallback-transfer", "SWITCHYARD_PR_FALLBACK_TRANSFER", "operator", "extension a failed policy's caller is sent to (empty: hang up)")
	s.String(&c.FallbackCause, "fallback-cause", "SWITCHYARD_PR_FALLBACK_CAUSE", "NORMAL_TEMPORARY_FAILURE", "hang-up cause when there is no fallback extension")
	s.String(&c.AdminAddr, "admin-addr", "SWITCHYARD_PR_ADMIN_ADDR", "127.0.0.1:9102", "admin HTTP listen address")
	s.Secret(&c.AdminToken, "admin-token", "SWITCHYARD_ADMIN_TOKEN", "", "bearer token for /v1/ (required)")
	s.String(&c.Instance, "instance", "SWITCHYARD_PR_INSTANCE", "policy-runner", "this instance's name in events")
	s.Duration(&c.CommandTimeout, "command-timeout", "SWITCHYARD_PR_COMMAND_TIMEOUT", 10*time.Minute, "longest wait for one call-control command (a playback, a bridge)")
	s.Duration(&c.APITimeout, "api-timeout", "SWITCHYARD_PR_API_TIMEOUT", 30*time.Second, "longest wait for freeswitch.API():execute on the call's node")
	s.String(&c.Schedules, "schedules", "SWITCHYARD_PR_SCHEDULES", "lua/schedules.json", "business-hours schedules for schedule.is_open (JSON; re-read when it changes; missing: schedule.is_open is not available)")
	s.Duration(&c.StateTTL, "state-ttl", "SWITCHYARD_PR_STATE_TTL", 30*24*time.Hour, "how long a policy's kv value lives after its last write")
	s.Int(&c.StateMaxBytes, "state-max-bytes", "SWITCHYARD_PR_STATE_MAX_BYTES", 256<<20, "size bound of all tenants' kv state together")
	s.Int(&c.MaxTapeBytes, "max-tape-bytes", "SWITCHYARD_PR_MAX_TAPE_BYTES", 128<<10, "inputs recorded per run for replay (carried in policy.completed)")
	s.Duration(&c.ShutdownGrace, "shutdown-grace", "SWITCHYARD_PR_SHUTDOWN_GRACE", 30*time.Second, "on SIGTERM, how long running policies may finish")
	s.String(&c.LogLevel, "log-level", "SWITCHYARD_LOG_LEVEL", "info", "debug, info, warn or error")
}

func (c *Config) routes() ([]app.Route, error) {
	out := []app.Route{}
	for _, r := range c.Routes {
		dest, policy, ok := strings.Cut(r, "=")
		if !ok || dest == "" || policy == "" {
			return nil, fmt.Errorf("--routes entry %q: want destination=policy", r)
		}
		out = append(out, app.Route{Pattern: dest, Policy: policy})
	}
	if err := app.ValidateRoutes(out); err != nil {
		return nil, fmt.Errorf("--routes: %w", err)
	}
	return out, nil
}

// Service is a running policy-runner.
type Service struct {
	cfg      Config
	log      *slog.Logger
	nc       *nats.Conn
	js       jetstream.JetStream
	runner   *app.Runner
	sb       *sandbox.Sandbox
	web      *admin.Listener
	ready    atomic.Bool
	running  sync.WaitGroup
	active   atomic.Int64
	routes   []app.Route
	store    *switchStore
	kv       *policystore.KV
	rt       atomic.Pointer[policystore.Routes]
	state    atomic.Pointer[tenantstate.Store]
	sched    *schedulefile.File
	core     *coreapi.Store
	metrics  *metrics.Metrics
	seen     recentCalls
	policies atomic.Pointer[jetstream.Stream] // the POLICIES stream, for alreadyRan
}

// recentCalls remembers the calls this instance started a policy for in
// the last 10 to 20 minutes (JetStream's de-duplication window is 10): two
// generations, the older dropped whole every ten minutes, so remembering
// costs no sweep.
type recentCalls struct {
	mu        sync.Mutex
	cur, prev map[string]struct{}
	rotated   time.Time
}

// add records id and reports whether it was already there.
func (r *recentCalls) add(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); r.cur == nil || now.Sub(r.rotated) > 10*time.Minute {
		r.prev, r.cur, r.rotated = r.cur, map[string]struct{}{}, now
	}
	if _, ok := r.cur[id]; ok {
		return true
	}
	if _, ok := r.prev[id]; ok {
		return true
	}
	r.cur[id] = struct{}{}
	return false
}

// switchStore is the runner's store before and after the KV bucket opens:
// until then nothing is served (the consumer has not started).
type switchStore struct {
	mu sync.RWMutex
	s  app.Store
}

func (w *switchStore) set(s app.Store) { w.mu.Lock(); w.s = s; w.mu.Unlock() }

func (w *switchStore) Get(ctx context.Context, name string) (app.Policy, error) {
	w.mu.RLock()
	s := w.s
	w.mu.RUnlock()
	if s == nil {
		return app.Policy{}, fmt.Errorf("%w: the policy store is not open yet", app.ErrNoPolicy)
	}
	return s.Get(ctx, name)
}

// New builds the service and binds its admin listener.
func New(cfg Config, log *slog.Logger) (*Service, error) {
	if cfg.AdminToken == "" {
		return nil, errors.New("no admin token: set SWITCHYARD_ADMIN_TOKEN (or --admin-token)")
	}
	routes, err := cfg.routes()
	if err != nil {
		return nil, err
	}
	var core *coreapi.Store
	switch cfg.PolicyStore {
	case "kv", "dir":
	case "coreapi":
		if core, err = coreapi.New(coreapi.Options{BaseURL: cfg.CoreAPIURL, Token: cfg.CoreAPIToken, MaxAge: cfg.CoreAPIMaxAge, Logger: log}); err != nil {
			return nil, fmt.Errorf("--core-api-url: %w", err)
		}
	default:
		return nil, fmt.Errorf("--policy-store %q: want kv, dir or coreapi", cfg.PolicyStore)
	}
	s := &Service{cfg: cfg, log: log, sb: sandbox.New(sandbox.Limits{}), core: core}
	s.metrics = metrics.New(s.active.Load)
	if s.nc, err = bus.Connect(cfg.NATSURL, "policy-runner/"+cfg.Instance, nil); err != nil {
		return nil, err
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		return nil, err
	}
	s.routes = routes
	s.store = &switchStore{}
	if s.sched, err = schedulefile.Open(cfg.Schedules, log); err != nil {
		return nil, fmt.Errorf("--schedules: %w", err)
	}
	s.runner, err = app.New(app.Config{
		Store: s.store, Sandbox: s.sb, LibDir: cfg.LibDir, Routes: routes, Default: cfg.DefaultPolicy,
		Fallback: app.Fallback{Transfer: cfg.FallbackTransfer, Cause: cfg.FallbackCause},
		NewCall:  func(id string) luaapi.CallControl { return callctl.New(s.nc, id, cfg.CommandTimeout) },
		NodeAPI:  func(node string) luaapi.NodeAPI { return callctl.NewNodeAPI(s.nc, node, cfg.APITimeout) },
		KV: func(tenant string) luaapi.KV {
			if st := s.state.Load(); st != nil {
				return st.Tenant(tenant)
			}
			return nil
		},
		Schedules:    s.sched,
		Queue:        queuectl.New(s.nc),
		Push:         &push.JetStream{JS: s.js, Instance: cfg.Instance},
		Connector:    func(tenant string) luaapi.Connector { return connector.New(s.nc, tenant) },
		MaxTapeBytes: cfg.MaxTapeBytes,
		Finished: func(ev app.RunEvent, outcome string, d time.Duration) {
			s.metrics.Runs.WithLabelValues(ev.Policy, outcome, ev.Limit).Inc()
			s.metrics.Duration.WithLabelValues(outcome).Observe(d.Seconds())
		},
		Publish: func(ctx context.Context, subject string, e *events.Envelope) error {
			_, err := bus.Publish(ctx, s.js, subject, e)
			return err
		},
		Logger: log, Instance: cfg.Instance,
	})
	if err != nil {
		s.nc.Close()
		return nil, err
	}
	adm := admin.New(admin.Options{Registry: s.metrics.Registry, Token: cfg.AdminToken, Logger: log, Ready: []admin.Check{{Name: "nats", Check: func(context.Context) error {
		if !s.nc.IsConnected() || !s.ready.Load() {
			return fmt.Errorf("not consuming call.started from %s yet", cfg.NATSURL)
		}
		return nil
	}}}, ReadyDetail: func(context.Context) any { return map[string]any{"running_policies": s.active.Load()} }})
	s.registerREST(adm)
	if s.web, err = admin.Listen(cfg.AdminAddr, adm.Handler()); err != nil {
		s.nc.Close()
		return nil, err
	}
	return s, nil
}

// AdminAddr is the admin HTTP address.
func (s *Service) AdminAddr() string { return s.web.Addr() }

// Run consumes call.started until ctx ends, then lets running policies
// finish (up to ShutdownGrace) and exits.
func (s *Service) Run(ctx context.Context) error {
	go s.web.Serve()
	defer s.web.Close()
	defer s.sb.Close()
	defer s.runner.Close()
	defer s.nc.Drain()
	var cons jetstream.ConsumeContext
	if retry.Every(ctx, time.Second, s.log, "open the policy store", func() error { return s.openStore(ctx) }) != nil {
		return nil
	}
	if retry.Every(ctx, time.Second, s.log, "consume call.started", func() (err error) { cons, err = s.consume(ctx); return err }) != nil {
		return nil
	}
	s.ready.Store(true)
	s.log.Info("policy-runner ready", "policies", s.cfg.PolicyDir, "admin", s.AdminAddr())
	<-ctx.Done()
	cons.Stop()
	done := make(chan struct{})
	go func() { s.running.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.ShutdownGrace):
		s.log.Warn("policies still running at the end of the grace period", "running", s.active.Load())
	}
	return nil
}

// openStore opens the policy store once: the KV bucket (seeded from the
// policy directory on first start) or the directory itself.
func (s *Service) openStore(ctx context.Context) error {
	if err := s.openRoutesAndState(ctx); err != nil {
		return err
	}
	s.store.mu.RLock()
	open := s.store.s != nil
	s.store.mu.RUnlock()
	if open {
		return nil
	}
	switch s.cfg.PolicyStore {
	case "dir":
		s.store.set(app.DirStore{Dir: s.cfg.PolicyDir})
		return nil
	case "coreapi":
		s.store.set(s.core)
		return nil
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	kv, stop, err := policystore.Open(octx, s.js)
	if err != nil {
		return err
	}
	n, err := kv.Seed(octx, s.cfg.PolicyDir)
	if err != nil {
		stop()
		return err
	}
	if n > 0 {
		s.log.Info("policy store seeded", "policies", n, "from", s.cfg.PolicyDir)
	}
	s.store.mu.Lock()
	s.kv = kv
	s.store.mu.Unlock()
	s.store.set(kv)
	go func() { <-ctx.Done(); stop() }()
	return nil
}

// openRoutesAndState opens the route table (seeded from --routes on the
// first start, then followed) and the tenants' kv bucket.
func (s *Service) openRoutesAndState(ctx context.Context) error {
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if s.rt.Load() == nil {
		rt, stop, err := policystore.OpenRoutes(octx, s.js, s.routes, s.runner.SetRoutes, func(err error) {
			s.log.Error("route table update ignored; the previous table stays", "err", err)
		})
		if err != nil {
			return err
		}
		s.rt.Store(rt)
		go func() { <-ctx.Done(); stop() }()
	}
	if s.state.Load() == nil {
		st, err := tenantstate.Open(octx, s.js, s.cfg.StateTTL, int64(s.cfg.StateMaxBytes))
		if err != nil {
			return err
		}
		s.state.Store(st)
	}
	return nil
}

// consume attaches to the durable consumer every instance shares, so each
// call's policy runs once. A message is acknowledged when its policy
// starts: a policy is a live conversation and is never re-run.
func (s *Service) consume(ctx context.Context) (jetstream.ConsumeContext, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := bus.EnsureStreams(cctx, s.js, "CALLS", "POLICIES", "PUSH"); err != nil {
		return nil, err
	}
	c, err := s.js.CreateOrUpdateConsumer(cctx, "CALLS", jetstream.ConsumerConfig{
		Durable: "policy-runner", FilterSubject: "calls.*.started", AckPolicy: jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverNewPolicy, MaxAckPending: 10000, AckWait: 30 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer on CALLS: %w", err)
	}
	runCtx := context.WithoutCancel(ctx)
	return c.Consume(func(m jetstream.Msg) {
		env, err := events.Parse(m.Data())
		var call luaapi.Call
		if err == nil {
			err = json.Unmarshal(env.Data, &call)
		}
		if err != nil || call.CallID == "" {
			s.log.Error("unreadable call.started; skipped", "subject", m.Subject(), "err", err)
			m.Term()
			return
		}
		m.Ack()
		s.running.Add(1)
		s.active.Add(1)
		go func() {
			defer s.running.Done()
			defer s.active.Add(-1)
			// Checked here, not in the callback: a look-up in POLICIES
			// must not hold up the deliveries behind it.
			if s.alreadyRan(m, call.CallID) {
				return
			}
			s.runner.Handle(runCtx, call)
		}()
	})
}

// freshStarted is how old a first delivery of call.started may be and
// still run unchecked.
const freshStarted = time.Second

// alreadyRan guards against running a call's policy twice. JetStream
// delivers at least once: after a nats-server restart the consumer's last
// acknowledgements may be lost and call.started redelivered, to this or
// another instance. A fresh first delivery is the normal path and is not
// checked (it would cost a round trip before the caller's first prompt); a
// redelivery, or a call.started older than freshStarted, runs only if the
// call has no policy.started yet. A redelivery to the same instance is
// caught in memory first (a restart's lost acknowledgements can make it
// look like a first delivery).
func (s *Service) alreadyRan(m jetstream.Msg, callID string) bool {
	if s.seen.add(callID) {
		s.log.Warn("call.started delivered again for a call this instance already ran; skipped", "callid", callID)
		return true
	}
	md, err := m.Metadata()
	if err != nil || (md.NumDelivered <= 1 && time.Since(md.Timestamp) < freshStarted) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream := s.policies.Load()
	if stream == nil {
		st, err := s.js.Stream(ctx, "POLICIES")
		if err != nil {
			return false
		}
		s.policies.Store(&st)
		stream = &st
	}
	if _, err := (*stream).GetLastMsgForSubject(ctx, "policies."+callID+".started"); err == nil {
		s.log.Warn("call.started delivered again for a call whose policy already ran; skipped", "callid", callID, "delivered", md.NumDelivered)
		return true
	}
	return false
}

func (s *Service) registerREST(adm *admin.Server) {
	adminhttp.Register(adm, adminhttp.Deps{
		KV:      func() *policystore.KV { s.store.mu.RLock(); defer s.store.mu.RUnlock(); return s.kv },
		Routes:  s.rt.Load,
		Runner:  s.runner,
		Sandbox: s.sb, LibDir: s.cfg.LibDir, Schedules: s.sched,
	})
}
