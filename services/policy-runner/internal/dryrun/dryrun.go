// Package dryrun runs a policy against a scripted call — no NATS, no
// gateway, no FreeSWITCH — and records every action it takes. It backs
// `policy-runner test` and the policy tests in lua/tests.
package dryrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/luaapi"
	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/sandbox"
)

// Script is a test call: the call.started data and what the caller does.
type Script struct {
	// Policy, for tests, names the policy file (without .lua) to run;
	// default: the test file's own name.
	Policy string      `json:"policy,omitempty"`
	Call   luaapi.Call `json:"call"`
	// Digits answer the policy's digit collections in turn ("" = none).
	Digits []string `json:"digits,omitempty"`
	// HangupAfter hangs the caller up after this many actions (0: never).
	HangupAfter int `json:"hangup_after,omitempty"`
	// Queue answers the policy's queue.enqueue calls in turn; without it
	// queue.enqueue answers "not available", as it does until the
	// queue-distributor runs.
	Queue []luaapi.EnqueueResult `json:"queue,omitempty"`
	// Connector answers the policy's connector.query calls in turn:
	// {"result": …} or {"error": "timeout: …"}; without it connector.query
	// answers "not available".
	Connector []ConnectorAnswer `json:"connector,omitempty"`
	// KV is the tenant state the run starts with.
	KV map[string]string `json:"kv,omitempty"`
	// Now fixes the clock (RFC 3339), so time-of-day policies test the same
	// every day; default: the real clock.
	Now string `json:"now,omitempty"`
	// Expect, for tests, is the trace the policy must produce.
	Expect []string `json:"expect,omitempty"`
	// ExpectError, for tests, is a text the failure must contain.
	ExpectError string `json:"expect_error,omitempty"`
}

// LoadScript reads a call.json.
func LoadScript(path string) (*Script, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Script
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.Call.CallID == "" {
		s.Call.CallID = "00000000-0000-4000-8000-000000000000"
	}
	if s.Now != "" {
		if _, err := time.Parse(time.RFC3339, s.Now); err != nil {
			return nil, fmt.Errorf("%s: now: want an RFC 3339 time such as 2026-11-23T10:00:00-05:00: %w", path, err)
		}
	}
	return &s, nil
}

// ErrCallGone is what the scripted call answers once the caller hung up.
var ErrCallGone = errors.New("the call has hung up")

// call is the scripted side of the call.
type call struct {
	script  *Script
	mu      sync.Mutex
	trace   []string
	digits  int
	actions int
	hung    bool
	vars    map[string]string
}

func (c *call) act(line string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hung {
		return ErrCallGone
	}
	c.trace = append(c.trace, line)
	c.actions++
	if c.script.HangupAfter > 0 && c.actions >= c.script.HangupAfter {
		c.hung = true
		c.trace = append(c.trace, "caller hung up")
	}
	return nil
}

func (c *call) Execute(_ context.Context, app, arg string, vars []string) (luaapi.Result, error) {
	if err := c.act(strings.TrimSpace(app + " " + arg)); err != nil {
		return luaapi.Result{}, err
	}
	r := luaapi.Result{Application: app, Response: "_none_", Vars: map[string]string{}}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch app {
	case "playback":
		r.Response = "FILE PLAYED"
	case "play_and_get_digits", "read":
		d := ""
		if c.digits < len(c.script.Digits) {
			d = c.script.Digits[c.digits]
		}
		c.digits++
		for _, v := range vars {
			r.Vars[v] = d
		}
	case "hangup":
		c.hung = true
	case "bridge":
		r.Vars["last_bridge_hangup_cause"] = "NORMAL_CLEARING"
		r.Vars["originate_disposition"] = "SUCCESS"
	case "record":
		r.Vars["record_ms"] = "5000"
	case "set":
		name, value, _ := strings.Cut(arg, "=")
		c.vars[name] = value
	}
	for _, v := range vars {
		if x, ok := c.vars[v]; ok {
			r.Vars[v] = x
		}
	}
	return r, nil
}

func (c *call) Hangup(_ context.Context, cause string) error {
	if err := c.act("hangup " + cause); err != nil {
		return err
	}
	c.mu.Lock()
	c.hung = true
	c.mu.Unlock()
	return nil
}

func (c *call) Set(_ context.Context, name, value string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hung {
		return ErrCallGone
	}
	c.vars[name] = value
	return nil
}

func (c *call) Get(_ context.Context, name string) (string, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.vars[name]
	return v, ok, nil
}

func (c *call) Transfer(_ context.Context, dest, dialplan, context string) error {
	if err := c.act(strings.TrimSpace("transfer " + dest + " " + dialplan + " " + context)); err != nil {
		return err
	}
	c.mu.Lock()
	c.hung = true // the call has left the policy
	c.mu.Unlock()
	return nil
}

func (c *call) Ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.hung
}

// Result is what a dry run did.
type Result struct {
	Trace []string // actions, logs and consoleLog lines, in order
	Err   error
}

// Options are what a dry run shares with the service: the policy library
// and the business-hours schedules.
type Options struct {
	LibDir    string
	Schedules luaapi.Schedules
}

// Run runs source as a policy against script.
func Run(ctx context.Context, sb *sandbox.Sandbox, name, source string, opts Options, script *Script) Result {
	prog, err := sandbox.Compile(name, source, sandbox.Limits{})
	if err != nil {
		return Result{Err: err}
	}
	c := &call{script: script, vars: map[string]string{}}
	for k, v := range script.Call.Variables {
		c.vars[k] = v
	}
	env := luaapi.Env{Ctx: ctx, Call: script.Call, Ctl: c, Logger: slog.New(slog.DiscardHandler),
		Schedules: opts.Schedules, KV: &memKV{m: maps.Clone(script.KV)},
		Trace: func(action string, args ...any) {
			if strings.HasPrefix(action, "log.") || strings.HasPrefix(action, "kv.") || action == "consoleLog" {
				c.mu.Lock()
				c.trace = append(c.trace, strings.TrimSpace(action+" "+fmt.Sprint(args...)))
				c.mu.Unlock()
			}
		}}
	if script.Queue != nil {
		env.Queue = &scriptedQueue{c: c}
	}
	env.Push = &tracedPush{c: c}
	if script.Connector != nil {
		env.Connector = &scriptedConnector{c: c}
	}
	if script.Now != "" {
		t, _ := time.Parse(time.RFC3339, script.Now)
		env.Now = func() time.Time { return t }
	}
	_, err = sb.Run(ctx, prog, sandbox.Env{Install: luaapi.InstallFor(env), LibDir: opts.LibDir, Clock: env.Now})
	c.mu.Lock()
	defer c.mu.Unlock()
	return Result{Trace: append([]string(nil), c.trace...), Err: err}
}

// ConnectorAnswer is one scripted connector.query answer.
type ConnectorAnswer struct {
	Result any    `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
}

// scriptedConnector answers connector.query from the script, in turn.
type scriptedConnector struct {
	c *call
	n int
}

func (s *scriptedConnector) Query(_ context.Context, _ luaapi.Call, q luaapi.ConnectorQuery) (any, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.trace = append(s.c.trace, "connector "+q.Connector)
	if s.n >= len(s.c.script.Connector) {
		return nil, errors.New("the test call has no more connector answers")
	}
	s.n++
	a := s.c.script.Connector[s.n-1]
	if a.Error != "" {
		return nil, errors.New(a.Error)
	}
	return a.Result, nil
}

// tracedPush stands in for the push-notifier: the push is traced, never
// sent.
type tracedPush struct {
	c *call
	n int
}

func (p *tracedPush) Notify(_ context.Context, _ luaapi.Call, req luaapi.PushRequest) (string, error) {
	// Not a caller action: a push goes out whether the caller is there.
	p.c.mu.Lock()
	p.c.trace = append(p.c.trace, "push "+req.User+" "+req.Type)
	p.c.mu.Unlock()
	p.n++
	return fmt.Sprintf("dry-run-push-%d", p.n), nil
}

// scriptedQueue answers queue.enqueue from the script, in turn.
type scriptedQueue struct {
	c *call
	n int
}

func (q *scriptedQueue) Enqueue(_ context.Context, _ luaapi.Call, req luaapi.EnqueueRequest) (luaapi.EnqueueResult, error) {
	if err := q.c.act("queue " + req.Queue); err != nil {
		return luaapi.EnqueueResult{}, err
	}
	q.c.mu.Lock()
	defer q.c.mu.Unlock()
	if q.n >= len(q.c.script.Queue) {
		return luaapi.EnqueueResult{}, errors.New("the test call has no more queue outcomes")
	}
	q.n++
	// An answered caller is still there when the agent hangs up first;
	// a script's hangup_after says when the caller hangs up instead.
	return q.c.script.Queue[q.n-1], nil
}

// memKV is the tenant state of a dry run.
type memKV struct {
	mu sync.Mutex
	m  map[string]string
}

func (k *memKV) Get(_ context.Context, key string) (string, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[key]
	return v, ok, nil
}

func (k *memKV) Set(_ context.Context, key, value string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[string]string{}
	}
	k.m[key] = value
	return nil
}

func (k *memKV) Delete(_ context.Context, key string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, key)
	return nil
}

// Check compares a result with the script's expectations and says what
// differs ("" when it matches).
func (s *Script) Check(r Result) string {
	var problems []string
	if s.Expect != nil && strings.Join(r.Trace, "\n") != strings.Join(s.Expect, "\n") {
		problems = append(problems, fmt.Sprintf("trace:\n  got  %q\n  want %q", r.Trace, s.Expect))
	}
	switch {
	case s.ExpectError == "" && r.Err != nil:
		problems = append(problems, "the policy failed: "+r.Err.Error())
	case s.ExpectError != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), s.ExpectError)):
		problems = append(problems, fmt.Sprintf("want a failure containing %q, got %v", s.ExpectError, r.Err))
	}
	return strings.Join(problems, "\n")
}
