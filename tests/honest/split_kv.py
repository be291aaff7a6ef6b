# Honest candidate: split-KV (flash-decoding style) attention in two kernel launches.
#
# What it is: the keys of every (batch, head) are cut into NUM_SPLITS contiguous chunks. A first
# kernel, one program per (query block, head, split), runs the FA2 online softmax over its chunk
# only and writes, for each query row, the chunk's normalised partial output and its
# log-sum-exp (base 2) into fp32 scratch tensors that forward allocates with torch.empty. A
# second kernel, one program per (query block, head), merges the splits:
#   lse = log2(sum_s 2^lse_s),  out = sum_s 2^(lse_s - lse) * o_s.
# A chunk with no visible key for a row (past the causal diagonal, or past a short sequence)
# leaves lse_s = -inf and o_s = 0, which the merge weighs by exactly 0. Every row sees key 0,
# which lies in split 0, so the merged lse is always finite.
#
# Which mechanism of the judge it exercises: several launches per call and scratch buffers
# that come from the same caching allocator the harness fills with NaN before each call. The
# scratch is written in full by the first kernel before the second reads it (stream order), so
# the poisoning must not show; the scratch is freed when forward returns, so the allocator's
# reuse of it across the 20 repeated calls and the refilled-input trial must not matter either.
# No atomics: the merge sums the splits in a fixed order, so results are bitwise deterministic.
#
# Verified: `evolve check` in the interpreter; sm_90 compile of both kernels with triton 3.6
# (tests/honest/compile_check.py). On the GPU: passed the whole cascade of the harness as of
# Judge v2's first cut (da8d78d: launches recorded in the sandbox, replayed, checked and timed
# by the judge; sweep, benchmark shapes, stability, determinism, anti-cheat, timing) on an
# NVIDIA H200 with torch 2.11.0+cu130 and triton 3.6.0, fitness 0.46; slowest benchmark shape
# 8.4 ms (results in tests/honest/README.md).

import torch
import triton
import triton.language as tl

LOG2E = 1.4426950408889634
NUM_SPLITS = 3
BLOCK_M = 64
BLOCK_N = 64


@triton.jit(do_not_specialize=["N_CTX", "CHUNK"])
def _attn_split(Q, K, V, O_part, LSE_part, qk_scale,
                stride_qz, stride_qh, stride_qm, stride_kz, stride_kh, stride_kn,
                stride_vz, stride_vh, stride_vn,
                H, N_CTX, CHUNK,
                HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr):
    start_m = tl.program_id(0)
    off_hz = tl.program_id(1)
    split = tl.program_id(2)
    off_z = (off_hz // H).to(tl.int64)
    off_h = (off_hz % H).to(tl.int64)
    q_base = Q + off_z * stride_qz + off_h * stride_qh
    k_base = K + off_z * stride_kz + off_h * stride_kh
    v_base = V + off_z * stride_vz + off_h * stride_vh

    m0 = start_m * BLOCK_M
    offs_m = m0 + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < HEAD_DIM
    row_mask = offs_m < N_CTX

    q = tl.load(q_base + offs_m[:, None] * stride_qm + offs_d[None, :],
                mask=row_mask[:, None] & d_mask[None, :], other=0.0)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

    # This program's keys: [lo, hi), further cut by the causal diagonal of this query block.
    lo = split * CHUNK
    hi = tl.minimum(lo + CHUNK, N_CTX)
    if CAUSAL:
        hi = tl.minimum(hi, m0 + BLOCK_M)
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n
        col_ok = cols < hi
        k = tl.load(k_base + cols[None, :] * stride_kn + offs_d[:, None],
                    mask=col_ok[None, :] & d_mask[:, None], other=0.0)
        v = tl.load(v_base + cols[:, None] * stride_vn + offs_d[None, :],
                    mask=col_ok[:, None] & d_mask[None, :], other=0.0)
        qk = tl.dot(q, k)
        keep = col_ok[None, :]
        if CAUSAL:
            keep = keep & (cols[None, :] <= offs_m[:, None])
        qk = tl.where(keep, qk * qk_scale, float("-inf"))
        m_ij = tl.maximum(m_i, tl.max(qk, 1))
        # A row with no visible key yet keeps m = -inf; subtract 0 instead so that exp2 gives
        # 0 (not exp2(-inf + inf) = NaN).
        m_safe = tl.where(m_ij == float("-inf"), 0.0, m_ij)
        p = tl.math.exp2(qk - m_safe[:, None])
        alpha = tl.math.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        acc = tl.dot(p.to(v.dtype), v, acc)
        m_i = m_ij

    has_keys = l_i > 0.0
    o = tl.where(has_keys[:, None], acc / tl.where(has_keys, l_i, 1.0)[:, None], 0.0)
    lse = tl.where(has_keys, m_i + tl.math.log2(tl.where(has_keys, l_i, 1.0)), float("-inf"))

    # Scratch layout: O_part[split, b*h, row, d] and LSE_part[split, b*h, row], contiguous.
    part = (split * tl.num_programs(1) + off_hz).to(tl.int64)
    row_base = part * N_CTX
    tl.store(O_part + (row_base + offs_m)[:, None] * HEAD_DIM + offs_d[None, :], o,
             mask=row_mask[:, None] & d_mask[None, :])
    tl.store(LSE_part + row_base + offs_m, lse, mask=row_mask)


@triton.jit(do_not_specialize=["N_CTX"])
def _attn_merge(O_part, LSE_part, Out, stride_oz, stride_oh, stride_om, H, N_CTX,
                HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
                NUM_SPLITS: tl.constexpr):
    start_m = tl.program_id(0)
    off_hz = tl.program_id(1)
    n_hz = tl.num_programs(1)
    off_z = (off_hz // H).to(tl.int64)
    off_h = (off_hz % H).to(tl.int64)
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < HEAD_DIM
    row_mask = offs_m < N_CTX
    mask2 = row_mask[:, None] & d_mask[None, :]

    lse_max = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    for s in tl.static_range(NUM_SPLITS):
        row_base = (s * n_hz + off_hz).to(tl.int64) * N_CTX
        lse_s = tl.load(LSE_part + row_base + offs_m, mask=row_mask, other=float("-inf"))
        lse_max = tl.maximum(lse_max, lse_s)
    lse_max = tl.where(lse_max == float("-inf"), 0.0, lse_max)  # only rows past N_CTX

    total = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    for s in tl.static_range(NUM_SPLITS):
        row_base = (s * n_hz + off_hz).to(tl.int64) * N_CTX
        lse_s = tl.load(LSE_part + row_base + offs_m, mask=row_mask, other=float("-inf"))
        o_s = tl.load(O_part + (row_base + offs_m)[:, None] * HEAD_DIM + offs_d[None, :], mask=mask2, other=0.0)
        w = tl.math.exp2(lse_s - lse_max)
        total += w
        acc += w[:, None] * o_s
    acc = acc / tl.where(total > 0.0, total, 1.0)[:, None]
    o_base = Out + off_z * stride_oz + off_h * stride_oh
    tl.store(o_base + offs_m[:, None] * stride_om + offs_d[None, :], acc.to(Out.dtype.element_ty), mask=mask2)


def forward(q, k, v, causal: bool, sm_scale: float) -> torch.Tensor:
    B, H, N, D = q.shape
    if D > 128:
        raise ValueError(f"head_dim {D} is larger than this kernel supports (128)")
    out = torch.empty_like(q)
    o_part = torch.empty((NUM_SPLITS, B * H, N, D), device=q.device, dtype=torch.float32)
    lse_part = torch.empty((NUM_SPLITS, B * H, N), device=q.device, dtype=torch.float32)
    # Chunks are whole key tiles; a short sequence leaves the last splits empty.
    chunk = triton.cdiv(triton.cdiv(N, NUM_SPLITS), BLOCK_N) * BLOCK_N
    block_d = max(16, triton.next_power_of_2(D))
    num_warps = 4 if D <= 64 else 8
    _attn_split[(triton.cdiv(N, BLOCK_M), B * H, NUM_SPLITS)](
        q, k, v, o_part, lse_part, sm_scale * LOG2E,
        q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        H, N, chunk,
        HEAD_DIM=D, BLOCK_D=block_d, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, CAUSAL=causal,
        num_warps=num_warps, num_stages=3,
    )
    _attn_merge[(triton.cdiv(N, BLOCK_M), B * H)](
        o_part, lse_part, out, out.stride(0), out.stride(1), out.stride(2), H, N,
        HEAD_DIM=D, BLOCK_D=block_d, BLOCK_M=BLOCK_M, NUM_SPLITS=NUM_SPLITS, num_warps=4,
    )
    return out
