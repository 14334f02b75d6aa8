-- want: runtime
return os.getenv('HOME')
