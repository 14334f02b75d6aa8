-- want: string_size
return string.rep('x', 1e9)
