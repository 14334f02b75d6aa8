-- want: memory|cpu_slice
local cos = {}
for i = 1, 1e12 do cos[i] = coroutine.create(function() end) end
