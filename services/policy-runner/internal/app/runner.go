// Package app runs one routing policy per call: it chooses the policy,
// compiles it once per version, runs it in the sandbox against the call,
// reports policy.started / completed / failed, and on failure sends the
// caller to the fallback so nobody is left in silence.
package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/events"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/recording"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/sandbox"
)

// Policy is one version of a script.
type Policy struct {
	Name    string
	Version string
	Source  string
}

// Store finds policies by name.
type Store interface {
	Get(ctx context.Context, name string) (Policy, error)
}

// ErrNoPolicy: the store has no policy of that name.
var ErrNoPolicy = errors.New("no such policy")

// DirStore reads <dir>/<name>.lua; the version is the content's hash.
type DirStore struct{ Dir string }

var policyNameRE = regexp.MustCompile(`^[A-Za-z0-9_\-]{1,64}$`)

// ValidName is the one rule for a policy's name, which every store keys
// by: 1 to 64 letters, digits, _ or -, so a name is never a path.
func ValidName(name string) bool { return policyNameRE.MatchString(name) }

// Get reads a policy file.
func (d DirStore) Get(_ context.Context, name string) (Policy, error) {
	if !ValidName(name) {
		return Policy{}, fmt.Errorf("%w: %q is not a policy name", ErrNoPolicy, name)
	}
	b, err := os.ReadFile(filepath.Join(d.Dir, name+".lua"))
	if err != nil {
		return Policy{}, fmt.Errorf("%w: %s", ErrNoPolicy, name)
	}
	sum := sha256.Sum256(b)
	return Policy{Name: name, Version: hex.EncodeToString(sum[:6]), Source: string(b)}, nil
}

// Fallback is what a failed policy leaves the caller with.
type Fallback struct {
	Transfer string // an extension; "" hangs up instead
	Cause    string // hang-up cause when there is no transfer
}

// EventPublisher stores events (bus.Publish bound to JetStream).
type EventPublisher func(ctx context.Context, subject string, e *events.Envelope) error

// Config wires a Runner.
type Config struct {
	Store    Store
	Sandbox  *sandbox.Sandbox
	LibDir   string
	Routes   []Route
	Default  string
	Fallback Fallback
	NewCall  func(callID string) luaapi.CallControl
	// The services a policy may use; nil ones answer "not available".
	Queue     luaapi.Queue
	KV        func(tenant string) luaapi.KV
	Connector func(tenant string) luaapi.Connector
	Schedules luaapi.Schedules
	Push      luaapi.Push
	NodeAPI   func(node string) luaapi.NodeAPI
	// MaxTapeBytes bounds the inputs recorded per run (0: the default).
	MaxTapeBytes int
	Publish      EventPublisher
	// Finished, if set, hears how every run ended (metrics).
	Finished func(ev RunEvent, outcome string, d time.Duration)
	Logger   *slog.Logger
	Instance string
}

// Runner runs policies.
type Runner struct {
	cfg    Config
	pool   *sandbox.Pool[luaapi.Env]
	routes atomic.Pointer[routeTable]
	mu     sync.Mutex
	progs  map[string]*sandbox.Program // name@version
}

// New builds a runner. Routes that do not parse are refused here, so a bad
// --routes stops the start.
func New(cfg Config) (*Runner, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Default == "" {
		cfg.Default = "default"
	}
	r := &Runner{cfg: cfg, progs: map[string]*sandbox.Program{},
		pool: sandbox.NewPool(cfg.Sandbox, cfg.LibDir, 0, luaapi.Install)}
	if err := r.SetRoutes(cfg.Routes); err != nil {
		return nil, err
	}
	return r, nil
}

// Close drops the pooled Lua states.
func (r *Runner) Close() { r.pool.Close() }

// TenantOf is the tenant a call's small state (kv) belongs to: the channel
// variable switchyard_tenant, else "default".
func TenantOf(c luaapi.Call) string {
	if t := c.Variables["switchyard_tenant"]; t != "" {
		return t
	}
	return "default"
}

// Choose picks the policy for a call: the channel variable
// switchyard_policy, else the route table, else the default.
func (r *Runner) Choose(c luaapi.Call) string {
	if p := c.Variables["switchyard_policy"]; p != "" {
		return p
	}
	if p, ok := r.routes.Load().match(c.DestinationNumber); ok {
		return p
	}
	return r.cfg.Default
}

func (r *Runner) program(p Policy) (*sandbox.Program, error) {
	key := p.Name + "@" + p.Version
	r.mu.Lock()
	prog, ok := r.progs[key]
	r.mu.Unlock()
	if ok {
		return prog, nil
	}
	prog, err := sandbox.Compile(p.Name, p.Source, sandbox.Limits{})
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.progs[key] = prog
	r.mu.Unlock()
	return prog, nil
}

// Inputs is what a run took in, carried by policy.completed and
// policy.failed so the run can be replayed.
type Inputs struct {
	Call luaapi.Call    `json:"call"`
	Tape recording.Tape `json:"tape"`
}

// RunEvent is the data of policy.started, policy.completed and
// policy.failed (docs/events.md).
type RunEvent struct {
	CallID  string `json:"call_id"`
	Policy  string `json:"policy"`
	Version string `json:"version,omitempty"`
	// Outcome (completed): "completed", or "caller_hung_up" when the caller
	// left mid-policy.
	Outcome    string  `json:"outcome,omitempty"`
	Error      string  `json:"error,omitempty"`
	Line       int     `json:"line,omitempty"`
	Limit      string  `json:"limit,omitempty"`
	DurationMS int64   `json:"duration_ms"`
	Inputs     *Inputs `json:"inputs,omitempty"`
}

// env is the luaapi.Env for a call, before recording.
func (r *Runner) env(ctx context.Context, c luaapi.Call, ctl luaapi.CallControl, log *slog.Logger) luaapi.Env {
	env := luaapi.Env{Ctx: ctx, Call: c, Ctl: ctl, Logger: log, Queue: r.cfg.Queue, Push: r.cfg.Push, Schedules: r.cfg.Schedules}
	if r.cfg.KV != nil {
		env.KV = r.cfg.KV(TenantOf(c))
	}
	if r.cfg.Connector != nil {
		env.Connector = r.cfg.Connector(TenantOf(c))
	}
	if r.cfg.NodeAPI != nil && c.Node != "" {
		env.API = r.cfg.NodeAPI(c.Node)
	}
	return env
}

// Handle runs the call's policy to its end.
func (r *Runner) Handle(ctx context.Context, c luaapi.Call) {
	log := r.cfg.Logger.With("callid", c.CallID)
	ev := RunEvent{CallID: c.CallID, Policy: r.Choose(c)}
	start := time.Now()
	ctl := r.cfg.NewCall(c.CallID)
	policy, err := r.cfg.Store.Get(ctx, ev.Policy)
	var prog *sandbox.Program
	if err == nil {
		prog, err = r.program(policy)
	}
	if err != nil {
		log.Error("policy unavailable; falling back", "policy", ev.Policy, "err", err)
		ev.Error, ev.Limit = err.Error(), limitOf(err)
		r.finish(ctx, "failed", ev)
		r.fallback(ctx, ctl, log)
		return
	}
	ev.Version = policy.Version
	// policy.started is stored while the policy already runs: the caller
	// should not wait a JetStream round trip for the first prompt. The
	// run's end waits for it, so the events stay in order.
	started := make(chan struct{})
	startedEv := ev // a copy: the run goes on writing ev while this is published
	go func() { defer close(started); r.publish(ctx, "started", startedEv) }()
	defer func() { <-started }()
	rec := recording.NewRecorder(r.cfg.MaxTapeBytes)
	env := rec.Env(r.env(ctx, c, ctl, log))
	_, err = r.pool.Run(ctx, prog, env, env.Now)
	ev.DurationMS = time.Since(start).Milliseconds()
	ev.Inputs = &Inputs{Call: c, Tape: rec.Tape()}
	<-started
	if err == nil {
		ev.Outcome = "completed"
		r.finish(ctx, "completed", ev)
		return
	}
	var se *sandbox.Error
	if errors.As(err, &se) {
		ev.Line = se.Line
	}
	ev.Error, ev.Limit = err.Error(), limitOf(err)
	if !ctl.Ready() {
		// The caller hung up mid-policy: an ordinary end.
		ev.Outcome, ev.Limit = "caller_hung_up", ""
		r.finish(ctx, "completed", ev)
		return
	}
	log.Error("policy failed; falling back", "policy", ev.Policy, "err", err, "line", ev.Line)
	r.finish(ctx, "failed", ev)
	r.fallback(ctx, ctl, log)
}

func limitOf(err error) string {
	var se *sandbox.Error
	if errors.As(err, &se) {
		return se.Limit
	}
	return ""
}

func (r *Runner) fallback(ctx context.Context, ctl luaapi.CallControl, log *slog.Logger) {
	if !ctl.Ready() {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var err error
	if r.cfg.Fallback.Transfer != "" {
		err = ctl.Transfer(fctx, r.cfg.Fallback.Transfer, "XML", "default")
	} else {
		cause := r.cfg.Fallback.Cause
		if cause == "" {
			cause = "NORMAL_TEMPORARY_FAILURE"
		}
		err = ctl.Hangup(fctx, cause)
	}
	if err != nil {
		log.Error("fallback failed too", "err", err)
	}
}

// finish reports a run's end (what: completed or failed) to Finished and
// as its event.
func (r *Runner) finish(ctx context.Context, what string, ev RunEvent) {
	if r.cfg.Finished != nil {
		outcome := ev.Outcome
		if what == "failed" {
			outcome = "failed"
		}
		r.cfg.Finished(ev, outcome, time.Duration(ev.DurationMS)*time.Millisecond)
	}
	r.publish(ctx, what, ev)
}

func (r *Runner) publish(ctx context.Context, what string, ev RunEvent) {
	if r.cfg.Publish == nil {
		return
	}
	env, err := events.New(ev.CallID+".policy."+what, "switchyard/policy-runner/"+r.cfg.Instance, "policy."+what, "policies."+ev.CallID+"."+what, ev.CallID, ev)
	if err != nil {
		return
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := r.cfg.Publish(pctx, env.Subject, env); err != nil {
		r.cfg.Logger.Warn("cannot publish policy event", "type", env.Type, "callid", ev.CallID, "err", err)
	}
}
