-- want: string_size
return ('x'):rep(2^40)
