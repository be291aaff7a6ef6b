# Honest candidate: tensor descriptors made on the device (tl.make_tensor_descriptor).
#
# What it is: FA2-style forward (online softmax, exp2) in which each program builds its own
# TMA descriptors for this (batch, head)'s Q, K, V and output, each a 2-D [seq, head_dim] view
# starting at the head's first element. Since a descriptor ends where the head ends, key and
# query tiles that run past the sequence are zero-filled by the TMA unit, and the output tile
# is stored with o_desc.store, which drops the rows past the sequence: no masked pointer store.
# Zero-filled keys still give scores of 0, not -inf, so the kernel masks columns past the
# sequence (and past the causal diagonal) itself.
#
# Which mechanism of the judge it exercises: a kernel that needs a global scratch allocation at
# launch. On the GPU, descriptors made in a kernel live in global memory that Triton asks for
# through triton.set_allocator; forward installs an allocator that returns torch.empty int8
# buffers on the inputs' device (allowed: allocation only), so every launch allocates scratch
# from the caching allocator the harness NaN-poisons, and the output is written only by TMA
# stores. The allocator is a context variable: forward sets it on every call, so it does not
# depend on import-time state.
#
# Verified: `evolve check` in the interpreter (Triton's interpreter emulates device descriptors,
# bounds and zero padding included; it calls no allocator); sm_90 compile with triton 3.6
# (tests/honest/compile_check.py). On the GPU: passed the whole cascade of the harness as of
# Judge v2's first cut (da8d78d: launches recorded in the sandbox, replayed, checked and timed
# by the judge; sweep, benchmark shapes, stability, determinism, anti-cheat, timing) on an
# NVIDIA H200 with torch 2.11.0+cu130 and triton 3.6.0, fitness 0.77; slowest benchmark shape
# 4.9 ms (results in tests/honest/README.md).

import torch
import triton
import triton.language as tl

LOG2E = 1.4426950408889634
BLOCK_M = 128
BLOCK_N = 64


@triton.jit
def _attn_tiles(acc, l_i, m_i, q, k_desc, v_desc, offs_m, lo, hi, N_CTX, qk_scale,
                BLOCK_N: tl.constexpr, MASKED: tl.constexpr, CAUSAL: tl.constexpr):
    offs_n = tl.arange(0, BLOCK_N)
    for start_n in range(lo, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        k = k_desc.load([start_n, 0])  # [BLOCK_N, HEAD_DIM], zeros past N_CTX
        v = v_desc.load([start_n, 0])
        qk = tl.dot(q, tl.trans(k))
        if MASKED:
            cols = start_n + offs_n
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
def _attn_fwd(Q, K, V, Out, qk_scale, N_CTX,
              HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr):
    start_m = tl.program_id(0)
    off_hz = tl.program_id(1)
    head = off_hz.to(tl.int64) * N_CTX * HEAD_DIM  # contiguous (batch, heads, seq, head_dim)
    q_desc = tl.make_tensor_descriptor(Q + head, shape=[N_CTX, HEAD_DIM], strides=[HEAD_DIM, 1],
                                       block_shape=[BLOCK_M, HEAD_DIM])
    k_desc = tl.make_tensor_descriptor(K + head, shape=[N_CTX, HEAD_DIM], strides=[HEAD_DIM, 1],
                                       block_shape=[BLOCK_N, HEAD_DIM])
    v_desc = tl.make_tensor_descriptor(V + head, shape=[N_CTX, HEAD_DIM], strides=[HEAD_DIM, 1],
                                       block_shape=[BLOCK_N, HEAD_DIM])
    o_desc = tl.make_tensor_descriptor(Out + head, shape=[N_CTX, HEAD_DIM], strides=[HEAD_DIM, 1],
                                       block_shape=[BLOCK_M, HEAD_DIM])

    m0 = start_m * BLOCK_M
    offs_m = m0 + tl.arange(0, BLOCK_M)
    q = q_desc.load([m0, 0])
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    if CAUSAL:
        split = (m0 // BLOCK_N) * BLOCK_N
        hi = tl.minimum(m0 + BLOCK_M, N_CTX)
    else:
        split = (N_CTX // BLOCK_N) * BLOCK_N
        hi = N_CTX
    acc, l_i, m_i = _attn_tiles(acc, l_i, m_i, q, k_desc, v_desc, offs_m, 0, split, N_CTX, qk_scale,
                                BLOCK_N, False, CAUSAL)
    acc, l_i, m_i = _attn_tiles(acc, l_i, m_i, q, k_desc, v_desc, offs_m, split, hi, N_CTX, qk_scale,
                                BLOCK_N, True, CAUSAL)

    acc = acc / l_i[:, None]
    o_desc.store([m0, 0], acc.to(Out.dtype.element_ty))  # rows past N_CTX are dropped by the TMA unit


def forward(q, k, v, causal: bool, sm_scale: float) -> torch.Tensor:
    B, H, N, D = q.shape
    if D not in (16, 32, 64, 128):
        raise ValueError(f"head_dim {D}: this kernel needs a power of two from 16 to 128")
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    out = torch.empty_like(q)
    device = q.device

    def alloc(size: int, alignment: int, stream):
        return torch.empty(size, dtype=torch.int8, device=device)

    triton.set_allocator(alloc)
    _attn_fwd[(triton.cdiv(N, BLOCK_M), B * H)](
        q, k, v, out, sm_scale * LOG2E, N,
        HEAD_DIM=D, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, CAUSAL=causal,
        num_warps=8, num_stages=3,
    )
    return out
