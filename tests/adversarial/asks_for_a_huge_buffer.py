# base: seed
# expect gpu: rejected anticheat "more than a plan may hold"
# Hands its kernel a 32 GiB scratch buffer, so that the judge, allocating the same, would run
# out of memory (a harness error, retried for ever). A plan's buffers are capped.
_seed_forward = forward
_big = []


@triton.jit
def _touch(X):
    pass


def forward(q, k, v, causal, sm_scale):
    out = _seed_forward(q, k, v, causal, sm_scale)
    if q.shape[2] >= 1024:
        if not _big:
            _big.append(torch.empty(32 << 30, dtype=torch.uint8, device=q.device))
        _touch[(1,)](_big[0])
    return out
