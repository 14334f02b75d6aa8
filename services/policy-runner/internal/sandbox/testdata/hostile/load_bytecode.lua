-- want: ok:only Lua source
local f, err = load('\27LuaQ\0\1\4\8\4\8\0')
return err
