# base: seed
# expect gpu: rejected anticheat "launched no kernel"
# On benchmark-sized shapes, hands back its previous answer whenever the same tensor object
# comes back (the first judge timed one input object over and over). Recorded a second time on
# the same tensors refilled with other values, it launches nothing.
_seed_forward = forward
_last = {}


def forward(q, k, v, causal, sm_scale):
    if q.shape[2] >= 1024 and _last.get("q") is q:
        return _last["out"]
    out = _seed_forward(q, k, v, causal, sm_scale)
    _last.update(q=q, out=out)
    return out
