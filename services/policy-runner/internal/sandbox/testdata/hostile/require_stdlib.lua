-- want: runtime
return require('io')
