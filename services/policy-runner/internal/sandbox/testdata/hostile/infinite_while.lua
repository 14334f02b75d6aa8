-- want: cpu_slice
while true do end
