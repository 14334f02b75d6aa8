-- want: string_size
local t, s = {}, ('x'):rep(1000)
for i = 1, 2000 do t[i] = s end
return table.concat(t)
