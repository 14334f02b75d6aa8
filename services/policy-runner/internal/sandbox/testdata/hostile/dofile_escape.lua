-- want: runtime
return dofile('/etc/passwd')
