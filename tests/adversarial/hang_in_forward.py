# base: seed
# expect static: timeout compile "hangs"
# expect gpu: timeout compile "hangs"
def forward(q, k, v, causal, sm_scale):
    while True:
        pass
