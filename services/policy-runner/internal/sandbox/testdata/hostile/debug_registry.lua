-- want: runtime
return debug.getregistry()
