# base: seed
# expect static: rejected anticheat "modified its input q"
# expect gpu: rejected anticheat "writes into an input"
_seed_forward = forward


def forward(q, k, v, causal, sm_scale):
    out = _seed_forward(q, k, v, causal, sm_scale)
    q.zero_()
    return out
