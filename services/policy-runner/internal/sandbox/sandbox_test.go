package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// testLimits keep hostile runs short and the memory guard close to the
// heap the test starts with.
func testLimits() Limits {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	return Limits{Slice: 100 * time.Millisecond, MaxHeapBytes: sample[0].Value.Uint64() + 256<<20}
}

// hostile is a script of testdata/hostile and how it must end: its first
// line names the limit ("-- want: cpu_slice", "memory|cpu_slice") or what
// it returns ("ok:<text>").
type hostile struct {
	name, want string
	prog       *Program
}

func hostileScripts(t *testing.T) []hostile {
	t.Helper()
	files, _ := filepath.Glob("testdata/hostile/*.lua")
	if len(files) < 25 {
		t.Fatalf("%d hostile scripts, want at least 25", len(files))
	}
	var out []hostile
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".lua")
		src, _ := os.ReadFile(f)
		first, _, _ := strings.Cut(string(src), "\n")
		prog, err := Compile(name, string(src), Limits{})
		if err != nil {
			t.Fatalf("compile %s: %v", name, err)
		}
		out = append(out, hostile{name, strings.TrimSpace(strings.TrimPrefix(first, "-- want:")), prog})
	}
	return out
}

// check fails t unless a run that returned first (when returned) and err
// ended as h wants.
func (h hostile) check(t *testing.T, first string, returned bool, err error) {
	t.Helper()
	if text, ok := strings.CutPrefix(h.want, "ok:"); ok {
		if err != nil || !returned || !strings.Contains(first, text) {
			t.Fatalf("want it to return %q, got %q %v", text, first, err)
		}
		return
	}
	var se *Error
	if !errors.As(err, &se) {
		t.Fatalf("want a sandbox error %s, got %v (%q)", h.want, err, first)
	}
	if !contains(strings.Split(h.want, "|"), se.Limit) {
		t.Fatalf("stopped by %s (%s), want %s", se.Limit, se.Message, h.want)
	}
}

// Every script in testdata/hostile is contained: it ends as its first line
// says, and the sandbox goes on working.
func TestHostileScriptsAreContained(t *testing.T) {
	before := runtime.NumGoroutine()
	lim := testLimits()
	sb := New(lim)
	defer sb.Close()
	for _, h := range hostileScripts(t) {
		t.Run(h.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			peak := watchHeap()
			out, err := sb.Run(ctx, h.prog, Env{LibDir: "testdata/lib"})
			first := ""
			if len(out) > 0 {
				first = out[0].String()
			}
			h.check(t, first, len(out) > 0, err)
			checkPeak(t, peak(), lim)
		})
	}
	// Nothing of the hostile runs is left running.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		t.Fatalf("goroutines: %d before, %d after", before, n)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// While one script spins, others run: a policy never blocks another.
func TestSpinningScriptDoesNotBlockOthers(t *testing.T) {
	sb := New(Limits{Slice: 2 * time.Second})
	defer sb.Close()
	spin, _ := Compile("spin", "while true do end", Limits{})
	quick, _ := Compile("quick", "local s = 0 for i = 1, 1000 do s = s + i end return s", Limits{})
	spinDone := make(chan error, 1)
	go func() {
		_, err := sb.Run(context.Background(), spin, Env{})
		spinDone <- err
	}()
	out, err := sb.Run(context.Background(), quick, Env{})
	if err != nil || out[0].String() != "500500" {
		t.Fatalf("quick run: %v %v", out, err)
	}
	select {
	case <-spinDone:
		t.Fatal("the spinning script ended before the quick one; the test proves nothing")
	default:
	}
	var se *Error
	if err := <-spinDone; !errors.As(err, &se) || se.Limit != LimitSlice {
		t.Fatalf("spin: %v", err)
	}
}

// Time spent in host functions (waiting for the call) does not count
// against the CPU slice.
func TestHostCallsPauseTheSlice(t *testing.T) {
	sb := New(Limits{Slice: 50 * time.Millisecond})
	defer sb.Close()
	prog, _ := Compile("wait", "for i = 1, 3 do wait() end return 'done'", Limits{})
	wait := Host(func(L *lua.LState) int { time.Sleep(40 * time.Millisecond); return 0 })
	_, err := sb.Run(context.Background(), prog, Env{Globals: map[string]lua.LValue{"wait": lua.LNil}})
	if err == nil {
		t.Fatal("wait was nil: the run should have failed")
	}
	L := lua.NewState()
	defer L.Close()
	out, err := sb.Run(context.Background(), prog, Env{Globals: map[string]lua.LValue{"wait": L.NewFunction(wait)}})
	if err != nil || out[0].String() != "done" {
		t.Fatalf("120 ms of waiting under a 50 ms slice: %v %v", out, err)
	}
}

func TestSafeLibrariesWork(t *testing.T) {
	sb := New(Limits{})
	defer sb.Close()
	src := `
local g = require("greeting")
local t = os.date("*t", 0)
local parts = {}
for w in ("a,b,c"):gmatch("[^,]+") do parts[#parts + 1] = w end
return g.greet("caller"), string.format("%03d", 7), table.concat(parts, "|"), math.max(1, 5), type(os.time()), t.year >= 1970, load("return 1 + 1")()`
	prog, err := Compile("ok", src, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := sb.Run(context.Background(), prog, Env{LibDir: "testdata/lib"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range out {
		got = append(got, v.String())
	}
	if strings.Join(got, " ") != "hello caller 007 a|b|c 5 number true 2" {
		t.Fatalf("got %v", got)
	}
}

func TestCompileErrors(t *testing.T) {
	if _, err := Compile("bad", "local x = \nif then", Limits{}); !isLimit(err, LimitSyntax) {
		t.Fatalf("syntax: %v", err)
	}
	if _, err := Compile("big", strings.Repeat("-- x\n", 100000), Limits{}); !isLimit(err, LimitSource) {
		t.Fatalf("size: %v", err)
	}
	if _, err := Compile("bytecode", "\x1bLuaQ\x00", Limits{}); !isLimit(err, LimitSyntax) {
		t.Fatalf("bytecode: %v", err)
	}
	prog, _ := Compile("runtime", "local x = nil\nreturn x.y", Limits{})
	sb := New(Limits{})
	defer sb.Close()
	_, err := sb.Run(context.Background(), prog, Env{})
	var se *Error
	if !errors.As(err, &se) || se.Limit != LimitRuntime || se.Line != 2 {
		t.Fatalf("runtime error with its line: %+v", err)
	}
}

func isLimit(err error, limit string) bool {
	var se *Error
	return errors.As(err, &se) && se.Limit == limit
}

// watchHeap samples the heap every millisecond until the function it
// returns is called, which returns the highest reading.
func watchHeap() (peak func() uint64) {
	var top uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			top = max(top, sample[0].Value.Uint64())
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(stop); <-done; return top }
}

// checkPeak fails t when the heap went far past the guard's limit: one
// allocation may overshoot it (a string doubling), a guard that lets a
// bomb go on does more.
func checkPeak(t *testing.T, peak uint64, lim Limits) {
	t.Helper()
	if peak >= 2*lim.MaxHeapBytes {
		t.Fatalf("the heap reached %d MiB; the guard's limit is %d MiB", peak>>20, lim.MaxHeapBytes>>20)
	}
}

// The memory guard stops scripts when the process's live memory runs
// out, not when the heap holds garbage the collector has yet to sweep:
// with collections left to the memory limit alone (as with GOGC=off, or
// a high GOGC), a script making far more garbage than the limit runs to
// its end.
func TestGarbageDoesNotStopScripts(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	runtime.GC()
	lim := testLimits()
	lim.MaxHeapBytes -= 192 << 20 // 64 MiB above the heap the test starts with
	lim.Slice = 5 * time.Second
	sb := New(lim)
	defer sb.Close()
	// 256 MiB of strings, each garbage at once: four times the room left.
	prog, _ := Compile("garbage", `local n = 0
for i = 1, 512 do n = n + #string.rep("x", 524288) end
return n`, Limits{})
	out, err := sb.Run(context.Background(), prog, Env{})
	if err != nil || len(out) != 1 || out[0].String() != "268435456" {
		t.Fatalf("a script making garbage: %v %v", out, err)
	}
}
