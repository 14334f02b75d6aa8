-- want: cpu_slice
local function f() return f() end
return f()
