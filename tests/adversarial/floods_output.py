# base: seed
# expect static: rejected compile "output"
# expect gpu: rejected compile "output"
_seed_forward = forward


def forward(q, k, v, causal, sm_scale):
    for _ in range(20000):
        print("x" * 1000)
    return _seed_forward(q, k, v, causal, sm_scale)
