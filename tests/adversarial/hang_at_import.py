# base: seed
# expect static: timeout compile "hangs"
# expect gpu: timeout compile "hangs"
while True:
    pass
