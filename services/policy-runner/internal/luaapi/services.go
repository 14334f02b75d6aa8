package luaapi

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	lua "github.com/yuin/gopher-lua"
)

var (
	queueNameRE = regexp.MustCompile(`^[A-Za-z0-9_\-.]{1,64}$`)
	pushUserRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_@-]{0,63}$`)
	kvKeyRE     = regexp.MustCompile(`^[\x21-\x7e]{1,128}$`)
)

// MaxKVValue is the largest value kv.set stores: the bucket is for small
// state (a counter, a last-seen time, a flag), not documents.
const MaxKVValue = 4 << 10

// maxSkills bounds the skills one caller may ask for (the distributor's
// own limit).
const maxSkills = 32

// queueTable is queue.enqueue(name, {priority, skills, timeout}).
func (a *api) queueTable(L *lua.LState) *lua.LTable {
	t := L.NewTable()
	L.SetField(t, "enqueue", host(L, func(L *lua.LState) int {
		name := L.CheckString(1)
		if !queueNameRE.MatchString(name) {
			L.ArgError(1, "a queue name is 1-64 letters, digits, _ - or .")
		}
		req := EnqueueRequest{Queue: name}
		if o, ok := L.Get(2).(*lua.LTable); ok {
			req.Priority = optInt(L, o, "priority", 0)
			if secs := optInt(L, o, "timeout", 0); secs > 0 {
				req.Timeout = time.Duration(secs) * time.Second
			}
			if sk, ok := L.GetField(o, "skills").(*lua.LTable); ok {
				req.Skills = skillsArg(L, sk)
			}
		}
		a.trace("queue.enqueue", name)
		if a.env.Queue == nil {
			L.RaiseError("queue.enqueue: %v: no queue-distributor in this run", ErrNotAvailable)
		}
		res, err := a.env.Queue.Enqueue(a.env.Ctx, a.env.Call, req)
		if err != nil {
			fail(L, "queue.enqueue", err)
		}
		out := L.CreateTable(0, 5)
		out.RawSetString("outcome", lua.LString(res.Outcome))
		out.RawSetString("agent", lua.LString(res.Agent))
		out.RawSetString("wait_seconds", lua.LNumber(res.WaitSeconds))
		if res.Digit != "" {
			out.RawSetString("digit", lua.LString(res.Digit))
		}
		if res.Target != "" {
			out.RawSetString("target", lua.LString(res.Target))
		}
		L.Push(out)
		return 1
	}))
	return t
}

// skillsArg reads queue.enqueue's skills: a list of names ({"french"},
// any level will do) or names with the lowest level wanted ({french = 3});
// both may be mixed.
func skillsArg(L *lua.LState, t *lua.LTable) map[string]int {
	out := map[string]int{}
	bad := ""
	t.ForEach(func(k, v lua.LValue) {
		if bad != "" {
			return
		}
		switch {
		case len(out) >= maxSkills:
			bad = fmt.Sprintf("at most %d skills", maxSkills)
		case k.Type() == lua.LTNumber && v.Type() == lua.LTString:
			out[v.String()] = max(out[v.String()], 0)
		case k.Type() == lua.LTString && v.Type() == lua.LTNumber:
			out[k.String()] = int(v.(lua.LNumber))
		default:
			bad = fmt.Sprintf("skills: want {\"name\", …} or {name = level}, got %s = %s", k.Type(), v.Type())
		}
	})
	if bad != "" {
		L.ArgError(2, bad)
	}
	return out
}

// kvTable is kv.get / kv.set / kv.delete on the tenant's small state.
func (a *api) kvTable(L *lua.LState) *lua.LTable {
	t := L.NewTable()
	key := func(L *lua.LState, what string) string {
		k := L.CheckString(1)
		if !kvKeyRE.MatchString(k) {
			L.ArgError(1, what+": a key is 1-128 printable ASCII characters without spaces")
		}
		if a.env.KV == nil {
			L.RaiseError("%s: %v: no state store in this run", what, ErrNotAvailable)
		}
		return k
	}
	L.SetField(t, "get", host(L, func(L *lua.LState) int {
		k := key(L, "kv.get")
		v, ok, err := a.env.KV.Get(a.env.Ctx, k)
		if err != nil {
			fail(L, "kv.get", err)
		}
		if !ok {
			L.Push(lua.LNil)
		} else {
			L.Push(lua.LString(v))
		}
		return 1
	}))
	L.SetField(t, "set", host(L, func(L *lua.LState) int {
		k := key(L, "kv.set")
		v := L.CheckString(2)
		if len(v) > MaxKVValue {
			L.ArgError(2, fmt.Sprintf("kv.set: a value is at most %d bytes", MaxKVValue))
		}
		a.trace("kv.set", k)
		if err := a.env.KV.Set(a.env.Ctx, k, v); err != nil {
			fail(L, "kv.set", err)
		}
		return 0
	}))
	L.SetField(t, "delete", host(L, func(L *lua.LState) int {
		k := key(L, "kv.delete")
		a.trace("kv.delete", k)
		if err := a.env.KV.Delete(a.env.Ctx, k); err != nil {
			fail(L, "kv.delete", err)
		}
		return 0
	}))
	return t
}

// scheduleTable is schedule.is_open(name[, unix_time]).
func (a *api) scheduleTable(L *lua.LState) *lua.LTable {
	t := L.NewTable()
	L.SetField(t, "is_open", L.NewFunction(func(L *lua.LState) int {
		name := L.CheckString(1)
		at := a.now()
		if L.GetTop() >= 2 && L.Get(2) != lua.LNil {
			at = time.Unix(int64(L.CheckNumber(2)), 0)
		}
		if a.env.Schedules == nil {
			L.RaiseError("schedule.is_open: %v: no schedules are configured", ErrNotAvailable)
		}
		open, err := a.env.Schedules.IsOpen(name, at)
		if err != nil {
			fail(L, "schedule.is_open", err)
		}
		L.Push(lua.LBool(open))
		return 1
	}))
	return t
}

// Bounds of push.notify, the push-notifier's own.
const (
	maxPushTitle    = 256
	maxPushBody     = 1024
	maxPushCollapse = 64
	maxPushData     = 2048
	maxPushTTL      = 24 * 60 * 60
)

// pushTable is push.notify{user, type, title, body, ttl, collapse_id,
// data}: it returns the request id once the request is stored.
func (a *api) pushTable(L *lua.LState) *lua.LTable {
	t := L.NewTable()
	L.SetField(t, "notify", host(L, func(L *lua.LState) int {
		o := L.CheckTable(1)
		req := PushRequest{User: optStr(L, o, "user", ""), Type: optStr(L, o, "type", "voip"),
			Title: optStr(L, o, "title", ""), Body: optStr(L, o, "body", ""), CollapseID: optStr(L, o, "collapse_id", "")}
		switch {
		case !pushUserRE.MatchString(req.User):
			L.ArgError(1, "push.notify: user is 1-64 letters, digits, _ @ or -, starting with a letter or digit")
		case req.Type != "voip" && req.Type != "alert":
			L.ArgError(1, fmt.Sprintf("push.notify: type %q: want voip or alert", req.Type))
		case len(req.Title) > maxPushTitle || len(req.Body) > maxPushBody || len(req.CollapseID) > maxPushCollapse:
			L.ArgError(1, fmt.Sprintf("push.notify: title, body and collapse_id are at most %d, %d and %d bytes", maxPushTitle, maxPushBody, maxPushCollapse))
		}
		if secs := optInt(L, o, "ttl", 0); secs < 0 || secs > maxPushTTL {
			L.ArgError(1, fmt.Sprintf("push.notify: ttl %d: want 0..%d seconds", secs, maxPushTTL))
		} else {
			req.TTL = time.Duration(secs) * time.Second
		}
		if d, ok := L.GetField(o, "data").(*lua.LTable); ok {
			m, ok := toGo(d, 0).(map[string]any)
			if b, _ := json.Marshal(m); !ok || len(b) > maxPushData {
				L.ArgError(1, fmt.Sprintf("push.notify: data is a table of named fields, at most %d bytes as JSON", maxPushData))
			}
			req.Data = m
		}
		a.pushes++
		if a.env.Call.CallID != "" {
			req.ID = fmt.Sprintf("%s.%d", a.env.Call.CallID, a.pushes)
		}
		a.trace("push.notify", req.User+" "+req.Type)
		if a.env.Push == nil {
			L.RaiseError("push.notify: %v: no push-notifier in this run", ErrNotAvailable)
		}
		id, err := a.env.Push.Notify(a.env.Ctx, a.env.Call, req)
		if err != nil {
			fail(L, "push.notify", err)
		}
		L.Push(lua.LString(id))
		return 1
	}))
	return t
}

// Bounds of connector.query (the connector-proxy refuses beyond them too).
const (
	DefaultConnectorTimeout = 2 * time.Second
	MaxConnectorTimeout     = 10 * time.Second
	maxConnectorQuery       = 16 << 10
	maxConnectorList        = 100
)

// connectorTable is connector.query{connector, query, params, op, object,
// id, fields, values, timeout}: the result as a table, or an error the
// policy pcalls to take its fallback.
func (a *api) connectorTable(L *lua.LState) *lua.LTable {
	t := L.NewTable()
	L.SetField(t, "query", host(L, func(L *lua.LState) int {
		o := L.CheckTable(1)
		q := ConnectorQuery{Connector: optStr(L, o, "connector", ""), Op: optStr(L, o, "op", ""), Query: optStr(L, o, "query", ""),
			Object: optStr(L, o, "object", ""), ID: optStr(L, o, "id", "")}
		if q.Connector == "" {
			L.ArgError(1, "connector.query: connector (its name) is required")
		}
		if len(q.Query) > maxConnectorQuery {
			L.ArgError(1, fmt.Sprintf("connector.query: query is at most %d bytes", maxConnectorQuery))
		}
		ms := optInt(L, o, "timeout", int(DefaultConnectorTimeout/time.Millisecond))
		if ms <= 0 || time.Duration(ms)*time.Millisecond > MaxConnectorTimeout {
			L.ArgError(1, fmt.Sprintf("connector.query: timeout %d: want 1..%d ms", ms, MaxConnectorTimeout/time.Millisecond))
		}
		q.Timeout = time.Duration(ms) * time.Millisecond
		named := func(k string) map[string]any {
			v, ok := L.GetField(o, k).(*lua.LTable)
			if !ok {
				return nil
			}
			m, ok := toGo(v, 0).(map[string]any)
			if !ok {
				L.ArgError(1, "connector.query: "+k+" is a table of named values")
			}
			return m
		}
		q.Params, q.Values = named("params"), named("values")
		if f, ok := L.GetField(o, "fields").(*lua.LTable); ok {
			for i := 1; i <= f.Len() && i <= maxConnectorList; i++ {
				q.Fields = append(q.Fields, lua.LVAsString(f.RawGetInt(i)))
			}
		}
		a.trace("connector.query", q.Connector+" "+q.Query)
		if a.env.Connector == nil {
			L.RaiseError("connector.query: %v: no connector-proxy in this run", ErrNotAvailable)
		}
		res, err := a.env.Connector.Query(a.env.Ctx, a.env.Call, q)
		if err != nil {
			fail(L, "connector.query", err)
		}
		L.Push(fromGo(L, res))
		return 1
	}))
	return t
}
