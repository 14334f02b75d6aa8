package sandbox

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// testAPI is a host API like the policy API: a table of functions and a
// userdata with methods, bound to each run's data.
func testAPI(L *lua.LState) func(string) {
	var current string
	api := L.NewTable()
	L.SetField(api, "whoami", L.NewFunction(func(L *lua.LState) int { L.Push(lua.LString(current)); return 1 }))
	L.SetGlobal("api", api)
	ud := L.NewUserData()
	mt := L.NewTable()
	methods := L.NewTable()
	L.SetField(methods, "hello", L.NewFunction(func(L *lua.LState) int { L.Push(lua.LString("hello")); return 1 }))
	L.SetField(mt, "__index", methods)
	L.SetMetatable(ud, mt)
	L.SetGlobal("session", ud)
	return func(s string) { current = s }
}

func poolRun(t *testing.T, p *Pool[string], src, data string) ([]string, error) {
	t.Helper()
	prog, err := Compile("t", src, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Run(context.Background(), prog, data, nil)
}

// Whatever one run does to the globals, the libraries, the API and their
// metatables, the next run on the same pooled state sees none of it.
func TestPoolRunsDoNotSeeEachOther(t *testing.T) {
	sb := New(Limits{})
	defer sb.Close()
	p := NewPool(sb, "testdata/lib", 1, testAPI)
	defer p.Close()
	vandal := `
leaked = "yes"
string.upper = function() return "pwned" end
string.extra = 1
table.insert = nil
math.pi = 3
os.time = function() return 0 end
api.whoami = function() return "someone else" end
getmetatable(session).__index.hello = function() return "pwned" end
getmetatable("").__index = {len = function() return -1 end}
setmetatable(_G, {__index = function() return "ghost" end})
for i = 1, 100 do _G["junk" .. i] = i end
return api.whoami()`
	out, err := poolRun(t, p, vandal, "first")
	if err != nil || len(out) != 1 || out[0] != "someone else" {
		t.Fatalf("vandal run: %v %v", out, err)
	}
	check := `
assert(leaked == nil, "a global leaked")
assert(string.upper("a") == "A", "string.upper leaked")
assert(string.extra == nil, "a library field leaked")
assert(table.insert ~= nil, "a removed library function stayed removed")
assert(math.pi > 3.14, "math.pi leaked")
assert(os.time() > 1000, "os.time leaked")
assert(session:hello() == "hello", "a method leaked")
assert(("abc"):len() == 3, "the string metatable leaked")
assert(getmetatable(_G) == nil, "the globals' metatable leaked")
assert(junk1 == nil and nowhere == nil, "globals leaked")
return api.whoami()`
	for _, who := range []string{"second", "third"} {
		out, err := poolRun(t, p, check, who)
		if err != nil || len(out) != 1 || out[0] != who {
			t.Fatalf("run %s on the reused state: %v %v", who, out, err)
		}
	}
}

// A run that fails does not give its state back: a broken state (a
// coroutine left mid-flight, a stopped loop) is never reused.
func TestPoolRetiresFailedStates(t *testing.T) {
	sb := New(Limits{Slice: 50 * time.Millisecond})
	defer sb.Close()
	p := NewPool(sb, "", 1, testAPI)
	defer p.Close()
	_, err := poolRun(t, p, `while true do end`, "x")
	var se *Error
	if !errors.As(err, &se) || se.Limit != LimitSlice {
		t.Fatalf("endless loop: %v", err)
	}
	if len(p.idle) != 0 {
		t.Fatal("the failed run's state went back to the pool")
	}
	if _, err := poolRun(t, p, `return 1`, "x"); err != nil {
		t.Fatal(err)
	}
	if len(p.idle) != 1 {
		t.Fatalf("a clean run's state was not kept (idle %d)", len(p.idle))
	}
}

// A state whose runs keep adding new keys is retired before gopher-lua's
// per-key bookkeeping grows without bound.
func TestPoolRetiresStatesThatGrow(t *testing.T) {
	sb := New(Limits{})
	defer sb.Close()
	p := NewPool(sb, "", 1, testAPI)
	defer p.Close()
	first := func() *pooled[string] {
		st := <-p.idle
		p.idle <- st
		return st
	}
	poolRun(t, p, `return 1`, "x")
	st := first()
	for i := 0; i*1000 <= maxAddedKeys; i++ {
		if _, err := poolRun(t, p, `for i = 1, 1000 do _G["k" .. i .. "_`+strings.Repeat("x", i)+`"] = i end`, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if len(p.idle) == 1 && first() == st {
		t.Fatal("the state that took thousands of new keys is still pooled")
	}
}

// The pool gives every run its own clock and random numbers: a fixed clock
// makes os.time, os.date and math.random repeat exactly.
func TestPoolClockAndRandomAreTheRunsOwn(t *testing.T) {
	sb := New(Limits{})
	defer sb.Close()
	p := NewPool(sb, "", 4, testAPI)
	defer p.Close()
	prog, _ := Compile("t", `return os.time(), os.date("!%Y-%m-%d %H:%M"), math.random(1, 1000000), math.random()`, Limits{})
	at := time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)
	clock := func() time.Time { return at }
	a, err := p.Run(context.Background(), prog, "x", clock)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := p.Run(context.Background(), prog, "x", clock)
	if strings.Join(a, "|") != strings.Join(b, "|") || a[0] != "1795426200" || a[1] != "2026-11-23 09:30" {
		t.Fatalf("same clock, different runs: %v vs %v", a, b)
	}
	c, _ := p.Run(context.Background(), prog, "x", func() time.Time { return at.Add(time.Second) })
	if c[2] == a[2] && c[3] == a[3] {
		t.Fatalf("another clock drew the same random numbers: %v", c)
	}
	if _, err := poolRun(t, p, `return math.random(0)`, "x"); err == nil || !strings.Contains(err.Error(), "interval is empty") {
		t.Fatalf("math.random(0): %v", err)
	}
}

// The hostile scripts are contained in pooled states too, and after each
// one the pool still serves a clean run with pristine libraries.
func TestHostileScriptsAreContainedInThePool(t *testing.T) {
	lim := testLimits()
	sb := New(lim)
	defer sb.Close()
	p := NewPool(sb, "testdata/lib", 2, testAPI)
	defer p.Close()
	sane, _ := Compile("sane", `assert(string.rep("a", 3) == "aaa" and getmetatable("").__index == string and next(_G, nil) ~= nil)
for k in pairs(_G) do assert(type(k) == "string") end
return api.whoami()`, Limits{})
	for _, h := range hostileScripts(t) {
		name := h.name
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			peak := watchHeap()
			out, err := p.Run(ctx, h.prog, name, nil)
			first := ""
			if len(out) > 0 {
				first = out[0]
			}
			h.check(t, first, len(out) > 0, err)
			checkPeak(t, peak(), lim)
			for range 2 { // both pooled states
				out, err := p.Run(context.Background(), sane, "clean", nil)
				if err != nil || len(out) != 1 || out[0] != "clean" {
					t.Fatalf("the pool after %s: %v %v", name, out, err)
				}
			}
		})
	}
}
