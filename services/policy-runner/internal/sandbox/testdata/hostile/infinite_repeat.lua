-- want: cpu_slice
repeat local x = 1 until false
