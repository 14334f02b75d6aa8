package sandbox

import (
	"math"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// capStringLib wraps the string functions that can build or scan a lot in
// one Go call, which the CPU slice cannot interrupt.
func (s *Sandbox) capStringLib(L *lua.LState) {
	strT, ok := L.GetGlobal("string").(*lua.LTable)
	if !ok {
		return
	}
	lim := s.lim
	wrap := func(name string, check func(L *lua.LState)) {
		orig, ok := L.GetField(strT, name).(*lua.LFunction)
		if !ok {
			return
		}
		L.SetField(strT, name, L.NewFunction(func(L *lua.LState) int {
			check(L)
			top := L.GetTop()
			L.Push(orig)
			for i := 1; i <= top; i++ {
				L.Push(L.Get(i))
			}
			L.Call(top, lua.MultRet)
			return L.GetTop() - top
		}))
	}
	wrap("rep", func(L *lua.LState) {
		str, n := L.CheckString(1), L.CheckInt(2)
		sep := L.OptString(3, "")
		if n > 0 && (len(str)+len(sep))*n > lim.MaxStringBytes {
			L.RaiseError("sandbox %s: string.rep would build %d bytes; the limit is %d", LimitString, (len(str)+len(sep))*n, lim.MaxStringBytes)
		}
	})
	wrap("format", func(L *lua.LState) {
		if f := L.CheckString(1); hasHugeWidth(f) {
			L.RaiseError("sandbox %s: string.format width or precision above 999", LimitString)
		}
	})
	pattern := func(subjectArg, patternArg int) func(L *lua.LState) {
		return func(L *lua.LState) {
			subject, pat := L.CheckString(subjectArg), L.CheckString(patternArg)
			if len(subject) > lim.MaxPatternInput {
				L.RaiseError("sandbox %s: pattern subject of %d bytes exceeds %d", LimitPattern, len(subject), lim.MaxPatternInput)
			}
			if q := quantifiers(pat); q > lim.MaxQuantifiers {
				L.RaiseError("sandbox %s: pattern %.40q has %d quantifiers; at most %d (backtracking is exponential in them)", LimitPattern, pat, q, lim.MaxQuantifiers)
			}
		}
	}
	for _, name := range []string{"find", "match", "gmatch", "gsub"} {
		wrap(name, pattern(1, 2))
	}
	// gsub's output can grow too. It is built in Go, where the slice
	// cannot stop it, so a string replacement is refused up front when
	// its worst case exceeds the limit, and every result is checked.
	gsub := L.GetField(strT, "gsub").(*lua.LFunction)
	L.SetField(strT, "gsub", L.NewFunction(func(L *lua.LState) int {
		if repl, ok := L.Get(3).(lua.LString); ok {
			subject := len(L.CheckString(1))
			matches := subject + 1
			if n := L.OptInt(4, -1); n >= 0 && n < matches {
				matches = n
			}
			if worst := subject + matches*len(repl); worst > lim.MaxStringBytes {
				L.RaiseError("sandbox %s: string.gsub could build %d bytes; the limit is %d", LimitString, worst, lim.MaxStringBytes)
			}
		}
		top := L.GetTop()
		L.Push(gsub)
		for i := 1; i <= top; i++ {
			L.Push(L.Get(i))
		}
		L.Call(top, lua.MultRet)
		if out, ok := L.Get(top + 1).(lua.LString); ok && len(out) > lim.MaxStringBytes {
			L.RaiseError("sandbox %s: string.gsub built %d bytes; the limit is %d", LimitString, len(out), lim.MaxStringBytes)
		}
		return L.GetTop() - top
	}))
	// The string metatable's __index is the string table; the wrapped
	// functions are what ("x"):rep(n) finds.
}

// capTableLib bounds table.concat's result.
func (s *Sandbox) capTableLib(L *lua.LState) {
	tabT, ok := L.GetGlobal("table").(*lua.LTable)
	if !ok {
		return
	}
	orig := L.GetField(tabT, "concat").(*lua.LFunction)
	lim := s.lim
	L.SetField(tabT, "concat", L.NewFunction(func(L *lua.LState) int {
		t := L.CheckTable(1)
		sep := L.OptString(2, "")
		total := 0
		t.ForEach(func(_, v lua.LValue) {
			if str, ok := v.(lua.LString); ok {
				total += len(str) + len(sep)
			}
		})
		if total > lim.MaxStringBytes {
			L.RaiseError("sandbox %s: table.concat would build %d bytes; the limit is %d", LimitString, total, lim.MaxStringBytes)
		}
		top := L.GetTop()
		L.Push(orig)
		for i := 1; i <= top; i++ {
			L.Push(L.Get(i))
		}
		L.Call(top, 1)
		return 1
	}))
}

// hasHugeWidth finds a %<width>.<precision> with a number above 999.
func hasHugeWidth(f string) bool {
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			continue
		}
		digits := 0
		for j := i + 1; j < len(f); j++ {
			c := f[j]
			switch {
			case c >= '0' && c <= '9':
				digits++
				if digits > 3 {
					return true
				}
			case c == '.' || c == '-' || c == '+' || c == ' ' || c == '#':
				digits = 0
			default:
				j = len(f)
			}
		}
	}
	return false
}

// quantifiers counts the pattern items that backtrack.
func quantifiers(p string) int {
	n := 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '%':
			i++ // an escaped character is literal
		case '*', '+', '-', '?':
			n++
		}
	}
	return n
}

// memoryGuard watches the heap and stops the scripts running Lua (not the
// ones waiting in a host call) when it crosses the limit: the culprit is
// among them, and stopping a few runs beats losing the process.
//
// The reading counts garbage not yet swept too. So that a heap holding
// mostly garbage stops nobody — the garbage of a stopped bomb, or a high
// GOGC letting it pile up — the guard also gives the runtime a soft memory
// limit a little below its own (debug.SetMemoryLimit): the collector then
// runs as the heap nears the guard's limit, and what still crosses it is
// live. A lower limit already set (GOMEMLIMIT) is kept.
type memoryGuard struct {
	max  uint64
	mu   sync.Mutex
	runs map[*run]struct{}
	stop chan struct{}
	once sync.Once
}

func newMemoryGuard(max uint64) *memoryGuard {
	g := &memoryGuard{max: max, runs: map[*run]struct{}{}, stop: make(chan struct{})}
	softLimits.open(g)
	go g.watch()
	return g
}

func (g *memoryGuard) add(r *run) {
	g.mu.Lock()
	g.runs[r] = struct{}{}
	g.mu.Unlock()
}

func (g *memoryGuard) remove(r *run) {
	g.mu.Lock()
	delete(g.runs, r)
	g.mu.Unlock()
}

func (g *memoryGuard) close() {
	g.once.Do(func() {
		close(g.stop)
		softLimits.close(g)
	})
}

func (g *memoryGuard) watch() {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 || sample[0].Value.Uint64() < g.max {
			continue
		}
		g.mu.Lock()
		for r := range g.runs {
			if r.runningLua() {
				r.cancel(errMemory)
			}
		}
		g.mu.Unlock()
	}
}

// softLimit is the runtime's soft memory limit for a guard's limit: the
// collector works to keep all of the runtime's memory (the heap and what
// it needs besides) below it, a tenth under the guard's.
func softLimit(max uint64) int64 { return int64(min(max-max/10, math.MaxInt64)) }

// softLimits keeps the runtime's soft memory limit at the lowest of the
// open guards' (one per sandbox; a process usually has one), and gives
// back the limit found once the last guard closes.
var softLimits = &guards{live: map[*memoryGuard]struct{}{}}

type guards struct {
	mu    sync.Mutex
	live  map[*memoryGuard]struct{}
	found int64 // the limit before the first guard
}

func (gs *guards) open(g *memoryGuard) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if len(gs.live) == 0 {
		gs.found = debug.SetMemoryLimit(-1)
	}
	gs.live[g] = struct{}{}
	gs.apply()
}

func (gs *guards) close(g *memoryGuard) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	delete(gs.live, g)
	if len(gs.live) == 0 {
		debug.SetMemoryLimit(gs.found)
		return
	}
	gs.apply()
}

func (gs *guards) apply() {
	limit := gs.found
	for g := range gs.live {
		limit = min(limit, softLimit(g.max))
	}
	debug.SetMemoryLimit(limit)
}
