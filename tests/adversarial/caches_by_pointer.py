# base: seed
# expect static: rejected anticheat "inputs refilled in place"
# expect gpu: rejected anticheat "launched no kernel"
# Returns the first answer again whenever it is handed the same tensor object.
_seed_forward = forward
_cache = []


def forward(q, k, v, causal, sm_scale):
    for seen, out in _cache:
        if seen is q:
            return out.clone()
    out = _seed_forward(q, k, v, causal, sm_scale)
    _cache.append((q, out))
    return out.clone()
