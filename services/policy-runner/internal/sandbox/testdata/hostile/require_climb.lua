-- want: runtime
return require('../../../etc/passwd')
