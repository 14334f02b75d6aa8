-- want: string_size
return string.rep('ab', 1e6, ('-'):rep(100))
