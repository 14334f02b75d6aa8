-- want: pattern
return string.find(('a'):rep(5000), ('a*'):rep(12) .. 'b')
