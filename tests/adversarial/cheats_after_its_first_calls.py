# base: seed
# expect gpu: rejected anticheat "launched something else"
# Honest for its first three calls on one benchmark shape, then launches only the first half of
# its programs (twice as fast, half wrong). The judge replays the plan it recorded first; later
# calls are recorded too and must launch the same thing.
_calls = {}


def forward(q, k, v, causal, sm_scale):
    B, H, N, D = q.shape
    n = _calls[(N, D, causal)] = _calls.get((N, D, causal), 0) + 1
    cfg = _config(D, causal, N)
    out = torch.empty_like(q)
    programs = _programs(q, cfg)
    if N == 4096 and D == 128 and causal and n > 3:
        programs //= 2
    _launch(q, k, v, out, causal, sm_scale, cfg, programs)
    return out
