# Honest candidate: plain Triton reading Q, K and V through host-side tensor descriptors (TMA).
#
# What it is: FA2-style forward (online softmax, exp2) whose tiles come from
# triton.tools.tensor_descriptor.TensorDescriptor objects built in forward over the 2-D
# (batch * heads * seq, head_dim) views of q, k and v; the kernel loads tiles with
# desc.load([row, 0]), which on Hopper lowers to TMA bulk copies. A descriptor spans all heads,
# so a key tile that runs past the end of this head's sequence reads the first rows of the
# next head (or, past the last head, the zeros the TMA unit fills in): the scores of those
# columns are masked to -inf (p = 0), query rows past the sequence are computed but never
# stored, and the output is written with a masked tl.store through plain pointers.
# Host descriptors need 16-byte aligned strides: head_dim 32, 64 and 128 in 2-byte dtypes are.
#
# Which mechanism of the judge it exercises: kernel arguments that are not tensors but
# descriptor objects (built from the inputs' data pointers on each call, so refilled inputs and
# reused addresses behave), TMA loads that cross head boundaries by design, and the harness's
# NaN-poisoned output (every valid output row must be stored by the masked store).
#
# Verified: `evolve check` in the interpreter (Triton's interpreter emulates descriptor loads,
# zero padding included); sm_90 compile with triton 3.6 (tests/honest/compile_check.py). On the
# GPU: passed the whole cascade of the harness as of Judge v2's first cut (da8d78d: launches
# recorded in the sandbox, replayed, checked and timed by the judge; sweep, benchmark shapes,
# stability, determinism, anti-cheat, timing) on an NVIDIA H200 with torch 2.11.0+cu130 and
# triton 3.6.0, fitness 0.84; slowest benchmark shape 4.8 ms (tests/honest/gpu_check.py, results
# in tests/honest/README.md).

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

LOG2E = 1.4426950408889634
BLOCK_M = 128
BLOCK_N = 64


@triton.jit
def _attn_tiles(acc, l_i, m_i, q, k_desc, v_desc, kv_row0, offs_m, lo, hi, N_CTX, qk_scale,
                BLOCK_N: tl.constexpr, MASKED: tl.constexpr, CAUSAL: tl.constexpr):
    offs_n = tl.arange(0, BLOCK_N)
    for start_n in range(lo, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        k = k_desc.load([kv_row0 + start_n, 0])  # [BLOCK_N, HEAD_DIM]
        v = v_desc.load([kv_row0 + start_n, 0])  # [BLOCK_N, HEAD_DIM]
        qk = tl.dot(q, tl.trans(k))
        if MASKED:
            cols = start_n + offs_n
            keep = cols[None, :] < N_CTX  # columns past N_CTX belong to the next head
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
def _attn_fwd(q_desc, k_desc, v_desc, Out, qk_scale, stride_oz, stride_oh, stride_om, H, N_CTX,
              HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr):
    start_m = tl.program_id(0)
    off_hz = tl.program_id(1)
    row0 = off_hz * N_CTX  # first row of this (batch, head) in the 2-D views
    m0 = start_m * BLOCK_M
    offs_m = m0 + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)

    q = q_desc.load([row0 + m0, 0])  # [BLOCK_M, HEAD_DIM]; rows past N_CTX are never stored
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    if CAUSAL:
        split = (m0 // BLOCK_N) * BLOCK_N
        hi = tl.minimum(m0 + BLOCK_M, N_CTX)
    else:
        split = (N_CTX // BLOCK_N) * BLOCK_N
        hi = N_CTX
    acc, l_i, m_i = _attn_tiles(acc, l_i, m_i, q, k_desc, v_desc, row0, offs_m, 0, split, N_CTX, qk_scale,
                                BLOCK_N, False, CAUSAL)
    acc, l_i, m_i = _attn_tiles(acc, l_i, m_i, q, k_desc, v_desc, row0, offs_m, split, hi, N_CTX, qk_scale,
                                BLOCK_N, True, CAUSAL)

    acc = acc / l_i[:, None]
    off_z = (off_hz // H).to(tl.int64)
    off_h = (off_hz % H).to(tl.int64)
    o_ptrs = Out + off_z * stride_oz + off_h * stride_oh + offs_m[:, None] * stride_om + offs_d[None, :]
    tl.store(o_ptrs, acc.to(Out.dtype.element_ty), mask=offs_m[:, None] < N_CTX)


def forward(q, k, v, causal: bool, sm_scale: float) -> torch.Tensor:
    B, H, N, D = q.shape
    if D not in (16, 32, 64, 128):
        raise ValueError(f"head_dim {D}: this kernel needs a power of two from 16 to 128")
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    out = torch.empty_like(q)
    q_desc = TensorDescriptor.from_tensor(q.view(B * H * N, D), [BLOCK_M, D])
    k_desc = TensorDescriptor.from_tensor(k.view(B * H * N, D), [BLOCK_N, D])
    v_desc = TensorDescriptor.from_tensor(v.view(B * H * N, D), [BLOCK_N, D])
    _attn_fwd[(triton.cdiv(N, BLOCK_M), B * H)](
        q_desc, k_desc, v_desc, out, sm_scale * LOG2E, out.stride(0), out.stride(1), out.stride(2), H, N,
        HEAD_DIM=D, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, CAUSAL=causal,
        num_warps=8, num_stages=3,
    )
    return out
