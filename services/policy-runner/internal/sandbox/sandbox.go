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
//     Limits.MaxHeapBytes, with the runtime's soft memory limit set a tenth
//     below it so that garbage is collected before it counts.
//
// A violation ends that run with an *Error naming the limit; the runner and
// every other run go on.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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
	// Clock is what os.time, os.date and os.clock read; nil is time.Now.
	// Replays hand back the recorded readings through it.
	Clock func() time.Time
}

// Sandbox runs programs under Limits.
type Sandbox struct {
	lim   Limits
	guard *memoryGuard
	libs  libCache
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
// *Error. The runner uses a Pool instead; Run suits one-off runs and tests.
func (s *Sandbox) Run(ctx context.Context, prog *Program, env Env) ([]lua.LValue, error) {
	st := s.newState(env.LibDir)
	defer st.L.Close()
	for name, v := range env.Globals {
		st.L.SetGlobal(name, v)
	}
	if env.Install != nil {
		env.Install(st.L)
	}
	n, err := s.exec(ctx, st, prog, env.Clock)
	if err != nil {
		return nil, err
	}
	out := make([]lua.LValue, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, st.L.Get(i))
	}
	return out, nil
}

// state is a Lua state with the safe libraries open, ready for runs.
type state struct {
	L      *lua.LState
	ud     *lua.LUserData // the registry slot holding the current run
	libDir string
}

func (s *Sandbox) newState(libDir string) *state {
	L := lua.NewState(lua.Options{
		SkipOpenLibs:        true,
		CallStackSize:       s.lim.CallStackSize,
		RegistrySize:        1024,
		RegistryMaxSize:     s.lim.RegistryMaxSize,
		RegistryGrowStep:    256,
		IncludeGoStackTrace: false,
	})
	st := &state{L: L, ud: L.NewUserData(), libDir: libDir}
	L.SetField(L.Get(lua.RegistryIndex), runKey, st.ud)
	s.openLibs(L, libDir)
	return st
}

// exec runs prog on st under the limits and leaves its n results on the
// stack.
func (s *Sandbox) exec(ctx context.Context, st *state, prog *Program, clock func() time.Time) (n int, err error) {
	L := st.L
	if clock == nil {
		clock = time.Now
	}
	r := &run{lim: s.lim, L: L, libDir: st.libDir, now: clock}
	r.started = clock()
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.cancel = cancel
	st.ud.Value = r
	defer func() { st.ud.Value = nil }()
	L.SetContext(runCtx)
	defer L.RemoveContext()
	s.guard.add(r)
	defer s.guard.remove(r)
	r.startSlice()
	defer r.stopSlice()

	L.SetTop(0)
	L.Push(L.NewFunctionFromProto(prog.proto))
	err = L.PCall(0, lua.MultRet, nil)
	r.stopSlice()
	if err == nil && context.Cause(runCtx) != nil {
		// A coroutine was stopped and the script carried on to return: the
		// run still broke a limit.
		err = context.Cause(runCtx)
	}
	if err != nil {
		return 0, r.explain(err, runCtx, ctx)
	}
	return L.GetTop(), nil
}

// run is one execution's state for the limits.
type run struct {
	lim    Limits
	L      *lua.LState
	cancel context.CancelCauseFunc
	libDir string
	loaded map[string]lua.LValue // require's modules, once per run
	// now is the run's clock; started its first reading (os.clock counts
	// from it).
	now     func() time.Time
	started time.Time
	rng     *rand.Rand

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
func (s *Sandbox) openLibs(L *lua.LState, libDir string) {
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
	mathT := L.GetGlobal("math").(*lua.LTable)
	L.SetField(mathT, "random", L.NewFunction(mathRandom))
	L.SetField(mathT, "randomseed", L.NewFunction(mathRandomseed))
	osT := L.NewTable()
	L.SetField(osT, "time", L.NewFunction(osTime))
	L.SetField(osT, "clock", L.NewFunction(osClock))
	L.SetField(osT, "date", L.NewFunction(osDate))
	L.SetGlobal("os", osT)
	s.capStringLib(L)
	s.capTableLib(L)
	if libDir != "" {
		L.SetGlobal("require", L.NewFunction(s.require))
	}
}

var moduleNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// require loads name.lua from the run's library directory, once per run;
// names cannot climb out of it. Each file is compiled once per content and
// shared by every state, as policies are.
func (s *Sandbox) require(L *lua.LState) int {
	name := L.CheckString(1)
	r := runOf(L)
	if r == nil {
		L.RaiseError("require %q: outside a run", name)
	}
	if v, ok := r.loaded[name]; ok {
		L.Push(v)
		return 1
	}
	if !moduleNameRE.MatchString(name) {
		L.RaiseError("require %q: module names are letters, digits, _ and dots", name)
	}
	path := filepath.Join(r.libDir, strings.ReplaceAll(name, ".", string(filepath.Separator))+".lua")
	proto, err := s.libs.load(path, "lib/"+name, s.lim.MaxSourceBytes)
	if err != nil {
		L.RaiseError("require %q: %v", name, err)
	}
	L.Push(L.NewFunctionFromProto(proto))
	L.Call(0, 1)
	v := L.Get(-1)
	if v == lua.LNil {
		v = lua.LTrue
	}
	if r.loaded == nil {
		r.loaded = map[string]lua.LValue{}
	}
	r.loaded[name] = v
	L.Pop(1)
	L.Push(v)
	return 1
}

// libCache holds compiled library modules, recompiled when a file's size
// or modification time changes, so an edited lib/ file takes effect on the
// next run without reading and parsing it on every require.
type libCache struct {
	mu    sync.Mutex
	files map[string]libEntry
}

type libEntry struct {
	size    int64
	mtime   time.Time
	proto   *lua.FunctionProto
	checked time.Time
}

// libRecheck is how often a cached module's file is looked at again: an
// edit takes effect within it.
const libRecheck = time.Second

func (c *libCache) load(path, chunkName string, maxBytes int) (*lua.FunctionProto, error) {
	now := time.Now()
	c.mu.Lock()
	if e, ok := c.files[path]; ok && now.Sub(e.checked) < libRecheck {
		c.mu.Unlock()
		return e.proto, nil
	}
	c.mu.Unlock()
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return nil, errors.New("no such module in the policy library")
	}
	c.mu.Lock()
	e, ok := c.files[path]
	if ok && e.size == fi.Size() && e.mtime.Equal(fi.ModTime()) {
		e.checked = now
		c.files[path] = e
		c.mu.Unlock()
		return e.proto, nil
	}
	c.mu.Unlock()
	if fi.Size() > int64(maxBytes) {
		return nil, errors.New("module too large")
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, errors.New("no such module in the policy library")
	}
	if len(src) > maxBytes {
		return nil, errors.New("module too large")
	}
	chunk, err := parse.Parse(strings.NewReader(string(src)), chunkName)
	if err != nil {
		return nil, err
	}
	proto, err := lua.Compile(chunk, chunkName)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.files == nil {
		c.files = map[string]libEntry{}
	}
	c.files[path] = libEntry{size: fi.Size(), mtime: fi.ModTime(), proto: proto, checked: now}
	c.mu.Unlock()
	return proto, nil
}

// rngOf is the run's own random source, seeded from its first clock
// reading: runs do not share (or reseed) one source, and a replay, which
// plays the clock back, draws the same numbers.
func rngOf(L *lua.LState) *rand.Rand {
	r := runOf(L)
	if r == nil {
		return rand.New(rand.NewPCG(1, 2))
	}
	if r.rng == nil {
		seed := uint64(r.started.UnixNano())
		r.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	}
	return r.rng
}

// mathRandom is Lua 5.1's math.random on the run's source; an empty range
// is a Lua error, not a Go panic.
func mathRandom(L *lua.LState) int {
	rng := rngOf(L)
	switch L.GetTop() {
	case 0:
		L.Push(lua.LNumber(rng.Float64()))
		return 1
	case 1:
		n := L.CheckInt64(1)
		if n < 1 {
			L.ArgError(1, "interval is empty")
		}
		L.Push(lua.LNumber(rng.Int64N(n) + 1))
	default:
		lo, hi := L.CheckInt64(1), L.CheckInt64(2)
		if lo > hi || hi-lo+1 <= 0 {
			L.ArgError(2, "interval is empty")
		}
		L.Push(lua.LNumber(lo + rng.Int64N(hi-lo+1)))
	}
	return 1
}

func mathRandomseed(L *lua.LState) int {
	seed := uint64(L.CheckInt64(1))
	if r := runOf(L); r != nil {
		r.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	}
	return 0
}

// clockOf is the run's clock.
func clockOf(L *lua.LState) (now func() time.Time, started time.Time) {
	if r := runOf(L); r != nil {
		return r.now, r.started
	}
	return time.Now, time.Now()
}

func osTime(L *lua.LState) int {
	now, _ := clockOf(L)
	L.Push(lua.LNumber(now().Unix()))
	return 1
}

// osClock is the seconds since the run started: a policy's own stopwatch.
func osClock(L *lua.LState) int {
	now, started := clockOf(L)
	L.Push(lua.LNumber(now().Sub(started).Seconds()))
	return 1
}

// osDate supports "*t", "!*t" and the common strftime codes.
func osDate(L *lua.LState) int {
	format := L.OptString(1, "%c")
	now, _ := clockOf(L)
	var t time.Time
	if L.GetTop() >= 2 {
		t = time.Unix(int64(L.CheckNumber(2)), 0)
	} else {
		t = now()
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
