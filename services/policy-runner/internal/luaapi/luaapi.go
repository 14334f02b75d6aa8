// Package luaapi is what a routing policy sees: the `call` table, `log`,
// `json`, `queue` (the queue-distributor), `push` (the push-notifier),
// `connector` (the connector-proxy), and a mod_lua compatibility layer (`session`, `freeswitch`) so
// existing FreeSWITCH IVR scripts run unchanged. docs/lua-api.md documents
// every function with an example.
package luaapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/sandbox"
)

// Result is what an executed application reported.
type Result struct {
	Application string
	Response    string // Application-Response: FILE PLAYED, _none_, …
	Vars        map[string]string
}

// CallControl drives the one call a policy runs for. Over NATS it is the
// gateway's callctl.<uuid>; in a dry run, a scripted call.
type CallControl interface {
	Execute(ctx context.Context, app, arg string, vars []string) (Result, error)
	Hangup(ctx context.Context, cause string) error
	Set(ctx context.Context, name, value string) error
	Get(ctx context.Context, name string) (string, bool, error)
	Transfer(ctx context.Context, dest, dialplan, context string) error
	// Ready is false once the call has hung up.
	Ready() bool
}

// NodeAPI runs api commands for freeswitch.API():execute.
type NodeAPI interface {
	API(ctx context.Context, cmd string) (string, error)
}

// Call is the call.started data a policy starts from.
type Call struct {
	CallID            string            `json:"call_id"`
	Node              string            `json:"node"`
	Direction         string            `json:"direction"`
	CallerIDNumber    string            `json:"caller_id_number"`
	CallerIDName      string            `json:"caller_id_name"`
	DestinationNumber string            `json:"destination_number"`
	Context           string            `json:"context"`
	Variables         map[string]string `json:"variables"`
}

// Queue puts a caller in a queue and returns when they leave it.
type Queue interface {
	Enqueue(ctx context.Context, call Call, req EnqueueRequest) (EnqueueResult, error)
}

// EnqueueRequest is queue.enqueue's arguments.
type EnqueueRequest struct {
	Queue    string `json:"queue"`
	Priority int    `json:"priority,omitempty"`
	// Skills are the skills the caller needs, each with the lowest level
	// an agent must have.
	Skills  map[string]int `json:"skills,omitempty"`
	Timeout time.Duration  `json:"timeout,omitempty"`
}

// Queue outcomes (the queue-distributor's, docs/events.md).
const (
	OutcomeAnswered   = "answered"
	OutcomeTimeout    = "timeout"
	OutcomeExitKey    = "exit_key"
	OutcomeAbandoned  = "abandoned"
	OutcomeNoAgents   = "no_agents"
	OutcomeOverflowed = "overflowed"
)

// EnqueueResult is how the caller left the queue.
type EnqueueResult struct {
	Outcome     string  `json:"outcome"`
	Agent       string  `json:"agent,omitempty"`
	WaitSeconds float64 `json:"wait_seconds"`
	Digit       string  `json:"digit,omitempty"`  // exit_key: the key pressed
	Target      string  `json:"target,omitempty"` // overflowed: where to send the caller
}

// Push asks the push-notifier to reach a user's devices; it returns the
// request's id once the request is stored (delivery is the notifier's).
type Push interface {
	Notify(ctx context.Context, call Call, req PushRequest) (string, error)
}

// PushRequest is push.notify's argument.
type PushRequest struct {
	// ID is the idempotency key: <call uuid>.<n> for the run's n-th
	// push, so a policy run again for the same call pushes nothing twice.
	ID         string         `json:"id,omitempty"`
	User       string         `json:"user"`
	Type       string         `json:"type"` // voip or alert
	Title      string         `json:"title,omitempty"`
	Body       string         `json:"body,omitempty"`
	TTL        time.Duration  `json:"ttl,omitempty"`
	CollapseID string         `json:"collapse_id,omitempty"`
	Data       map[string]any `json:"data,omitempty"`
}

// Connector looks data up through the connector-proxy, for the call's
// tenant; it returns the decoded result, or an error carrying the proxy's
// code.
type Connector interface {
	Query(ctx context.Context, call Call, q ConnectorQuery) (any, error)
}

// ConnectorQuery is connector.query's argument.
type ConnectorQuery struct {
	Connector string         `json:"connector"`
	Op        string         `json:"op,omitempty"` // query (default), get, update
	Query     string         `json:"query,omitempty"`
	Params    map[string]any `json:"params,omitempty"`
	Object    string         `json:"object,omitempty"`
	ID        string         `json:"id,omitempty"`
	Fields    []string       `json:"fields,omitempty"`
	Values    map[string]any `json:"values,omitempty"`
	Timeout   time.Duration  `json:"timeout,omitempty"`
}

// KV is a tenant's small state, already scoped to the call's tenant.
type KV interface {
	Get(ctx context.Context, key string) (string, bool, error)
	Set(ctx context.Context, key, value string) error
	Delete(ctx context.Context, key string) error
}

// Schedules answers business-hours questions.
type Schedules interface {
	IsOpen(name string, t time.Time) (bool, error)
}

// Env is everything the API needs for one run. Nil services answer "not
// available".
type Env struct {
	Ctx       context.Context
	Call      Call
	Ctl       CallControl
	API       NodeAPI // freeswitch.API()
	Queue     Queue
	Push      Push
	Connector Connector
	KV        KV
	Schedules Schedules
	// Now is the run's clock (schedule.is_open without a time); nil is
	// time.Now. The sandbox's os.time/os.date use the same clock.
	Now    func() time.Time
	Logger *slog.Logger
	// Trace, if set, is told every action the policy takes (dry runs,
	// replay).
	Trace func(action string, args ...any)
}

// ErrNotAvailable is what a service that is not there answers.
var ErrNotAvailable = errors.New("not available")

// Install adds the policy API to a state once and returns its binder,
// which points the API at one run's Env (the zero Env between runs). Every
// function reads the bound Env when called, so a pooled state serves call
// after call.
func Install(L *lua.LState) func(Env) {
	a := &api{}
	call := a.callTable(L)
	L.SetGlobal("call", call)
	L.SetGlobal("log", a.logTable(L))
	L.SetGlobal("json", jsonTable(L))
	L.SetGlobal("queue", a.queueTable(L))
	L.SetGlobal("kv", a.kvTable(L))
	L.SetGlobal("schedule", a.scheduleTable(L))
	L.SetGlobal("connector", a.connectorTable(L))
	L.SetGlobal("push", a.pushTable(L))
	L.SetGlobal("session", a.sessionObject(L))
	L.SetGlobal("freeswitch", a.freeswitchTable(L))
	L.SetGlobal("argv", L.NewTable())
	return func(env Env) {
		a.env = env
		a.pushes = 0
		if env.Logger == nil {
			a.log = slog.New(slog.DiscardHandler)
		} else {
			a.log = env.Logger.With("callid", env.Call.CallID)
		}
		if env.Ctl == nil {
			return
		}
		c := env.Call
		L.SetField(call, "uuid", lua.LString(c.CallID))
		L.SetField(call, "caller_id_number", lua.LString(c.CallerIDNumber))
		L.SetField(call, "caller_id_name", lua.LString(c.CallerIDName))
		L.SetField(call, "destination_number", lua.LString(c.DestinationNumber))
		L.SetField(call, "direction", lua.LString(c.Direction))
		L.SetField(call, "context", lua.LString(c.Context))
		L.SetField(call, "node", lua.LString(c.Node))
		// Sorted, so pairs() walks them in the same order every run (and
		// in a replay).
		vars := L.CreateTable(0, len(c.Variables))
		for _, k := range slices.Sorted(maps.Keys(c.Variables)) {
			vars.RawSetString(k, lua.LString(c.Variables[k]))
		}
		L.SetField(call, "variables", vars)
	}
}

// callDataFields are the call table's per-run fields.
var callDataFields = []string{"uuid", "caller_id_number", "caller_id_name", "destination_number", "direction", "context", "node", "variables"}

// InstallFor is Install bound to one Env, for a one-off state
// (sandbox.Env.Install).
func InstallFor(env Env) func(L *lua.LState) {
	return func(L *lua.LState) { Install(L)(env) }
}

type api struct {
	env    Env
	log    *slog.Logger
	pushes int // push.notify calls in this run: they number its request ids
}

func (a *api) trace(action string, args ...any) {
	if a.env.Trace != nil {
		a.env.Trace(action, args...)
	}
}

func (a *api) now() time.Time {
	if a.env.Now != nil {
		return a.env.Now()
	}
	return time.Now()
}

// host wraps a blocking call-control function for the sandbox's CPU slice.
func host(L *lua.LState, fn lua.LGFunction) *lua.LFunction {
	return L.NewFunction(sandbox.Host(fn))
}

// fail raises a Lua error carrying err's message.
func fail(L *lua.LState, what string, err error) {
	L.RaiseError("%s: %v", what, err)
}

func (a *api) exec(L *lua.LState, what, app, arg string, vars ...string) Result {
	a.trace(app, arg)
	r, err := a.env.Ctl.Execute(a.env.Ctx, app, arg, vars)
	if err != nil {
		fail(L, what, err)
	}
	return r
}

func (a *api) callTable(L *lua.LState) *lua.LTable {
	t := L.NewTable()
	exec := func(L *lua.LState, app, arg string, vars ...string) Result { return a.exec(L, app, app, arg, vars...) }
	L.SetField(t, "answer", host(L, func(L *lua.LState) int {
		exec(L, "answer", "")
		return 0
	}))
	L.SetField(t, "hangup", host(L, func(L *lua.LState) int {
		cause := L.OptString(1, "NORMAL_CLEARING")
		a.trace("hangup", cause)
		if err := a.env.Ctl.Hangup(a.env.Ctx, cause); err != nil {
			fail(L, "hangup", err)
		}
		return 0
	}))
	L.SetField(t, "playback", host(L, func(L *lua.LState) int {
		r := exec(L, "playback", L.CheckString(1))
		L.Push(lua.LString(r.Response))
		return 1
	}))
	L.SetField(t, "play_and_get_digits", host(L, func(L *lua.LState) int {
		o := L.CheckTable(1)
		arg := fmt.Sprintf("%d %d %d %d %s %s %s switchyard_digits %s %d",
			optInt(L, o, "min", 1), optInt(L, o, "max", 1), optInt(L, o, "tries", 3), optInt(L, o, "timeout", 5000),
			optStr(L, o, "terminators", "#"), mustStr(L, o, "file"), optStr(L, o, "invalid_file", "silence_stream://250"),
			optStr(L, o, "regex", `\d+`), optInt(L, o, "digit_timeout", 3000))
		r := exec(L, "play_and_get_digits", arg, "switchyard_digits")
		L.Push(lua.LString(r.Vars["switchyard_digits"]))
		return 1
	}))
	L.SetField(t, "say", host(L, func(L *lua.LState) int {
		o := L.CheckTable(1)
		arg := strings.Join([]string{optStr(L, o, "lang", "en"), optStr(L, o, "type", "number"),
			optStr(L, o, "method", "pronounced"), mustStr(L, o, "text")}, " ")
		exec(L, "say", arg)
		return 0
	}))
	L.SetField(t, "sleep", host(L, func(L *lua.LState) int {
		exec(L, "sleep", strconv.Itoa(L.CheckInt(1)))
		return 0
	}))
	L.SetField(t, "get", host(L, func(L *lua.LState) int {
		name := L.CheckString(1)
		v, ok, err := a.env.Ctl.Get(a.env.Ctx, name)
		if err != nil {
			fail(L, "get", err)
		}
		if !ok {
			L.Push(lua.LNil)
			return 1
		}
		L.Push(lua.LString(v))
		return 1
	}))
	L.SetField(t, "set", host(L, func(L *lua.LState) int {
		name, value := L.CheckString(1), L.CheckString(2)
		a.trace("set", name+"="+value)
		if err := a.env.Ctl.Set(a.env.Ctx, name, value); err != nil {
			fail(L, "set", err)
		}
		return 0
	}))
	L.SetField(t, "bridge", host(L, func(L *lua.LState) int {
		r := exec(L, "bridge", L.CheckString(1), "last_bridge_hangup_cause", "originate_disposition")
		res := L.NewTable()
		L.SetField(res, "response", lua.LString(r.Response))
		L.SetField(res, "hangup_cause", lua.LString(r.Vars["last_bridge_hangup_cause"]))
		L.SetField(res, "disposition", lua.LString(r.Vars["originate_disposition"]))
		L.Push(res)
		return 1
	}))
	L.SetField(t, "transfer", host(L, func(L *lua.LState) int {
		dest, dialplan, context := L.CheckString(1), L.OptString(2, ""), L.OptString(3, "")
		a.trace("transfer", strings.TrimSpace(dest+" "+dialplan+" "+context))
		if err := a.env.Ctl.Transfer(a.env.Ctx, dest, dialplan, context); err != nil {
			fail(L, "transfer", err)
		}
		return 0
	}))
	L.SetField(t, "record", host(L, func(L *lua.LState) int {
		r := exec(L, "record", L.CheckString(1)+" "+strconv.Itoa(L.OptInt(2, 60)), "record_ms")
		L.Push(lua.LString(r.Vars["record_ms"]))
		return 1
	}))
	L.SetField(t, "execute", host(L, func(L *lua.LState) int {
		r := exec(L, L.CheckString(1), L.OptString(2, ""))
		L.Push(lua.LString(r.Response))
		return 1
	}))
	L.SetField(t, "ready", L.NewFunction(func(L *lua.LState) int {
		L.Push(lua.LBool(a.env.Ctl.Ready()))
		return 1
	}))
	return t
}

func optInt(L *lua.LState, t *lua.LTable, k string, def int) int {
	if n, ok := L.GetField(t, k).(lua.LNumber); ok {
		return int(n)
	}
	return def
}

func optStr(L *lua.LState, t *lua.LTable, k, def string) string {
	if s, ok := L.GetField(t, k).(lua.LString); ok && s != "" {
		return string(s)
	}
	return def
}

func mustStr(L *lua.LState, t *lua.LTable, k string) string {
	s, ok := L.GetField(t, k).(lua.LString)
	if !ok || s == "" {
		L.RaiseError("missing %s", k)
	}
	return string(s)
}

func (a *api) logTable(L *lua.LState) *lua.LTable {
	t := L.NewTable()
	for _, lv := range []struct {
		name  string
		level slog.Level
	}{{"debug", slog.LevelDebug}, {"info", slog.LevelInfo}, {"warn", slog.LevelWarn}, {"error", slog.LevelError}} {
		L.SetField(t, lv.name, L.NewFunction(func(L *lua.LState) int {
			msg := L.CheckString(1)
			var attrs []any
			if fields, ok := L.Get(2).(*lua.LTable); ok {
				fields.ForEach(func(k, v lua.LValue) { attrs = append(attrs, k.String(), v.String()) })
			}
			a.trace("log."+lv.name, msg)
			a.log.Log(a.env.Ctx, lv.level, msg, attrs...)
			return 0
		}))
	}
	return t
}
