package luaapi

import (
	"fmt"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// sessionObject is mod_lua's `session` for the policy's call: the methods
// FreeSWITCH IVR scripts use, mapped onto CallControl.
func (a *api) sessionObject(L *lua.LState) *lua.LUserData {
	ud := L.NewUserData()
	mt := L.NewTable()
	methods := L.NewTable()
	method := func(name string, fn lua.LGFunction) {
		L.SetField(methods, name, host(L, func(L *lua.LState) int {
			if _, ok := L.Get(1).(*lua.LUserData); !ok {
				L.RaiseError("session:%s must be called with ':'", name)
			}
			return fn(L)
		}))
	}
	exec := func(L *lua.LState, app, arg string, vars ...string) Result {
		return a.exec(L, "session:"+app, app, arg, vars...)
	}
	method("answer", func(L *lua.LState) int { exec(L, "answer", ""); return 0 })
	method("preAnswer", func(L *lua.LState) int { exec(L, "pre_answer", ""); return 0 })
	method("hangup", func(L *lua.LState) int {
		cause := L.OptString(2, "NORMAL_CLEARING")
		a.trace("hangup", cause)
		if err := a.env.Ctl.Hangup(a.env.Ctx, cause); err != nil {
			fail(L, "session:hangup", err)
		}
		return 0
	})
	method("ready", func(L *lua.LState) int { L.Push(lua.LBool(a.env.Ctl.Ready())); return 1 })
	method("answered", func(L *lua.LState) int { L.Push(lua.LBool(a.env.Ctl.Ready())); return 1 })
	method("getVariable", func(L *lua.LState) int {
		v, ok, err := a.env.Ctl.Get(a.env.Ctx, L.CheckString(2))
		if err != nil {
			fail(L, "session:getVariable", err)
		}
		if !ok {
			L.Push(lua.LNil)
		} else {
			L.Push(lua.LString(v))
		}
		return 1
	})
	method("setVariable", func(L *lua.LState) int {
		name, value := L.CheckString(2), L.CheckString(3)
		a.trace("set", name+"="+value)
		if err := a.env.Ctl.Set(a.env.Ctx, name, value); err != nil {
			fail(L, "session:setVariable", err)
		}
		return 0
	})
	method("execute", func(L *lua.LState) int {
		exec(L, L.CheckString(2), L.OptString(3, ""))
		return 0
	})
	method("streamFile", func(L *lua.LState) int { exec(L, "playback", L.CheckString(2)); return 0 })
	method("sleep", func(L *lua.LState) int { exec(L, "sleep", fmt.Sprint(L.CheckInt(2))); return 0 })
	method("say", func(L *lua.LState) int {
		// session:say(text, lang, type, method)
		exec(L, "say", strings.Join([]string{L.OptString(3, "en"), L.OptString(4, "number"), L.OptString(5, "pronounced"), L.CheckString(2)}, " "))
		return 0
	})
	// session:playAndGetDigits(min, max, tries, timeout, terminators, file,
	// invalid_file, var_name, regex[, digit_timeout]) → digits
	method("playAndGetDigits", func(L *lua.LState) int {
		varName := L.OptString(9, "")
		if varName == "" {
			varName = "switchyard_digits"
		}
		arg := fmt.Sprintf("%d %d %d %d %s %s %s %s %s", L.CheckInt(2), L.CheckInt(3), L.CheckInt(4), L.CheckInt(5),
			L.CheckString(6), L.CheckString(7), L.OptString(8, "silence_stream://250"), varName, L.OptString(10, `\d+`))
		if L.GetTop() >= 11 {
			arg += fmt.Sprint(" ", L.CheckInt(11))
		}
		r := exec(L, "play_and_get_digits", arg, varName)
		L.Push(lua.LString(r.Vars[varName]))
		return 1
	})
	method("transfer", func(L *lua.LState) int {
		dest, dialplan, context := L.CheckString(2), L.OptString(3, ""), L.OptString(4, "")
		a.trace("transfer", strings.TrimSpace(dest+" "+dialplan+" "+context))
		if err := a.env.Ctl.Transfer(a.env.Ctx, dest, dialplan, context); err != nil {
			fail(L, "session:transfer", err)
		}
		return 0
	})
	L.SetField(mt, "__index", methods)
	L.SetMetatable(ud, mt)
	return ud
}

// freeswitchTable is mod_lua's `freeswitch`: consoleLog and API().
func (a *api) freeswitchTable(L *lua.LState) *lua.LTable {
	t := L.NewTable()
	L.SetField(t, "consoleLog", L.NewFunction(func(L *lua.LState) int {
		level, msg := strings.ToLower(L.CheckString(1)), strings.TrimRight(L.CheckString(2), "\n")
		a.trace("consoleLog", level+": "+msg)
		a.log.Info(msg, "lua_level", level)
		return 0
	}))
	apiMT := L.NewTable()
	apiMethods := L.NewTable()
	L.SetField(apiMethods, "execute", host(L, func(L *lua.LState) int {
		cmd := strings.TrimSpace(L.CheckString(2) + " " + L.OptString(3, ""))
		a.trace("api", cmd)
		if a.env.API == nil {
			L.RaiseError("freeswitch.API():execute: %v: no FreeSWITCH node api in this run", ErrNotAvailable)
		}
		out, err := a.env.API.API(a.env.Ctx, cmd)
		if err != nil {
			L.Push(lua.LString("-ERR " + err.Error()))
			return 1
		}
		L.Push(lua.LString(out))
		return 1
	}))
	L.SetField(apiMethods, "executeString", L.GetField(apiMethods, "execute"))
	L.SetField(apiMT, "__index", apiMethods)
	L.SetField(t, "API", L.NewFunction(func(L *lua.LState) int {
		ud := L.NewUserData()
		L.SetMetatable(ud, apiMT)
		L.Push(ud)
		return 1
	}))
	return t
}
