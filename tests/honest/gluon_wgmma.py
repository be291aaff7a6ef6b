# Honest candidate: FA2-style attention forward written in Gluon for Hopper, with TMA and
# warpgroup MMAs (wgmma, "MMA v3"): the wgmma sibling of tests/honest/gluon_fa2.py.
#
# What it is: one program per (query block of BLOCK_M = 128 rows, batch * head), 8 warps = two
# warpgroups stacked along the rows. Host-side Gluon TensorDescriptors span the 2-D
# (batch * heads * seq, head_dim) views of q, k and v with NVMMA-swizzled shared layouts.
#   * Q: one TMA copy into shared memory, used from there as wgmma's A operand.
#   * K and V: TMA copies into a two-slot ring in shared memory, one mbarrier per slot; tile
#     j + 1 is in flight while tile j is used; a CTA-wide barrier before each refill.
#   * S = Q K^T: warpgroup_mma(q_smem, K tile permuted to [head_dim, BLOCK_N], zeros), fp32
#     accumulator in NVMMADistributedLayout(version=[3, 0], instr_shape=[16, BLOCK_N, 16]).
#   * Online softmax in that layout, base 2, -inf for keys past the sequence (next head) or past
#     the causal diagonal; every row sees key 0, so the running max is finite from tile 0 on.
#   * O += P V: P rounded to the input dtype and held in registers as wgmma's A operand
#     (DotOperandLayout(0, parent=O's layout, k_width=2)), V straight from shared memory;
#     O's accumulator layout is version [3, 0] with instr_shape [16, head_dim, 16].
#   * The MMAs are synchronous (is_async=False): simple, and no smem slot is refilled while a
#     wgmma may still read it.
#   * O / l stored with a masked gl.store.
#
# Which mechanism of the judge it exercises: the same as gluon_fa2.py (a @gluon.jit kernel, TMA,
# mbarriers, tensor cores), with Hopper-only wgmma instead of mma.sync.
#
# Verified: static gate; compiles with triton 3.6 for GPUTarget("cuda", 90, 32) for every
# (head_dim 32/64/128, causal, fp16/bf16) variant the GPU sweep and benchmarks need, shared
# memory and registers listed by tests/honest/compile_check.py. On the GPU: passed the whole
# cascade of the harness as of Judge v2's first cut (da8d78d: launches recorded in the sandbox,
# replayed, checked and timed by the judge; sweep, benchmark shapes, stability, determinism,
# anti-cheat, timing) on an NVIDIA H200 with torch 2.11.0+cu130 and triton 3.6.0, fitness 0.72;
# slowest benchmark shape 6.4 ms (results in tests/honest/README.md).
# NOT runnable in Triton's interpreter (Gluon has none): `evolve check` on a CPU-only machine
# rejects it at the compile stage ("0 active drivers") for that reason only.

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import mbarrier, tma, warpgroup_mma
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

LOG2E = 1.4426950408889634
BLOCK_M = 128
BLOCK_N = 64
NUM_WARPS = 8


@gluon.jit(do_not_specialize=["N_CTX"])
def _attn_fwd(q_desc, k_desc, v_desc, Out, qk_scale, N_CTX,
              HEAD_DIM: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, CAUSAL: gl.constexpr,
              num_warps: gl.constexpr):
    dtype: gl.constexpr = q_desc.dtype
    # wgmma tiles: m = 16 per warp (4 warps = one warpgroup = 64 rows), k = 16 for 16-bit types,
    # n = the whole tile width.
    s_mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[num_warps, 1],
                                                    instr_shape=[16, BLOCK_N, 16])
    o_mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[num_warps, 1],
                                                    instr_shape=[16, HEAD_DIM, 16])
    p_op: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_mma, k_width=2)
    rows_l: gl.constexpr = gl.SliceLayout(1, s_mma)
    cols_l: gl.constexpr = gl.SliceLayout(0, s_mma)
    o_rows_l: gl.constexpr = gl.SliceLayout(1, o_mma)
    o_cols_l: gl.constexpr = gl.SliceLayout(0, o_mma)
    kv_bytes: gl.constexpr = 2 * BLOCK_N * HEAD_DIM * dtype.primitive_bitwidth // 8

    start_m = gl.program_id(0)
    off_hz = gl.program_id(1)
    row0 = off_hz * N_CTX  # this head's first row in the 2-D views
    m0 = start_m * BLOCK_M
    if CAUSAL:
        hi = gl.minimum(m0 + BLOCK_M, N_CTX)
    else:
        hi = N_CTX
    n_tiles = gl.cdiv(hi, BLOCK_N)

    q_smem = gl.allocate_shared_memory(dtype, [BLOCK_M, HEAD_DIM], q_desc.layout)
    k_smem = gl.allocate_shared_memory(dtype, [2, BLOCK_N, HEAD_DIM], k_desc.layout)
    v_smem = gl.allocate_shared_memory(dtype, [2, BLOCK_N, HEAD_DIM], v_desc.layout)
    q_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    kv_bar = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    mbarrier.init(q_bar, count=1)
    mbarrier.init(kv_bar.index(0), count=1)
    mbarrier.init(kv_bar.index(1), count=1)

    # Q, and the first K/V tile into slot 0.
    mbarrier.expect(q_bar, BLOCK_M * HEAD_DIM * dtype.primitive_bitwidth // 8)
    tma.async_copy_global_to_shared(q_desc, [row0 + m0, 0], q_bar, q_smem)
    mbarrier.expect(kv_bar.index(0), kv_bytes)
    tma.async_copy_global_to_shared(k_desc, [row0, 0], kv_bar.index(0), k_smem.index(0))
    tma.async_copy_global_to_shared(v_desc, [row0, 0], kv_bar.index(0), v_smem.index(0))

    mbarrier.wait(q_bar, 0)

    offs_m = m0 + gl.arange(0, BLOCK_M, layout=rows_l)
    offs_n = gl.arange(0, BLOCK_N, layout=cols_l)
    m_i = gl.full([BLOCK_M], float("-inf"), gl.float32, layout=rows_l)
    l_i = gl.full([BLOCK_M], 0.0, gl.float32, layout=rows_l)
    acc = gl.zeros([BLOCK_M, HEAD_DIM], gl.float32, layout=o_mma)
    s_zero = gl.zeros([BLOCK_M, BLOCK_N], gl.float32, layout=s_mma)

    for j in range(n_tiles):
        slot = j % 2
        # Prefetch tile j + 1 into the other slot, which tile j - 1 used: wait for every warp
        # to be done reading it first.
        if j + 1 < n_tiles:
            gl.thread_barrier()
            nxt = row0 + (j + 1) * BLOCK_N
            mbarrier.expect(kv_bar.index(1 - slot), kv_bytes)
            tma.async_copy_global_to_shared(k_desc, [nxt, 0], kv_bar.index(1 - slot), k_smem.index(1 - slot))
            tma.async_copy_global_to_shared(v_desc, [nxt, 0], kv_bar.index(1 - slot), v_smem.index(1 - slot))
        mbarrier.wait(kv_bar.index(slot), (j // 2) & 1)

        k_t = k_smem.index(slot).permute((1, 0))  # [HEAD_DIM, BLOCK_N] view, no copy
        s = warpgroup_mma(q_smem, k_t, s_zero, use_acc=False)  # [BLOCK_M, BLOCK_N] fp32

        cols = j * BLOCK_N + offs_n
        keep = (cols[None, :] < N_CTX) & (offs_m[:, None] >= 0)  # full [BLOCK_M, BLOCK_N] mask
        if CAUSAL:
            keep = keep & (cols[None, :] <= offs_m[:, None])
        s = gl.where(keep, s * qk_scale, float("-inf"))

        m_ij = gl.maximum(m_i, gl.max(s, axis=1))
        p = gl.exp2(s - m_ij[:, None])
        alpha = gl.exp2(m_i - m_ij)
        l_i = l_i * alpha + gl.sum(p, axis=1)
        acc = acc * gl.convert_layout(alpha, o_rows_l)[:, None]
        p16 = gl.convert_layout(p.to(dtype), p_op)
        acc = warpgroup_mma(p16, v_smem.index(slot), acc)  # V: [BLOCK_N, HEAD_DIM] in shared memory
        m_i = m_ij

    mbarrier.invalidate(q_bar)
    mbarrier.invalidate(kv_bar.index(0))
    mbarrier.invalidate(kv_bar.index(1))

    acc = acc / gl.convert_layout(l_i, o_rows_l)[:, None]
    o_rows = m0 + gl.arange(0, BLOCK_M, layout=o_rows_l)
    offs_d = gl.arange(0, HEAD_DIM, layout=o_cols_l)
    o_ptrs = Out + off_hz.to(gl.int64) * N_CTX * HEAD_DIM + o_rows[:, None] * HEAD_DIM + offs_d[None, :]
    gl.store(o_ptrs, acc.to(dtype), mask=(o_rows[:, None] < N_CTX) & (offs_d[None, :] < HEAD_DIM))


_GL_DTYPES = {torch.float16: gl.float16, torch.bfloat16: gl.bfloat16}


def forward(q, k, v, causal: bool, sm_scale: float) -> torch.Tensor:
    B, H, N, D = q.shape
    if D not in (16, 32, 64, 128):
        raise ValueError(f"head_dim {D}: this kernel needs a power of two from 16 to 128")
    if q.dtype not in _GL_DTYPES:
        raise ValueError(f"dtype {q.dtype}: this kernel takes fp16 or bf16")
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    out = torch.empty_like(q)
    gdtype = _GL_DTYPES[q.dtype]
    q_layout = gl.NVMMASharedLayout.get_default_for([BLOCK_M, D], gdtype)
    kv_layout = gl.NVMMASharedLayout.get_default_for([BLOCK_N, D], gdtype)
    q_desc = TensorDescriptor.from_tensor(q.view(B * H * N, D), [BLOCK_M, D], q_layout)
    k_desc = TensorDescriptor.from_tensor(k.view(B * H * N, D), [BLOCK_N, D], kv_layout)
    v_desc = TensorDescriptor.from_tensor(v.view(B * H * N, D), [BLOCK_N, D], kv_layout)
    _attn_fwd[(triton.cdiv(N, BLOCK_M), B * H)](
        q_desc, k_desc, v_desc, out, sm_scale * LOG2E, N,
        HEAD_DIM=D, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, CAUSAL=causal,
        num_warps=NUM_WARPS,
    )
    return out
