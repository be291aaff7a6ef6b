# base: seed
# expect static: timeout compile "hangs"
while True:
    pass
