-- want: cpu_slice
while true do pcall(function() error('x') end) end
