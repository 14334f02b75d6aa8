package sandbox

import (
	"context"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Pool keeps Lua states with the safe libraries and a host API installed,
// and hands them from run to run: making a state and its API is most of
// the cost of a short policy. A state is given back only after a clean run,
// restored to exactly what it was when made — every table reachable from
// its globals (libraries, the API, their metatables) gets its own fields
// and metatable back — so nothing one call's script does is seen by the
// next. A run that fails for any reason closes its state instead.
type Pool[T any] struct {
	sb      *Sandbox
	libDir  string
	install func(L *lua.LState) func(T)
	idle    chan *pooled[T]
}

type pooled[T any] struct {
	*state
	bind  func(T)
	snap  snapshot
	added int
}

// maxAddedKeys is how many global or library keys a pooled state's runs may
// add, all told, before the state is retired (see restore).
const maxAddedKeys = 4096

// NewPool makes a pool. install adds the host API to a new state and
// returns its binder, called with each run's data before the run and with
// the zero T after it (so a pooled state keeps no run's data alive).
// maxIdle bounds the states kept between runs.
func NewPool[T any](sb *Sandbox, libDir string, maxIdle int, install func(L *lua.LState) func(T)) *Pool[T] {
	if maxIdle <= 0 {
		maxIdle = 64
	}
	return &Pool[T]{sb: sb, libDir: libDir, install: install, idle: make(chan *pooled[T], maxIdle)}
}

// Run executes prog with data bound to the API and returns its results as
// strings (tostring of each). clock is the run's os.time/os.date (nil:
// time.Now).
func (p *Pool[T]) Run(ctx context.Context, prog *Program, data T, clock func() time.Time) ([]string, error) {
	st := p.get()
	st.bind(data)
	n, err := p.sb.exec(ctx, st.state, prog, clock)
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, st.L.ToStringMeta(st.L.Get(i)).String())
	}
	var zero T
	st.bind(zero)
	if err != nil || ctx.Err() != nil {
		st.L.Close()
		return out, err
	}
	st.L.SetTop(0)
	if st.added += st.snap.restore(); st.added > maxAddedKeys {
		st.L.Close()
		return out, nil
	}
	select {
	case p.idle <- st:
	default:
		st.L.Close()
	}
	return out, nil
}

func (p *Pool[T]) get() *pooled[T] {
	select {
	case st := <-p.idle:
		return st
	default:
	}
	st := &pooled[T]{state: p.sb.newState(p.libDir)}
	st.bind = p.install(st.L)
	st.snap = takeSnapshot(st.L)
	return st
}

// Close drops the idle states.
func (p *Pool[T]) Close() {
	for {
		select {
		case st := <-p.idle:
			st.L.Close()
		default:
			return
		}
	}
}

// snapshot is every table reachable from a state's globals with its fields
// and metatable as they were.
type snapshot []savedTable

type savedTable struct {
	t     *lua.LTable
	skeys []string // string keys, the common case, looked up without hashing an interface
	svals []lua.LValue
	okeys []lua.LValue
	ovals []lua.LValue
	meta  lua.LValue
}

func (st *savedTable) has(k lua.LValue) bool {
	if s, ok := k.(lua.LString); ok {
		for _, x := range st.skeys {
			if x == string(s) {
				return true
			}
		}
		return false
	}
	for _, x := range st.okeys {
		if x == k {
			return true
		}
	}
	return false
}

func takeSnapshot(L *lua.LState) snapshot {
	var snap snapshot
	seen := map[*lua.LTable]bool{}
	var walk func(v lua.LValue)
	walk = func(v lua.LValue) {
		switch x := v.(type) {
		case *lua.LTable:
			if seen[x] {
				return
			}
			seen[x] = true
			st := savedTable{t: x, meta: x.Metatable}
			x.ForEach(func(k, v lua.LValue) {
				if s, ok := k.(lua.LString); ok {
					st.skeys = append(st.skeys, string(s))
					st.svals = append(st.svals, v)
				} else {
					st.okeys = append(st.okeys, k)
					st.ovals = append(st.ovals, v)
				}
			})
			snap = append(snap, st)
			for _, v := range st.svals {
				walk(v)
			}
			for _, v := range st.ovals {
				walk(v)
			}
			walk(x.Metatable)
		case *lua.LUserData:
			walk(x.Metatable)
		}
	}
	walk(L.G.Global)
	walk(L.GetMetatable(lua.LString("")))
	return snap
}

// restore puts every saved table back as it was: fields the run added are
// removed, changed ones reset, the metatable re-set. It returns how many
// fields the run had added: gopher-lua keeps a slot for every key a table
// has ever held, so a state whose runs add many keys is retired rather than
// left to grow. Most runs change only a few globals, so the common path
// only counts each table's entries and compares the saved ones.
func (snap snapshot) restore() (added int) {
	var extra []lua.LValue
	for i := range snap {
		st := &snap[i]
		for j, k := range st.skeys {
			if st.t.RawGetString(k) != st.svals[j] {
				st.t.RawSetString(k, st.svals[j])
			}
		}
		for j, k := range st.okeys {
			if st.t.RawGet(k) != st.ovals[j] {
				st.t.RawSet(k, st.ovals[j])
			}
		}
		st.t.Metatable = st.meta
		// Every saved key is back; if the count matches there is nothing
		// else.
		n := 0
		st.t.ForEach(func(lua.LValue, lua.LValue) { n++ })
		if n == len(st.skeys)+len(st.okeys) {
			continue
		}
		extra = extra[:0]
		st.t.ForEach(func(k, _ lua.LValue) {
			if !st.has(k) {
				extra = append(extra, k)
			}
		})
		for _, k := range extra {
			st.t.RawSet(k, lua.LNil)
		}
		added += len(extra)
	}
	return added
}

// Names is what a script can reach by name: every global, and for the
// global tables their fields, for global userdata their methods.
type Names struct {
	Globals map[string]bool
	Fields  map[string]map[string]bool
	Methods map[string]map[string]bool
}

// Names lists what a state with the safe libraries and install's API
// offers, for checking a script's use of the API before it runs.
func (s *Sandbox) Names(install func(L *lua.LState)) Names {
	st := s.newState("x") // require is offered whenever a library is configured
	defer st.L.Close()
	if install != nil {
		install(st.L)
	}
	n := Names{Globals: map[string]bool{}, Fields: map[string]map[string]bool{}, Methods: map[string]map[string]bool{}}
	keys := func(t *lua.LTable) map[string]bool {
		m := map[string]bool{}
		t.ForEach(func(k, _ lua.LValue) {
			if s, ok := k.(lua.LString); ok {
				m[string(s)] = true
			}
		})
		return m
	}
	st.L.G.Global.ForEach(func(k, v lua.LValue) {
		name, ok := k.(lua.LString)
		if !ok {
			return
		}
		n.Globals[string(name)] = true
		switch x := v.(type) {
		case *lua.LTable:
			n.Fields[string(name)] = keys(x)
		case *lua.LUserData:
			if mt, ok := x.Metatable.(*lua.LTable); ok {
				if idx, ok := mt.RawGetString("__index").(*lua.LTable); ok {
					n.Methods[string(name)] = keys(idx)
				}
			}
		}
	})
	return n
}
