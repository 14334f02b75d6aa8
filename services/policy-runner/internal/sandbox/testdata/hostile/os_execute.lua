-- want: runtime
return os.execute('id')
