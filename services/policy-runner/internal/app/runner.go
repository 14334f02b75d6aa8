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
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-voice/switchyard/pkg/events"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
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

// Get reads a policy file.
func (d DirStore) Get(_ context.Context, name string) (Policy, error) {
	if !policyNameRE.MatchString(name) {
		return Policy{}, fmt.Errorf("%w: %q is not a policy name", ErrNoPolicy, name)
	}
	b, err := os.ReadFile(filepath.Join(d.Dir, name+".lua"))
	if err != nil {
		return Policy{}, fmt.Errorf("%w: %s", ErrNoPolicy, name)
	}
	sum := sha256.Sum256(b)
	return Policy{Name: name, Version: hex.EncodeToString(sum[:6]), Source: string(b)}, nil
}

// Route sends destinations to a policy: an exact number, or a prefix
// ending in "*".
type Route struct {
	Pattern string
	Policy  string
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
	Publish  EventPublisher
	Logger   *slog.Logger
	Instance string
}

// Runner runs policies.
type Runner struct {
	cfg   Config
	mu    sync.Mutex
	progs map[string]*sandbox.Program // name@version
}

// New builds a runner.
func New(cfg Config) *Runner {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Default == "" {
		cfg.Default = "default"
	}
	// Longest prefixes first, exact numbers before them.
	sort.SliceStable(cfg.Routes, func(i, j int) bool { return len(cfg.Routes[i].Pattern) > len(cfg.Routes[j].Pattern) })
	return &Runner{cfg: cfg, progs: map[string]*sandbox.Program{}}
}

// Choose picks the policy for a call: the channel variable
// switchyard_policy, else the route table, else the default.
func (r *Runner) Choose(c luaapi.Call) string {
	if p := c.Variables["switchyard_policy"]; p != "" {
		return p
	}
	for _, rt := range r.cfg.Routes {
		if prefix, ok := strings.CutSuffix(rt.Pattern, "*"); ok {
			if strings.HasPrefix(c.DestinationNumber, prefix) {
				return rt.Policy
			}
		} else if rt.Pattern == c.DestinationNumber {
			return rt.Policy
		}
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

// Handle runs the call's policy to its end.
func (r *Runner) Handle(ctx context.Context, c luaapi.Call) {
	log := r.cfg.Logger.With("callid", c.CallID)
	name := r.Choose(c)
	start := time.Now()
	ctl := r.cfg.NewCall(c.CallID)
	policy, err := r.cfg.Store.Get(ctx, name)
	var prog *sandbox.Program
	if err == nil {
		prog, err = r.program(policy)
	}
	if err != nil {
		log.Error("policy unavailable; falling back", "policy", name, "err", err)
		r.publish(ctx, c.CallID, "failed", map[string]any{"call_id": c.CallID, "policy": name, "error": err.Error(), "limit": limitOf(err)})
		r.fallback(ctx, ctl, log)
		return
	}
	r.publish(ctx, c.CallID, "started", map[string]any{"call_id": c.CallID, "policy": name, "version": policy.Version})
	env := luaapi.Env{Ctx: ctx, Call: c, Ctl: ctl, Logger: log}
	_, err = r.cfg.Sandbox.Run(ctx, prog, sandbox.Env{Install: luaapi.Install(env), LibDir: r.cfg.LibDir})
	ms := time.Since(start).Milliseconds()
	if err != nil {
		var se *sandbox.Error
		line := 0
		if errors.As(err, &se) {
			line = se.Line
		}
		if !ctl.Ready() {
			// The caller hung up mid-policy: an ordinary end.
			r.publish(ctx, c.CallID, "completed", map[string]any{"call_id": c.CallID, "policy": name, "version": policy.Version, "outcome": "caller_hung_up", "duration_ms": ms})
			return
		}
		log.Error("policy failed; falling back", "policy", name, "err", err, "line", line)
		r.publish(ctx, c.CallID, "failed", map[string]any{"call_id": c.CallID, "policy": name, "version": policy.Version, "error": err.Error(), "line": line, "limit": limitOf(err), "duration_ms": ms})
		r.fallback(ctx, ctl, log)
		return
	}
	r.publish(ctx, c.CallID, "completed", map[string]any{"call_id": c.CallID, "policy": name, "version": policy.Version, "outcome": "completed", "duration_ms": ms})
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

func (r *Runner) publish(ctx context.Context, callID, what string, data any) {
	if r.cfg.Publish == nil {
		return
	}
	env, err := events.New(callID+".policy."+what, "switchyard/policy-runner/"+r.cfg.Instance, "policy."+what, "policies."+callID+"."+what, callID, data)
	if err != nil {
		return
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := r.cfg.Publish(pctx, env.Subject, env); err != nil {
		r.cfg.Logger.Warn("cannot publish policy event", "type", env.Type, "callid", callID, "err", err)
	}
}
