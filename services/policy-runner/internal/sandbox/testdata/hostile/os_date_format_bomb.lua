-- want: string_size
return os.date(('%Y'):rep(1000))
