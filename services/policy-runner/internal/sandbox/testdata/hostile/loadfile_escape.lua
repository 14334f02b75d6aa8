-- want: runtime
return loadfile('/etc/passwd')
