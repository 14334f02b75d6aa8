-- want: string_size
return string.format('%0999999999d', 1)
