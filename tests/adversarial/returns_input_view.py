# base: seed
# expect static: rejected anticheat "shares memory with input q"
# expect gpu: rejected anticheat "writes into an input"
_seed_forward = forward


def forward(q, k, v, causal, sm_scale):
    q.copy_(_seed_forward(q, k, v, causal, sm_scale))
    return q
