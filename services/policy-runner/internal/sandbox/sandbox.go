// Package sandbox runs customer Lua (gopher-lua) so that no script can
// reach the host, hog a core, blow the stack or exhaust memory:
//
//   - only safe libraries: base without dofile/loadfile/bytecode, string,
//     table, math, and os with time, date and clock only; require loads
//     modules from one library directory and nowhere else;
//   - a CPU slice: Lua may run at most Limits.Slice between two calls into
//     the host (call control waits do not count), so an endless loop is
//     stopped while a policy that waits an hour for an agent is not;
//   - caps on the call stack and the value stack (registry);
//   - caps on what one library call may build (string.rep, string.format,
//     table.concat) and on pattern matching, which runs in Go and cannot
//     be interrupted by the slice;
//   - a memory guard that stops the runs in progress when the heap crosses
//     Limits.MaxHeapBytes.
//
// A violation ends that run with an *Error naming the limit; the runner and
// every other run go on.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// Limits bound one run. Zero fields take the defaults.
type Limits struct {
	Slice           time.Duration // Lua time between host calls; default 250ms
	CallStackSize   int           // nested calls; default 200
	RegistryMaxSize int           // value stack slots; default 64Ki
	MaxStringBytes  int           // a string a library call may build; default 1 MiB
	MaxPatternInput int           // subject length for find/match/gmatch/gsub; default 64 KiB
	MaxQuantifiers  int           // *, +, - and ? in one pattern; default 4
	MaxSourceBytes  int           // a script; default 256 KiB
	MaxHeapBytes    uint64        // process heap at which running scripts are stopped; default 1 GiB
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if l.Slice <= 0 {
		l.Slice = 250 * time.Millisecond
	}
	def(&l.CallStackSize, 200)
	def(&l.RegistryMaxSize, 64*1024)
	def(&l.MaxStringBytes, 1<<20)
	def(&l.MaxPatternInput, 64<<10)
	def(&l.MaxQuantifiers, 4)
	def(&l.MaxSourceBytes, 256<<10)
	if l.MaxHeapBytes == 0 {
		l.MaxHeapBytes = 1 << 30
	}
	return l
}

// Limit names carried by Error.
const (
	LimitSlice   = "cpu_slice"
	LimitStack   = "stack"
	LimitString  = "string_size"
	LimitPattern = "pattern"
	LimitSource  = "source_size"
	LimitMemory  = "memory"
	LimitSyntax  = "syntax"
	LimitRuntime = "runtime"
)

// Error is how a run failed: the limit it hit (or "runtime" for a script
// error), the message, and the line when known.
type Error struct {
	Limit   string
	Message string
	Line    int
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s (line %d): %s", e.Limit, e.Line, e.Message)
	}
	return e.Limit + ": " + e.Message
}

// Program is a compiled script, shared by every run.
type Program struct {
	Name  string
	proto *lua.FunctionProto
}

// Compile parses and compiles a script once. Bytecode is refused.
func Compile(name, source string, lim Limits) (*Program, error) {
	lim = lim.withDefaults()
	if len(source) > lim.MaxSourceBytes {
		return nil, &Error{Limit: LimitSource, Message: fmt.Sprintf("script of %d bytes exceeds %d", len(source), lim.MaxSourceBytes)}
	}
	if strings.HasPrefix(source, "\x1bLua") {
		return nil, &Error{Limit: LimitSyntax, Message: "precompiled bytecode is not accepted; send Lua source"}
	}
	chunk, err := parse.Parse(strings.NewReader(source), name)
	if err != nil {
		return nil, &Error{Limit: LimitSyntax, Message: err.Error(), Line: lineOf(err.Error())}
	}
	proto, err := lua.Compile(chunk, name)
	if err != nil {
		return nil, &Error{Limit: LimitSyntax, Message: err.Error(), Line: lineOf(err.Error())}
	}
	return &Program{Name: name, proto: proto}, nil
}

var lineRE = regexp.MustCompile(`line:(\d+)|:(\d+):`)

func lineOf(msg string) int {
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return 0
	}
	n := 0
	for _, s := range m[1:] {
		if s != "" {
			fmt.Sscan(s, &n)
			break
		}
	}
	return n
}

// Env sets what a run can see beyond the safe libraries.
type Env struct {
	// Globals are installed before the script runs. Go functions among
	// them should be wrapped with Host when they block.
	Globals map[string]lua.LValue
	// Install, if set, adds globals made in the run's own state (tables and
	// functions belong to the state that made them).
	Install func(L *lua.LState)
	// LibDir is where require looks for modules ("name" → LibDir/name.lua);
	// "" disables require.
	LibDir string
}

// Sandbox runs programs under Limits.
type Sandbox struct {
	lim   Limits
	guard *memoryGuard
}

// New makes a sandbox.
func New(lim Limits) *Sandbox {
	lim = lim.withDefaults()
	return &Sandbox{lim: lim, guard: newMemoryGuard(lim.MaxHeapBytes)}
}

// Close stops the memory guard.
func (s *Sandbox) Close() { s.guard.close() }

// Run executes prog in a fresh state and returns its results. ctx ends the
// run (a hung-up call); the CPU slice and the other limits end it with an
// *Error.
func (s *Sandbox) Run(ctx context.Context, prog *Program, env Env) ([]lua.LValue, error) {
	L := lua.NewState(lua.Options{
		SkipOpenLibs:        true,
		CallStackSize:       s.lim.CallStackSize,
		RegistrySize:        1024,
		RegistryMaxSize:     s.lim.RegistryMaxSize,
		RegistryGrowStep:    256,
		IncludeGoStackTrace: false,
	})
	defer L.Close()
	r := &run{lim: s.lim, L: L}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.cancel = cancel
	L.SetContext(runCtx)
	s.openLibs(r, env)
	for name, v := range env.Globals {
		L.SetGlobal(name, v)
	}
	if env.Install != nil {
		env.Install(L)
	}
	s.guard.add(r)
	defer s.guard.remove(r)
	r.startSlice()
	defer r.stopSlice()

	fn := L.NewFunctionFromProto(prog.proto)
	L.Push(fn)
	err := L.PCall(0, lua.MultRet, nil)
	r.stopSlice()
	if err == nil && context.Cause(runCtx) != nil {
		// A coroutine was stopped and the script carried on to return: the
		// run still broke a limit.
		err = context.Cause(runCtx)
	}
	if err != nil {
		return nil, r.explain(err, runCtx, ctx)
	}
	n := L.GetTop()
	out := make([]lua.LValue, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, L.Get(i))
	}
	return out, nil
}

// run is one execution's state for the limits.
type run struct {
	lim    Limits
	L      *lua.LState
	cancel context.CancelCauseFunc

	mu    sync.Mutex
	timer *time.Timer
	inLua bool
}

var (
	errSlice  = errors.New("the script ran too long without yielding to the call (an endless loop?)")
	errMemory = errors.New("the runner's memory is nearly exhausted; the running scripts were stopped")
)

// startSlice starts counting Lua time; stopSlice pauses it (in a host call).
func (r *run) startSlice() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inLua = true
	if r.timer == nil {
		r.timer = time.AfterFunc(r.lim.Slice, func() { r.cancel(errSlice) })
	} else {
		r.timer.Reset(r.lim.Slice)
	}
}

func (r *run) stopSlice() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inLua = false
	if r.timer != nil {
		r.timer.Stop()
	}
}

func (r *run) runningLua() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inLua
}

// Host wraps a Go function that may block (call control, a connector
// look-up): while it runs, the CPU slice is paused.
func Host(fn lua.LGFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		r := runOf(L)
		if r != nil {
			r.stopSlice()
			defer r.startSlice()
		}
		return fn(L)
	}
}

// runKey is where a state's run is kept in its registry, which scripts
// cannot reach (no debug library) and coroutines share.
const runKey = "switchyard.sandbox.run"

func runOf(L *lua.LState) *run {
	ud, ok := L.GetField(L.Get(lua.RegistryIndex), runKey).(*lua.LUserData)
	if !ok {
		return nil
	}
	r, _ := ud.Value.(*run)
	return r
}

func (r *run) explain(err error, runCtx, parent context.Context) error {
	var apiErr *lua.ApiError
	msg := err.Error()
	if errors.As(err, &apiErr) {
		msg = apiErr.Object.String()
	}
	switch cause := context.Cause(runCtx); {
	case errors.Is(cause, errSlice):
		return &Error{Limit: LimitSlice, Message: cause.Error()}
	case errors.Is(cause, errMemory):
		return &Error{Limit: LimitMemory, Message: cause.Error()}
	case parent.Err() != nil:
		return fmt.Errorf("run stopped: %w", parent.Err())
	}
	if le := limitOf(msg); le != nil {
		return le
	}
	if strings.Contains(msg, "stack overflow") || strings.Contains(msg, "registry overflow") {
		return &Error{Limit: LimitStack, Message: "the script nests too deep (stack overflow)", Line: lineOf(msg)}
	}
	return &Error{Limit: LimitRuntime, Message: msg, Line: lineOf(msg)}
}

// limitOf recognises the errors our capped library functions raise.
func limitOf(msg string) *Error {
	for _, l := range []string{LimitString, LimitPattern} {
		if i := strings.Index(msg, "sandbox "+l+": "); i >= 0 {
			return &Error{Limit: l, Message: msg[i+len("sandbox "+l+": "):], Line: lineOf(msg)}
		}
	}
	return nil
}

// openLibs installs the safe libraries.
func (s *Sandbox) openLibs(r *run, env Env) {
	L := r.L
	ud := L.NewUserData()
	ud.Value = r
	L.SetField(L.Get(lua.RegistryIndex), runKey, ud)
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
		{lua.CoroutineLibName, lua.OpenCoroutine},
	} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	for _, name := range []string{"dofile", "loadfile", "load", "loadstring", "collectgarbage", "module", "require", "newproxy", "getfenv", "setfenv", "print", "_printregs"} {
		L.SetGlobal(name, lua.LNil)
	}
	// load(string) only: text chunks, never bytecode, never a reader
	// function that could feed unbounded input.
	L.SetGlobal("load", L.NewFunction(func(L *lua.LState) int {
		src := L.CheckString(1)
		if len(src) > s.lim.MaxSourceBytes || strings.HasPrefix(src, "\x1b") {
			L.Push(lua.LNil)
			L.Push(lua.LString("load: only Lua source up to the script size limit"))
			return 2
		}
		fn, err := L.LoadString(src)
		if err != nil {
			L.Push(lua.LNil)
			L.Push(lua.LString(err.Error()))
			return 2
		}
		L.Push(fn)
		return 1
	}))
	osT := L.NewTable()
	L.SetField(osT, "time", L.NewFunction(osTime))
	L.SetField(osT, "clock", L.NewFunction(osClock))
	L.SetField(osT, "date", L.NewFunction(osDate))
	L.SetGlobal("os", osT)
	s.capStringLib(L)
	s.capTableLib(L)
	if env.LibDir != "" {
		L.SetGlobal("require", L.NewFunction(s.requireFrom(env.LibDir)))
	}
}

var moduleNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// requireFrom loads name.lua from dir, once per run; names cannot climb out
// of dir.
func (s *Sandbox) requireFrom(dir string) lua.LGFunction {
	loaded := map[string]lua.LValue{}
	return func(L *lua.LState) int {
		name := L.CheckString(1)
		if v, ok := loaded[name]; ok {
			L.Push(v)
			return 1
		}
		if !moduleNameRE.MatchString(name) {
			L.RaiseError("require %q: module names are letters, digits, _ and dots", name)
		}
		path := filepath.Join(dir, strings.ReplaceAll(name, ".", string(filepath.Separator))+".lua")
		src, err := os.ReadFile(path)
		if err != nil {
			L.RaiseError("require %q: no such module in the policy library", name)
		}
		if len(src) > s.lim.MaxSourceBytes {
			L.RaiseError("require %q: module too large", name)
		}
		fn, err := L.Load(strings.NewReader(string(src)), "lib/"+name)
		if err != nil {
			L.RaiseError("require %q: %v", name, err)
		}
		L.Push(fn)
		L.Call(0, 1)
		v := L.Get(-1)
		if v == lua.LNil {
			v = lua.LTrue
		}
		loaded[name] = v
		L.Pop(1)
		L.Push(v)
		return 1
	}
}

func osTime(L *lua.LState) int {
	L.Push(lua.LNumber(time.Now().Unix()))
	return 1
}

var started = time.Now()

func osClock(L *lua.LState) int {
	L.Push(lua.LNumber(time.Since(started).Seconds()))
	return 1
}

// osDate supports "*t", "!*t" and the common strftime codes.
func osDate(L *lua.LState) int {
	format := L.OptString(1, "%c")
	t := time.Now()
	if L.GetTop() >= 2 {
		t = time.Unix(int64(L.CheckNumber(2)), 0)
	}
	if strings.HasPrefix(format, "!") {
		t, format = t.UTC(), format[1:]
	}
	if format == "*t" {
		tb := L.NewTable()
		for k, v := range map[string]int{"year": t.Year(), "month": int(t.Month()), "day": t.Day(), "hour": t.Hour(),
			"min": t.Minute(), "sec": t.Second(), "wday": int(t.Weekday()) + 1, "yday": t.YearDay()} {
			L.SetField(tb, k, lua.LNumber(v))
		}
		L.SetField(tb, "isdst", lua.LFalse)
		L.Push(tb)
		return 1
	}
	if len(format) > 256 {
		L.RaiseError("sandbox %s: os.date format too long", LimitString)
	}
	L.Push(lua.LString(strftime(format, t)))
	return 1
}

func strftime(f string, t time.Time) string {
	r := strings.NewReplacer("%Y", "2006", "%m", "01", "%d", "02", "%H", "15", "%M", "04", "%S", "05",
		"%y", "06", "%b", "Jan", "%B", "January", "%a", "Mon", "%A", "Monday", "%p", "PM", "%c", "Mon Jan  2 15:04:05 2006",
		"%x", "01/02/06", "%X", "15:04:05", "%%", "%")
	return t.Format(r.Replace(f))
}
