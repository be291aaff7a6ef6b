# Honest candidate: the seed's FA2-style kernel behind @triton.autotune.
#
# What it is: the seed kernel (online softmax, exp2 with log2(e) folded into the scale, causal
# attention split into unmasked tiles and diagonal tiles) unchanged, but its tile shape, warps
# and pipelining depth are chosen by Triton's autotuner among three configs, keyed on head_dim
# and the causal flag (the autotuner adds the argument dtypes to the key by itself).
#
# Which mechanism of the judge it exercises: the autotuner benchmarks every config in the
# candidate's own process on the first call of each key, i.e. inside the harness's compute
# guard (TorchDispatchMode) and its NaN-poisoned allocator. That benchmark allocates and zeroes
# an L2-flush buffer, records CUDA events and synchronises (triton.testing.do_bench, via the
# driver's benchmarker) and runs the kernel many times into the real output; an honest
# candidate doing so must pass every stage. Later calls reuse the chosen config, so the
# determinism stage compares three runs of one config. In Triton's interpreter (CPU tensors)
# the autotuner cannot time anything (its benchmarker needs a GPU driver: "0 active drivers"),
# so there forward launches the first config directly through the autotuner's `.fn`.
#
# Verified: `evolve check` in the interpreter; sm_90 compile of every config with triton 3.6
# (tests/honest/compile_check.py). On the GPU: passed the whole cascade of the harness as of
# Judge v2's first cut (da8d78d: launches recorded in the sandbox, replayed, checked and timed
# by the judge; sweep, benchmark shapes, stability, determinism, anti-cheat, timing) on an
# NVIDIA H200 with torch 2.11.0+cu130 and triton 3.6.0, fitness 0.73; slowest benchmark shape
# 5.7 ms (results in tests/honest/README.md).

import torch
import triton
import triton.language as tl

LOG2E = 1.4426950408889634

CONFIGS = [
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64}, num_warps=4, num_stages=3),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 32}, num_warps=4, num_stages=2),
]


@triton.jit
def _attn_tiles(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_vn, offs_m, offs_d, d_mask,
                lo, hi, N_CTX, qk_scale,
                BLOCK_N: tl.constexpr, MASKED: tl.constexpr, CAUSAL: tl.constexpr):
    offs_n = tl.arange(0, BLOCK_N)
    for start_n in range(lo, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        cols = start_n + offs_n
        k_ptrs = k_base + cols[None, :] * stride_kn + offs_d[:, None]  # [BLOCK_D, BLOCK_N]
        v_ptrs = v_base + cols[:, None] * stride_vn + offs_d[None, :]  # [BLOCK_N, BLOCK_D]
        if MASKED:
            k = tl.load(k_ptrs, mask=(cols[None, :] < N_CTX) & d_mask[:, None], other=0.0)
            v = tl.load(v_ptrs, mask=(cols[:, None] < N_CTX) & d_mask[None, :], other=0.0)
        else:
            k = tl.load(k_ptrs, mask=d_mask[:, None], other=0.0)
            v = tl.load(v_ptrs, mask=d_mask[None, :], other=0.0)
        qk = tl.dot(q, k)  # [BLOCK_M, BLOCK_N], fp32
        if MASKED:
            keep = cols[None, :] < N_CTX
            if CAUSAL:
                keep = keep & (cols[None, :] <= offs_m[:, None])
            qk = tl.where(keep, qk, float("-inf"))
        m_ij = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
        p = tl.math.exp2(qk * qk_scale - m_ij[:, None])
        alpha = tl.math.exp2(m_i - m_ij)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        acc = tl.dot(p.to(v.dtype), v, acc)
        m_i = m_ij
    return acc, l_i, m_i


@triton.autotune(configs=CONFIGS, key=["HEAD_DIM", "CAUSAL"])
@triton.jit(do_not_specialize=["N_CTX"])
def _attn_fwd(Q, K, V, Out, qk_scale,
              stride_qz, stride_qh, stride_qm, stride_kz, stride_kh, stride_kn,
              stride_vz, stride_vh, stride_vn, stride_oz, stride_oh, stride_om,
              H, N_CTX,
              HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, CAUSAL: tl.constexpr,
              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    start_m = tl.program_id(0)
    off_hz = tl.program_id(1)
    off_z = (off_hz // H).to(tl.int64)
    off_h = (off_hz % H).to(tl.int64)
    q_base = Q + off_z * stride_qz + off_h * stride_qh
    k_base = K + off_z * stride_kz + off_h * stride_kh
    v_base = V + off_z * stride_vz + off_h * stride_vh
    o_base = Out + off_z * stride_oz + off_h * stride_oh

    m0 = start_m * BLOCK_M
    offs_m = m0 + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < HEAD_DIM
    row_mask = offs_m < N_CTX

    q = tl.load(q_base + offs_m[:, None] * stride_qm + offs_d[None, :],
                mask=row_mask[:, None] & d_mask[None, :], other=0.0)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

    if CAUSAL:
        # Tiles wholly left of this block's first row need no mask; the rest cross the diagonal.
        split = (m0 // BLOCK_N) * BLOCK_N
        hi = tl.minimum(m0 + BLOCK_M, N_CTX)
    else:
        split = (N_CTX // BLOCK_N) * BLOCK_N
        hi = N_CTX
    acc, l_i, m_i = _attn_tiles(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_vn, offs_m, offs_d,
                                d_mask, 0, split, N_CTX, qk_scale, BLOCK_N, False, CAUSAL)
    acc, l_i, m_i = _attn_tiles(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_vn, offs_m, offs_d,
                                d_mask, split, hi, N_CTX, qk_scale, BLOCK_N, True, CAUSAL)

    acc = acc / l_i[:, None]
    tl.store(o_base + offs_m[:, None] * stride_om + offs_d[None, :], acc.to(Out.dtype.element_ty),
             mask=row_mask[:, None] & d_mask[None, :])


def forward(q, k, v, causal: bool, sm_scale: float) -> torch.Tensor:
    B, H, N, D = q.shape
    if D > 128:
        raise ValueError(f"head_dim {D} is larger than this kernel supports (128)")
    out = torch.empty_like(q)

    def grid(meta):
        return (triton.cdiv(N, meta["BLOCK_M"]), B * H)

    # Triton's interpreter has no GPU timer for the autotuner: run the first config directly.
    kernel, fixed = _attn_fwd, {}
    if q.device.type == "cpu":
        cfg = CONFIGS[0]
        kernel = _attn_fwd.fn
        fixed = dict(cfg.kwargs, num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    kernel[grid](
        q, k, v, out, sm_scale * LOG2E,
        q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2), out.stride(0), out.stride(1), out.stride(2),
        H, N,
        HEAD_DIM=D, BLOCK_D=max(16, triton.next_power_of_2(D)), CAUSAL=causal, **fixed,
    )
    return out
