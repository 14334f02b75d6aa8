-- want: runtime
setfenv(1, {})
