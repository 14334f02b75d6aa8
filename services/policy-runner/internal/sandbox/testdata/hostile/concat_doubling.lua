-- want: memory|cpu_slice
local s = 'x'
for i = 1, 60 do s = s .. s end
return #s
