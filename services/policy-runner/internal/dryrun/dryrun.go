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
	"os"
	"strings"
	"sync"

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

// Run runs source as a policy against script.
func Run(ctx context.Context, sb *sandbox.Sandbox, name, source, libDir string, script *Script) Result {
	prog, err := sandbox.Compile(name, source, sandbox.Limits{})
	if err != nil {
		return Result{Err: err}
	}
	c := &call{script: script, vars: map[string]string{}}
	for k, v := range script.Call.Variables {
		c.vars[k] = v
	}
	env := luaapi.Env{Ctx: ctx, Call: script.Call, Ctl: c, Logger: slog.New(slog.DiscardHandler),
		Trace: func(action string, args ...any) {
			if strings.HasPrefix(action, "log.") || action == "consoleLog" {
				c.mu.Lock()
				c.trace = append(c.trace, strings.TrimSpace(action+" "+fmt.Sprint(args...)))
				c.mu.Unlock()
			}
		}}
	_, err = sb.Run(ctx, prog, sandbox.Env{Install: luaapi.Install(env), LibDir: libDir})
	c.mu.Lock()
	defer c.mu.Unlock()
	return Result{Trace: append([]string(nil), c.trace...), Err: err}
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
