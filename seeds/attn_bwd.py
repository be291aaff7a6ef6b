"""FA2-style attention backward for ``attn_bwd``: dq, dk, dv from q, k, v, o, do and the forward's
logsumexp, the seed of a search.

Three kernels, none needing atomics. A preprocess computes delta = rowsum(o * do) in fp32, the
softmax's correction term. The dK/dV kernel owns BLOCK_N keys of one (batch, head), keeps their
k, v and both accumulators on chip and streams BLOCK_M-row query tiles past them, recomputing
P = exp(q kᵀ · sm_scale - lse) from the saved lse instead of storing the N x N matrix. The dQ
kernel owns BLOCK_M query rows and streams BLOCK_N-key tiles the same way. Each kernel writes
only its own rows, so the two big loops are independent and the result is deterministic.

Causal attention visits only the tiles at or below the diagonal: the dK/dV loop starts at the
query tile holding the block's first key, the dQ loop stops at the tile holding the block's last
row, and only the tiles crossing the diagonal pay for the mask. Query rows past the end load
lse = +inf, so their P is exactly 0 without a mask; keys past the end are masked in the last
tile. exp2 replaces exp with log2(e) folded into the score scale and into lse (natural log, as
the flash forward saves it). head_dim is padded to a power of two with masked loads.
"""

import torch
import triton
import triton.language as tl

# Tunables per (largest head_dim served, "causal" or "full", measured sequence length). A call
# takes the entry of the smallest head_dim at least its own, of its mode, and of the measured
# length nearest its own on a log scale (1-2047 -> 1024, 2048-8191 -> 4096, 8192+ -> 16384).
#   BLOCK_M query rows per tile: owned by a dQ program, streamed through a dK/dV program;
#   BLOCK_N keys per tile: owned by a dK/dV program, streamed through a dQ program;
#   num_warps and num_stages (pipelining depth of the streamed loads), for both big kernels.
TUNABLES = {
    (64, "full", 1024): {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 3},
    (64, "full", 4096): {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 3},
    (64, "full", 16384): {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 3},
    (64, "causal", 1024): {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 3},
    (64, "causal", 4096): {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 3},
    (64, "causal", 16384): {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 3},
    (128, "full", 1024): {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 8, "num_stages": 2},
    (128, "full", 4096): {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 8, "num_stages": 2},
    (128, "full", 16384): {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 8, "num_stages": 2},
    (128, "causal", 1024): {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 8, "num_stages": 2},
    (128, "causal", 4096): {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 8, "num_stages": 2},
    (128, "causal", 16384): {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 8, "num_stages": 2},
}

LOG2E = 1.4426950408889634
DELTA_ROWS = 64  # rows per program of the preprocess: it only streams o and do once


@triton.jit
def _log2(x):
    """A natural-log value (the saved lse) in the exp2 domain of the scores."""
    return x * 1.4426950408889634


@triton.jit
def _bwd_delta(Out, DO, Delta, stride_oz, stride_oh, stride_om, stride_dz, stride_dh, stride_dm,
               stride_tz, stride_th, H, N_CTX,
               HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr):
    off_hz = tl.program_id(1)
    off_z = (off_hz // H).to(tl.int64)
    off_h = (off_hz % H).to(tl.int64)
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    mask = (offs_m < N_CTX)[:, None] & (offs_d < HEAD_DIM)[None, :]
    o = tl.load(Out + off_z * stride_oz + off_h * stride_oh + offs_m[:, None] * stride_om + offs_d[None, :],
                mask=mask, other=0.0)
    do = tl.load(DO + off_z * stride_dz + off_h * stride_dh + offs_m[:, None] * stride_dm + offs_d[None, :],
                 mask=mask, other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)  # [BLOCK_M]
    tl.store(Delta + off_z * stride_tz + off_h * stride_th + offs_m, delta, mask=offs_m < N_CTX)


@triton.jit
def _dkdv_tiles(dk, dv, k, v, q_base, do_base, lse_base, delta_base, stride_qm, stride_dom, offs_n, offs_d, d_mask,
                lo, hi, N_CTX, qk_scale, BLOCK_M: tl.constexpr, MASKED: tl.constexpr):
    """Query tiles [lo, hi) streamed past one block of keys; MASKED applies the causal mask."""
    for start_m in range(lo, hi, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        m_mask = offs_m < N_CTX
        q = tl.load(q_base + offs_m[:, None] * stride_qm + offs_d[None, :], mask=m_mask[:, None] & d_mask[None, :],
                    other=0.0)
        do = tl.load(do_base + offs_m[:, None] * stride_dom + offs_d[None, :],
                     mask=m_mask[:, None] & d_mask[None, :], other=0.0)
        lse = _log2(tl.load(lse_base + offs_m, mask=m_mask, other=float("inf")))
        delta = tl.load(delta_base + offs_m, mask=m_mask, other=0.0)
        p_t = tl.math.exp2(tl.dot(k, tl.trans(q)) * qk_scale - lse[None, :])  # [BLOCK_N, BLOCK_M], P transposed
        if MASKED:
            p_t = tl.where(offs_m[None, :] >= offs_n[:, None], p_t, 0.0)
        dv = tl.dot(p_t.to(do.dtype), do, dv)
        dp_t = tl.dot(v, tl.trans(do))  # [BLOCK_N, BLOCK_M]
        ds_t = p_t * (dp_t - delta[None, :])
        dk = tl.dot(ds_t.to(q.dtype), q, dk)
    return dk, dv


@triton.jit(do_not_specialize=["N_CTX"])
def _bwd_dkdv(Q, K, V, DO, LSE, Delta, DK, DV, sm_scale, qk_scale,
              stride_qz, stride_qh, stride_qm, stride_kz, stride_kh, stride_kn, stride_vz, stride_vh, stride_vn,
              stride_doz, stride_doh, stride_dom, stride_lz, stride_lh, stride_tz, stride_th,
              stride_dkz, stride_dkh, stride_dkn, stride_dvz, stride_dvh, stride_dvn, H, N_CTX,
              HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
              CAUSAL: tl.constexpr):
    start_n = tl.program_id(0) * BLOCK_N
    off_hz = tl.program_id(1)
    off_z = (off_hz // H).to(tl.int64)
    off_h = (off_hz % H).to(tl.int64)
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < HEAD_DIM
    kv_mask = (offs_n < N_CTX)[:, None] & d_mask[None, :]
    k = tl.load(K + off_z * stride_kz + off_h * stride_kh + offs_n[:, None] * stride_kn + offs_d[None, :],
                mask=kv_mask, other=0.0)
    v = tl.load(V + off_z * stride_vz + off_h * stride_vh + offs_n[:, None] * stride_vn + offs_d[None, :],
                mask=kv_mask, other=0.0)
    q_base = Q + off_z * stride_qz + off_h * stride_qh
    do_base = DO + off_z * stride_doz + off_h * stride_doh
    lse_base = LSE + off_z * stride_lz + off_h * stride_lh
    delta_base = Delta + off_z * stride_tz + off_h * stride_th
    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)

    if CAUSAL:
        # Rows before this block's first key see none of its keys; rows from the first tile
        # boundary past its last key see all of them.
        lo = start_n // BLOCK_M * BLOCK_M
        split = tl.minimum((start_n + BLOCK_N + BLOCK_M - 1) // BLOCK_M * BLOCK_M, N_CTX)
        dk, dv = _dkdv_tiles(dk, dv, k, v, q_base, do_base, lse_base, delta_base, stride_qm, stride_dom, offs_n,
                             offs_d, d_mask, lo, split, N_CTX, qk_scale, BLOCK_M, True)
    else:
        split = 0
    dk, dv = _dkdv_tiles(dk, dv, k, v, q_base, do_base, lse_base, delta_base, stride_qm, stride_dom, offs_n,
                         offs_d, d_mask, split, N_CTX, N_CTX, qk_scale, BLOCK_M, False)

    tl.store(DK + off_z * stride_dkz + off_h * stride_dkh + offs_n[:, None] * stride_dkn + offs_d[None, :],
             (dk * sm_scale).to(DK.dtype.element_ty), mask=kv_mask)
    tl.store(DV + off_z * stride_dvz + off_h * stride_dvh + offs_n[:, None] * stride_dvn + offs_d[None, :],
             dv.to(DV.dtype.element_ty), mask=kv_mask)


@triton.jit
def _dq_tiles(dq, q, do, lse, delta, k_base, v_base, stride_kn, stride_vn, offs_m, offs_d, d_mask,
              lo, hi, N_CTX, qk_scale, BLOCK_N: tl.constexpr, MASKED: tl.constexpr, CAUSAL: tl.constexpr):
    """Key tiles [lo, hi) streamed past one block of query rows; MASKED drops keys past the end
    of the sequence (and, if CAUSAL, right of the diagonal)."""
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        kv_mask = d_mask[None, :]
        if MASKED:
            kv_mask = kv_mask & (offs_n[:, None] < N_CTX)
        k = tl.load(k_base + offs_n[:, None] * stride_kn + offs_d[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_base + offs_n[:, None] * stride_vn + offs_d[None, :], mask=kv_mask, other=0.0)
        p = tl.math.exp2(tl.dot(q, tl.trans(k)) * qk_scale - lse[:, None])  # [BLOCK_M, BLOCK_N]
        if MASKED:
            keep = offs_n[None, :] < N_CTX
            if CAUSAL:
                keep = keep & (offs_n[None, :] <= offs_m[:, None])
            p = tl.where(keep, p, 0.0)
        dp = tl.dot(do, tl.trans(v))  # [BLOCK_M, BLOCK_N]
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(k.dtype), k, dq)
    return dq


@triton.jit(do_not_specialize=["N_CTX"])
def _bwd_dq(Q, K, V, DO, LSE, Delta, DQ, sm_scale, qk_scale,
            stride_qz, stride_qh, stride_qm, stride_kz, stride_kh, stride_kn, stride_vz, stride_vh, stride_vn,
            stride_doz, stride_doh, stride_dom, stride_lz, stride_lh, stride_tz, stride_th,
            stride_dqz, stride_dqh, stride_dqm, H, N_CTX,
            HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
            CAUSAL: tl.constexpr):
    block = tl.program_id(0)
    if CAUSAL:  # the last row blocks see the most keys: launch them first
        block = tl.num_programs(0) - 1 - block
    start_m = block * BLOCK_M
    off_hz = tl.program_id(1)
    off_z = (off_hz // H).to(tl.int64)
    off_h = (off_hz % H).to(tl.int64)
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < HEAD_DIM
    m_mask = offs_m < N_CTX
    row_mask = m_mask[:, None] & d_mask[None, :]
    q = tl.load(Q + off_z * stride_qz + off_h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :],
                mask=row_mask, other=0.0)
    do = tl.load(DO + off_z * stride_doz + off_h * stride_doh + offs_m[:, None] * stride_dom + offs_d[None, :],
                 mask=row_mask, other=0.0)
    lse = _log2(tl.load(LSE + off_z * stride_lz + off_h * stride_lh + offs_m, mask=m_mask, other=float("inf")))
    delta = tl.load(Delta + off_z * stride_tz + off_h * stride_th + offs_m, mask=m_mask, other=0.0)
    k_base = K + off_z * stride_kz + off_h * stride_kh
    v_base = V + off_z * stride_vz + off_h * stride_vh
    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

    if CAUSAL:
        # Key tiles wholly left of this block's first row need no mask; the rest cross the diagonal.
        split = start_m // BLOCK_N * BLOCK_N
        hi = tl.minimum(start_m + BLOCK_M, N_CTX)
    else:
        split = N_CTX // BLOCK_N * BLOCK_N
        hi = N_CTX
    dq = _dq_tiles(dq, q, do, lse, delta, k_base, v_base, stride_kn, stride_vn, offs_m, offs_d, d_mask,
                   0, split, N_CTX, qk_scale, BLOCK_N, False, CAUSAL)
    dq = _dq_tiles(dq, q, do, lse, delta, k_base, v_base, stride_kn, stride_vn, offs_m, offs_d, d_mask,
                   split, hi, N_CTX, qk_scale, BLOCK_N, True, CAUSAL)

    tl.store(DQ + off_z * stride_dqz + off_h * stride_dqh + offs_m[:, None] * stride_dqm + offs_d[None, :],
             (dq * sm_scale).to(DQ.dtype.element_ty), mask=row_mask)


def _config(head_dim: int, causal: bool, seq: int) -> dict[str, int]:
    """The TUNABLES entry for a call; lengths between buckets go to the measured length nearest on
    a log scale, i.e. to the longer one once seq² ≥ shorter · longer (evolve/buckets.py)."""
    served = [d for d in sorted({d for d, _, _ in TUNABLES}) if head_dim <= d]
    if not served:
        raise ValueError(f"head_dim {head_dim} is larger than this kernel supports ({max(TUNABLES)[0]})")
    mode = "causal" if causal else "full"
    lengths = sorted(n for d, m, n in TUNABLES if d == served[0] and m == mode)
    picked = lengths[0]
    for shorter, longer in zip(lengths, lengths[1:]):
        if seq * seq >= shorter * longer:
            picked = longer
    return TUNABLES[(served[0], mode, picked)]


def forward(q, k, v, o, do, lse, causal: bool, sm_scale: float):
    B, H, N, D = q.shape
    if any(t.shape != q.shape for t in (k, v, o, do)) or lse.shape != (B, H, N):
        raise ValueError(f"q, k, v, o, do must be (B, H, N, D) and lse (B, H, N): q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}, v {tuple(v.shape)}, o {tuple(o.shape)}, do {tuple(do.shape)}, "
                         f"lse {tuple(lse.shape)}")
    # The kernels step head_dim (and lse's sequence axis) by 1.
    q, k, v, o, do, lse = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v, o, do, lse))
    cfg = _config(D, causal, N)
    block_d = max(16, triton.next_power_of_2(D))
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    delta = torch.empty((B, H, N), dtype=torch.float32, device=q.device)

    _bwd_delta[(triton.cdiv(N, DELTA_ROWS), B * H)](
        o, do, delta, o.stride(0), o.stride(1), o.stride(2), do.stride(0), do.stride(1), do.stride(2),
        delta.stride(0), delta.stride(1), H, N, HEAD_DIM=D, BLOCK_D=block_d, BLOCK_M=DELTA_ROWS)
    common = (q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
              v.stride(0), v.stride(1), v.stride(2), do.stride(0), do.stride(1), do.stride(2),
              lse.stride(0), lse.stride(1), delta.stride(0), delta.stride(1))
    meta = dict(HEAD_DIM=D, BLOCK_D=block_d, BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"], CAUSAL=causal,
                num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    _bwd_dkdv[(triton.cdiv(N, cfg["BLOCK_N"]), B * H)](
        q, k, v, do, lse, delta, dk, dv, sm_scale, sm_scale * LOG2E, *common,
        dk.stride(0), dk.stride(1), dk.stride(2), dv.stride(0), dv.stride(1), dv.stride(2), H, N, **meta)
    _bwd_dq[(triton.cdiv(N, cfg["BLOCK_M"]), B * H)](
        q, k, v, do, lse, delta, dq, sm_scale, sm_scale * LOG2E, *common,
        dq.stride(0), dq.stride(1), dq.stride(2), H, N, **meta)
    return dq, dk, dv
