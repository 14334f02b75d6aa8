-- want: ok:poisoned
getmetatable('').__index = {rep = function() return 'poisoned' end}
return ('x'):rep(3)
