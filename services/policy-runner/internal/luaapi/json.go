package luaapi

import (
	"encoding/json"
	"sort"

	lua "github.com/yuin/gopher-lua"
)

// jsonTable is json.encode(value) and json.decode(text).
func jsonTable(L *lua.LState) *lua.LTable {
	t := L.NewTable()
	L.SetField(t, "encode", L.NewFunction(func(L *lua.LState) int {
		b, err := json.Marshal(toGo(L.CheckAny(1), 0))
		if err != nil {
			L.RaiseError("json.encode: %v", err)
		}
		L.Push(lua.LString(b))
		return 1
	}))
	L.SetField(t, "decode", L.NewFunction(func(L *lua.LState) int {
		var v any
		if err := json.Unmarshal([]byte(L.CheckString(1)), &v); err != nil {
			L.Push(lua.LNil)
			L.Push(lua.LString("json.decode: " + err.Error()))
			return 2
		}
		L.Push(fromGo(L, v))
		return 1
	}))
	return t
}

// toGo converts a Lua value; tables with keys 1..n become arrays. Depth is
// bounded so a self-referencing table cannot loop.
func toGo(v lua.LValue, depth int) any {
	if depth > 32 {
		return nil
	}
	switch x := v.(type) {
	case lua.LString:
		return string(x)
	case lua.LNumber:
		return float64(x)
	case lua.LBool:
		return bool(x)
	case *lua.LTable:
		if n := x.Len(); n > 0 {
			arr := make([]any, 0, n)
			for i := 1; i <= n; i++ {
				arr = append(arr, toGo(x.RawGetInt(i), depth+1))
			}
			return arr
		}
		m := map[string]any{}
		x.ForEach(func(k, val lua.LValue) { m[k.String()] = toGo(val, depth+1) })
		return m
	}
	return nil
}

func fromGo(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case string:
		return lua.LString(x)
	case float64:
		return lua.LNumber(x)
	case bool:
		return lua.LBool(x)
	case []any:
		t := L.NewTable()
		for _, e := range x {
			t.Append(fromGo(L, e))
		}
		return t
	case map[string]any:
		t := L.NewTable()
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			L.SetField(t, k, fromGo(L, x[k]))
		}
		return t
	}
	return lua.LNil
}
