# base: seed
# expect gpu: rejected anticheat "launched something else"
# Honest for its first three calls on one benchmark shape, then computes only the first half of
# the query blocks (twice as fast, half wrong). The judge replays the plan it recorded first;
# later calls are recorded too and must launch the same thing.
_calls = {}


def forward(q, k, v, causal, sm_scale):
    B, H, N, D = q.shape
    n = _calls[(N, D, causal)] = _calls.get((N, D, causal), 0) + 1
    cfg = _tunables(D)
    out = torch.empty_like(q)
    blocks = triton.cdiv(N, cfg["BLOCK_M"])
    if N == 4096 and D == 128 and causal and n > 3:
        blocks //= 2
    _attn_fwd[(blocks, B * H)](
        q, k, v, out, sm_scale * LOG2E,
        q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2), out.stride(0), out.stride(1), out.stride(2),
        H, N,
        HEAD_DIM=D, BLOCK_D=max(16, triton.next_power_of_2(D)),
        BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"], CAUSAL=causal,
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )
    return out
