# Honest candidate: attention whose loop bounds and scale come from a device-resident table
# that outlives the call.
#
# What it is: the seed's FA2-style kernel, except that two things it would normally compute
# are read from a small constant table in device memory:
#   TABLE[0]       = log2(e), the factor that turns sm_scale into the exp2 domain;
#   TABLE[1 + r]   = the end (exclusive, in keys) of the causal key range of query block r,
#                    (r + 1) * BLOCK_M, before clamping to the sequence length.
# Both are stored as fp32 (the block limits are exact integers far below 2^24). The table is
# built on the first call on each device by a tiny Triton kernel and kept in a module-level
# dict keyed by the device, so on a CPU-only machine (Triton's interpreter) the module imports
# without CUDA and the table lives on the CPU. A sequence with more query blocks than the table
# holds gets a bigger table (rebuilt once, then kept).
#
# Which mechanism of the judge it exercises: state that exists before later calls and whose
# CONTENTS matter. If the table were lost, freed and reused by the allocator, or overwritten by
# the harness's NaN poisoning between calls, log2(e) would be wrong or NaN and the causal loop
# bounds garbage, and the outputs would fail the tolerance. An honest persistent buffer must
# survive the 20 repeated calls, the refilled-input trial, timing and the re-checks after it.
#
# Verified: `evolve check` in the interpreter; sm_90 compile with triton 3.6
# (tests/honest/compile_check.py). On the GPU: passed the whole cascade of the harness as of
# Judge v2's first cut (da8d78d: launches recorded in the sandbox, replayed, checked and timed
# by the judge; sweep, benchmark shapes, stability, determinism, anti-cheat, timing) on an
# NVIDIA H200 with torch 2.11.0+cu130 and triton 3.6.0, fitness 0.82; slowest benchmark shape
# 5.0 ms (results in tests/honest/README.md).

import math

import torch
import triton
import triton.language as tl

BLOCK_M = 128
BLOCK_N = 64
_TABLES = {}  # device -> fp32 tensor [1 + number of query blocks]
_MIN_BLOCKS = 1024  # covers sequences up to 131072 keys before a rebuild


@triton.jit
def _fill_table(Table, n_entries, log2e, BLOCK_M: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    limits = (offs.to(tl.float32)) * BLOCK_M  # entry 1 + r holds (r + 1) * BLOCK_M
    vals = tl.where(offs == 0, log2e, limits)
    tl.store(Table + offs, vals, mask=offs < n_entries)


def _table(device, n_blocks: int) -> torch.Tensor:
    table = _TABLES.get(device)
    if table is None or table.numel() < 1 + n_blocks:
        entries = 1 + max(n_blocks, _MIN_BLOCKS)
        table = torch.empty(entries, device=device, dtype=torch.float32)
        _fill_table[(triton.cdiv(entries, 1024),)](table, entries, math.log2(math.e), BLOCK_M=BLOCK_M, BLOCK=1024)
        _TABLES[device] = table
    return table


@triton.jit
def _attn_tiles(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_vn, offs_m, offs_d, d_mask,
                lo, hi, N_CTX, qk_scale,
                BLOCK_N: tl.constexpr, MASKED: tl.constexpr, CAUSAL: tl.constexpr):
    offs_n = tl.arange(0, BLOCK_N)
    for start_n in range(lo, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        cols = start_n + offs_n
        k_ptrs = k_base + cols[None, :] * stride_kn + offs_d[:, None]
        v_ptrs = v_base + cols[:, None] * stride_vn + offs_d[None, :]
        if MASKED:
            k = tl.load(k_ptrs, mask=(cols[None, :] < N_CTX) & d_mask[:, None], other=0.0)
            v = tl.load(v_ptrs, mask=(cols[:, None] < N_CTX) & d_mask[None, :], other=0.0)
        else:
            k = tl.load(k_ptrs, mask=d_mask[:, None], other=0.0)
            v = tl.load(v_ptrs, mask=d_mask[None, :], other=0.0)
        qk = tl.dot(q, k)
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


@triton.jit(do_not_specialize=["N_CTX"])
def _attn_fwd(Q, K, V, Out, Table, sm_scale,
              stride_qz, stride_qh, stride_qm, stride_kz, stride_kh, stride_kn,
              stride_vz, stride_vh, stride_vn, stride_oz, stride_oh, stride_om,
              H, N_CTX,
              HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr):
    start_m = tl.program_id(0)
    off_hz = tl.program_id(1)
    off_z = (off_hz // H).to(tl.int64)
    off_h = (off_hz % H).to(tl.int64)
    q_base = Q + off_z * stride_qz + off_h * stride_qh
    k_base = K + off_z * stride_kz + off_h * stride_kh
    v_base = V + off_z * stride_vz + off_h * stride_vh
    o_base = Out + off_z * stride_oz + off_h * stride_oh

    qk_scale = sm_scale * tl.load(Table)  # log2(e) from the table

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
        split = (m0 // BLOCK_N) * BLOCK_N
        block_end = tl.load(Table + 1 + start_m).to(tl.int32)  # (start_m + 1) * BLOCK_M
        hi = tl.minimum(block_end, N_CTX)
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
    n_blocks = triton.cdiv(N, BLOCK_M)
    table = _table(q.device, n_blocks)
    out = torch.empty_like(q)
    _attn_fwd[(n_blocks, B * H)](
        q, k, v, out, table, sm_scale,
        q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2), out.stride(0), out.stride(1), out.stride(2),
        H, N,
        HEAD_DIM=D, BLOCK_D=max(16, triton.next_power_of_2(D)),
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, CAUSAL=causal,
        num_warps=8, num_stages=3,
    )
    return out
