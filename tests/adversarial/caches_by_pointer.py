# base: seed
# expect static: rejected anticheat "inputs refilled in place"
# expect gpu: rejected anticheat "none of its kernel launches was given"
# Returns the first answer again whenever it is handed the same tensor object. On a GPU its
# copies are torch's, not its kernels': only what its launches write is replayed.
_seed_forward = forward
_cache = []


def forward(q, k, v, causal, sm_scale):
    for seen, out in _cache:
        if seen is q:
            return out.clone()
    out = _seed_forward(q, k, v, causal, sm_scale)
    _cache.append((q, out))
    return out.clone()
