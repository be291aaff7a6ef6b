"""FA3-style attention forward for ``mha_fwd`` in Gluon (triton.experimental.gluon, triton 3.6),
for Hopper (sm_90) only: Gluon has no interpreter and this kernel uses wgmma and TMA.

One program computes ROWS = 128 query rows of one (batch, head); 8 warps, i.e. two consumer
warpgroups of 64 rows each. Q, K and V are read through host-side TMA descriptors over the 2-D
(batch * heads * seq, head_dim) views; K and V go through STAGES-slot rings in shared memory with
separate K and V mbarriers (a K slot is refilled as soon as its QK^T is done, a V slot once its
PV is). Keys past the sequence (the next head's rows, or TMA's zero fill) and past the causal
diagonal are masked to -inf, only in the tiles that need it; exp2 with log2(e) folded into the
scale; O / l stored with a masked ``gl.store``. Structural switches, per TUNABLES entry:
  PIPELINE 1: async wgmma (FA3's intra-warpgroup overlap): QK^T of tile j and PV of tile j - 1
    are issued together, the softmax of tile j runs while PV of tile j - 1 is in flight;
    0: both MMAs synchronous.
  WARP_SPEC 1: producer/consumer warp specialisation (``gl.warp_specialize``): a 1-warp loader
    partition fills the Q buffer and the K/V rings (ready/empty mbarriers), the 8 consumer warps
    only compute; 0: the consumer warps issue the TMA copies themselves.
  ORDER 0: row blocks in launch order; 1: last row blocks (under a causal mask the longest) first;
    2: a persistent grid of one program per SM taking the row blocks longest first.
Not implemented: ping-pong scheduling of the two consumer warpgroups (FA3's named barriers).

Verified: compiles with triton 3.6 for sm_90 for every (head_dim 32/64/128, causal, fp16/bf16)
case the task's GPU sweep, stability trials and benchmarks use, in each variant of
benchmarks/gluon_seed.py (tests/honest/compile_gluon_seed.py): no spills; shared memory at
D = 128 with 2 slots 160 KB (224 KB with 3); 8 warps without the loader (162 registers
synchronous, 255 pipelined), 12 with it (launched at 168 registers, the consumer raised to 240
by setmaxnreg, the loader lowered to 24). Passes the static gate.
On an H200 (2026-12-02, torch 2.11, cuDNN 9.19, triton 3.6; benchmarks/results/gluon-seed-h200.md),
every variant passed 81 cases against the fp32 reference (the GPU sweep, stability trials, lengths
1 to 4099, the benchmark shapes) and ran at 0.63-0.80x of cuDNN on the geometric mean of the 12
benchmark shapes. The synchronous one, without the loader, was fastest at D = 64: 0.87-1.08x
cuDNN, above it at N 16384. At D = 128 every variant ran at 0.64-0.78x: pipelining and the
loader gained a few percent there and lost at D = 64. The table below takes each shape's fastest,
which is about 0.82x on the geometric mean of that run's figures. That figure is the best of nine
on each shape, so it is slightly optimistic, and this table has not been timed as a whole.
"""

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    fence_async_shared,
    mbarrier,
    tma,
    warpgroup_mma,
    warpgroup_mma_wait,
)
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

# Tunables per (largest head_dim served, "causal" or "full", measured sequence length). A call
# takes the entry of the smallest head_dim at least its own, of its mode, and of the measured
# length nearest its own on a log scale (1-2047 -> 1024, 2048-8191 -> 4096, 8192+ -> 16384).
#   BLOCK_N keys per tile; STAGES slots of each of the K and V rings;
#   PIPELINE, WARP_SPEC, ORDER: the structural switches of the header.
# The rows per program and the consumer's warps are fixed (ROWS, CONSUMER_WARPS below): the
# layouts assume two warpgroups of 64 rows, so they are not tunables.
# Each entry is the variant of benchmarks/gluon_seed.py that was fastest on its benchmark shape in
# one run on an H200 (benchmarks/results/gluon-seed-h200.md): synchronous MMAs without the loader
# at D = 64; pipelined with the loader at D = 128 (persistent at N 1024 causal and N 4096, three
# K/V slots at N 16384).
TUNABLES = {
    (64, "full", 1024): {"BLOCK_N": 128, "STAGES": 2, "PIPELINE": 0, "WARP_SPEC": 0, "ORDER": 1},
    (64, "full", 4096): {"BLOCK_N": 128, "STAGES": 2, "PIPELINE": 0, "WARP_SPEC": 0, "ORDER": 1},
    (64, "full", 16384): {"BLOCK_N": 128, "STAGES": 2, "PIPELINE": 0, "WARP_SPEC": 0, "ORDER": 1},
    (64, "causal", 1024): {"BLOCK_N": 128, "STAGES": 2, "PIPELINE": 0, "WARP_SPEC": 0, "ORDER": 1},
    (64, "causal", 4096): {"BLOCK_N": 128, "STAGES": 2, "PIPELINE": 0, "WARP_SPEC": 0, "ORDER": 1},
    (64, "causal", 16384): {"BLOCK_N": 128, "STAGES": 2, "PIPELINE": 0, "WARP_SPEC": 0, "ORDER": 1},
    (128, "full", 1024): {"BLOCK_N": 128, "STAGES": 2, "PIPELINE": 1, "WARP_SPEC": 1, "ORDER": 1},
    (128, "full", 4096): {"BLOCK_N": 128, "STAGES": 2, "PIPELINE": 1, "WARP_SPEC": 1, "ORDER": 2},
    (128, "full", 16384): {"BLOCK_N": 128, "STAGES": 3, "PIPELINE": 1, "WARP_SPEC": 1, "ORDER": 1},
    (128, "causal", 1024): {"BLOCK_N": 128, "STAGES": 2, "PIPELINE": 1, "WARP_SPEC": 1, "ORDER": 2},
    (128, "causal", 4096): {"BLOCK_N": 128, "STAGES": 2, "PIPELINE": 1, "WARP_SPEC": 1, "ORDER": 2},
    (128, "causal", 16384): {"BLOCK_N": 128, "STAGES": 3, "PIPELINE": 1, "WARP_SPEC": 1, "ORDER": 1},
}

ROWS = 128  # query rows per program: two consumer warpgroups of 64 rows
CONSUMER_WARPS = 8
LOG2E = 1.4426950408889634
LOADER_REGS = 24  # registers per thread of the 1-warp loader partition (its warpgroup's minimum)


@gluon.jit
def _tile_coords(tile, num_m, BH, ORDER: gl.constexpr):
    """(row block, batch * head) of work item ``tile``."""
    if ORDER == 0:
        start_m = tile % num_m
        off_hz = tile // num_m
    else:
        # Last row blocks of every (batch, head) first: under a causal mask they see the most keys.
        start_m = num_m - 1 - tile // BH
        off_hz = tile % BH
    return start_m, off_hz


@gluon.jit
def _key_tiles(m0, N_CTX, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, CAUSAL: gl.constexpr):
    """(number of key tiles, key count below which a tile needs no mask) for rows m0 ..."""
    if CAUSAL:
        hi = gl.minimum(m0 + BLOCK_M, N_CTX)
        limit = gl.minimum(m0 + 1, N_CTX)
    else:
        hi = N_CTX
        limit = N_CTX
    return gl.cdiv(hi, BLOCK_N), limit


@gluon.jit
def _tile_range(ORDER: gl.constexpr):
    """First work item, last (exclusive) and step of this program."""
    if ORDER == 2:
        return gl.program_id(0), gl.num_programs(0)
    else:
        return gl.program_id(0), 0


@gluon.jit
def _load(desc, row, bar, buf, NBYTES: gl.constexpr):
    mbarrier.expect(bar, NBYTES)
    tma.async_copy_global_to_shared(desc, [row, 0], bar, buf)


@gluon.jit
def _release(desc, bufs, ready, empty, idx, it, n_tiles, row0,
             STAGES: gl.constexpr, BLOCK_N: gl.constexpr, NBYTES: gl.constexpr, WARP_SPEC: gl.constexpr):
    """Ring slot of key tile ``idx`` (counted over the program's life) is read: hand it back to the
    loader, or (no loader) refill it with this row block's tile ``idx - it + STAGES``."""
    slot = idx % STAGES
    # Every consumer warp must be done with the slot: mbarrier.arrive and the TMA copy are issued
    # by one thread.
    gl.thread_barrier()
    if WARP_SPEC:
        mbarrier.arrive(empty.index(slot), count=1)
    else:
        nxt = idx - it + STAGES
        if nxt < n_tiles:
            _load(desc, row0 + nxt * BLOCK_N, ready.index(slot), bufs.index(slot), NBYTES)


@gluon.jit
def _masked(s, offs_m, offs_n, j, N_CTX, limit, BLOCK_N: gl.constexpr, CAUSAL: gl.constexpr):
    if (j + 1) * BLOCK_N > limit:
        cols = j * BLOCK_N + offs_n
        keep = (cols[None, :] < N_CTX) & (offs_m[:, None] >= 0)  # full [BLOCK_M, BLOCK_N] mask
        if CAUSAL:
            keep = keep & (cols[None, :] <= offs_m[:, None])
        s = gl.where(keep, s, float("-inf"))
    return s


@gluon.jit
def _row_block(q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_ready, q_empty, k_ready, k_empty, v_ready,
               v_empty, Out, qk_scale, N_CTX, start_m, off_hz, it, tile_i,
               HEAD_DIM: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, STAGES: gl.constexpr,
               CAUSAL: gl.constexpr, PIPELINE: gl.constexpr, WARP_SPEC: gl.constexpr, num_warps: gl.constexpr):
    """The consumer's work on one row block; ``it`` counts the key tiles this program consumed
    before it, ``tile_i`` the row blocks. Returns the new ``it``."""
    dtype: gl.constexpr = q_desc.dtype
    s_mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[num_warps, 1],
                                                    instr_shape=[16, BLOCK_N, 16])
    o_mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[num_warps, 1],
                                                    instr_shape=[16, HEAD_DIM, 16])
    p_op: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_mma, k_width=2)
    rows_l: gl.constexpr = gl.SliceLayout(1, s_mma)
    cols_l: gl.constexpr = gl.SliceLayout(0, s_mma)
    o_rows_l: gl.constexpr = gl.SliceLayout(1, o_mma)
    o_cols_l: gl.constexpr = gl.SliceLayout(0, o_mma)
    KV_BYTES: gl.constexpr = BLOCK_N * HEAD_DIM * dtype.primitive_bitwidth // 8
    Q_BYTES: gl.constexpr = BLOCK_M * HEAD_DIM * dtype.primitive_bitwidth // 8

    row0 = off_hz * N_CTX  # this head's first row in the 2-D views
    m0 = start_m * BLOCK_M
    n_tiles, limit = _key_tiles(m0, N_CTX, BLOCK_M, BLOCK_N, CAUSAL)
    if not WARP_SPEC:
        gl.thread_barrier()  # the previous row block's reads of Q and the rings are done
        _load(q_desc, row0 + m0, q_ready, q_smem, Q_BYTES)
        for st in gl.static_range(STAGES):
            if st < n_tiles:
                slot = (it + st) % STAGES
                _load(k_desc, row0 + st * BLOCK_N, k_ready.index(slot), k_smem.index(slot), KV_BYTES)
                _load(v_desc, row0 + st * BLOCK_N, v_ready.index(slot), v_smem.index(slot), KV_BYTES)
    mbarrier.wait(q_ready, tile_i & 1)

    offs_m = m0 + gl.arange(0, BLOCK_M, layout=rows_l)
    offs_n = gl.arange(0, BLOCK_N, layout=cols_l)
    s_zero = gl.zeros([BLOCK_M, BLOCK_N], gl.float32, layout=s_mma)
    acc = gl.zeros([BLOCK_M, HEAD_DIM], gl.float32, layout=o_mma)

    if PIPELINE:
        # Tile 0: S only; its PV is issued with the next tile's QK^T.
        slot = it % STAGES
        mbarrier.wait(k_ready.index(slot), (it // STAGES) & 1)
        s = warpgroup_mma(q_smem, k_smem.index(slot).permute((1, 0)), s_zero, use_acc=False)
        if n_tiles == 1:
            if WARP_SPEC:
                gl.thread_barrier()
                mbarrier.arrive(q_empty, count=1)
        _release(k_desc, k_smem, k_ready, k_empty, it, it, n_tiles, row0, STAGES, BLOCK_N, KV_BYTES, WARP_SPEC)
        s = _masked(s, offs_m, offs_n, 0, N_CTX, limit, BLOCK_N, CAUSAL)
        m_i = gl.max(s, axis=1) * qk_scale
        p = gl.exp2(s * qk_scale - m_i[:, None])
        l_i = gl.sum(p, axis=1)
        for j in range(1, n_tiles):
            idx = it + j
            slot = idx % STAGES
            mbarrier.wait(k_ready.index(slot), (idx // STAGES) & 1)
            s_tok = warpgroup_mma(q_smem, k_smem.index(slot).permute((1, 0)), s_zero, use_acc=False,
                                  is_async=True)
            prev = idx - 1
            pslot = prev % STAGES
            mbarrier.wait(v_ready.index(pslot), (prev // STAGES) & 1)
            p16 = gl.convert_layout(p.to(dtype), p_op)
            o_tok = warpgroup_mma(p16, v_smem.index(pslot), acc, is_async=True)
            s = warpgroup_mma_wait(1, deps=[s_tok])  # QK^T done, PV still in flight
            if WARP_SPEC:
                if j == n_tiles - 1:
                    gl.thread_barrier()
                    mbarrier.arrive(q_empty, count=1)
            _release(k_desc, k_smem, k_ready, k_empty, idx, it, n_tiles, row0, STAGES, BLOCK_N, KV_BYTES,
                     WARP_SPEC)
            s = _masked(s, offs_m, offs_n, j, N_CTX, limit, BLOCK_N, CAUSAL)
            m_new = gl.maximum(m_i, gl.max(s, axis=1) * qk_scale)
            alpha = gl.exp2(m_i - m_new)
            p = gl.exp2(s * qk_scale - m_new[:, None])
            l_i = l_i * alpha + gl.sum(p, axis=1)
            m_i = m_new
            acc, p16 = warpgroup_mma_wait(0, deps=[o_tok, p16])
            _release(v_desc, v_smem, v_ready, v_empty, prev, it, n_tiles, row0, STAGES, BLOCK_N, KV_BYTES,
                     WARP_SPEC)
            acc = acc * gl.convert_layout(alpha, o_rows_l)[:, None]
        last = it + n_tiles - 1
        lslot = last % STAGES
        mbarrier.wait(v_ready.index(lslot), (last // STAGES) & 1)
        p16 = gl.convert_layout(p.to(dtype), p_op)
        acc = warpgroup_mma(p16, v_smem.index(lslot), acc)
        _release(v_desc, v_smem, v_ready, v_empty, last, it, n_tiles, row0, STAGES, BLOCK_N, KV_BYTES, WARP_SPEC)
    else:
        m_i = gl.full([BLOCK_M], float("-inf"), gl.float32, layout=rows_l)
        l_i = gl.full([BLOCK_M], 0.0, gl.float32, layout=rows_l)
        for j in range(n_tiles):
            idx = it + j
            slot = idx % STAGES
            phase = (idx // STAGES) & 1
            mbarrier.wait(k_ready.index(slot), phase)
            s = warpgroup_mma(q_smem, k_smem.index(slot).permute((1, 0)), s_zero, use_acc=False)
            if WARP_SPEC:
                if j == n_tiles - 1:
                    gl.thread_barrier()
                    mbarrier.arrive(q_empty, count=1)
            _release(k_desc, k_smem, k_ready, k_empty, idx, it, n_tiles, row0, STAGES, BLOCK_N, KV_BYTES,
                     WARP_SPEC)
            s = _masked(s, offs_m, offs_n, j, N_CTX, limit, BLOCK_N, CAUSAL)
            m_new = gl.maximum(m_i, gl.max(s, axis=1) * qk_scale)
            alpha = gl.exp2(m_i - m_new)
            p = gl.exp2(s * qk_scale - m_new[:, None])
            l_i = l_i * alpha + gl.sum(p, axis=1)
            m_i = m_new
            acc = acc * gl.convert_layout(alpha, o_rows_l)[:, None]
            mbarrier.wait(v_ready.index(slot), phase)
            p16 = gl.convert_layout(p.to(dtype), p_op)
            acc = warpgroup_mma(p16, v_smem.index(slot), acc)
            _release(v_desc, v_smem, v_ready, v_empty, idx, it, n_tiles, row0, STAGES, BLOCK_N, KV_BYTES,
                     WARP_SPEC)

    acc = acc / gl.convert_layout(l_i, o_rows_l)[:, None]
    o_rows = m0 + gl.arange(0, BLOCK_M, layout=o_rows_l)
    offs_d = gl.arange(0, HEAD_DIM, layout=o_cols_l)
    o_ptrs = Out + off_hz.to(gl.int64) * N_CTX * HEAD_DIM + o_rows[:, None] * HEAD_DIM + offs_d[None, :]
    gl.store(o_ptrs, acc.to(dtype), mask=(o_rows[:, None] < N_CTX) & (offs_d[None, :] < HEAD_DIM))
    return it + n_tiles


@gluon.jit
def _consumer(q_desc, k_desc, v_desc, bufs, bars, Out, qk_scale, N_CTX, BH,
              HEAD_DIM: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, STAGES: gl.constexpr,
              CAUSAL: gl.constexpr, PIPELINE: gl.constexpr, WARP_SPEC: gl.constexpr, ORDER: gl.constexpr,
              num_warps: gl.constexpr):
    q_smem, k_smem, v_smem = bufs
    q_ready, q_empty, k_ready, k_empty, v_ready, v_empty = bars
    num_m = gl.cdiv(N_CTX, BLOCK_M)
    first, step = _tile_range(ORDER)
    if ORDER == 2:
        it = 0
        tile_i = 0
        for tile in range(first, num_m * BH, step):
            start_m, off_hz = _tile_coords(tile, num_m, BH, ORDER)
            it = _row_block(q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_ready, q_empty, k_ready, k_empty,
                            v_ready, v_empty, Out, qk_scale, N_CTX, start_m, off_hz, it, tile_i,
                            HEAD_DIM, BLOCK_M, BLOCK_N, STAGES, CAUSAL, PIPELINE, WARP_SPEC, num_warps)
            tile_i += 1
    else:
        start_m, off_hz = _tile_coords(first, num_m, BH, ORDER)
        _row_block(q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_ready, q_empty, k_ready, k_empty,
                   v_ready, v_empty, Out, qk_scale, N_CTX, start_m, off_hz, 0, 0,
                   HEAD_DIM, BLOCK_M, BLOCK_N, STAGES, CAUSAL, PIPELINE, WARP_SPEC, num_warps)


@gluon.jit
def _loader_row_block(q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_ready, q_empty, k_ready, k_empty, v_ready,
                      v_empty, N_CTX, start_m, off_hz, it, tile_i,
                      HEAD_DIM: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, STAGES: gl.constexpr,
                      CAUSAL: gl.constexpr):
    dtype: gl.constexpr = q_desc.dtype
    KV_BYTES: gl.constexpr = BLOCK_N * HEAD_DIM * dtype.primitive_bitwidth // 8
    Q_BYTES: gl.constexpr = BLOCK_M * HEAD_DIM * dtype.primitive_bitwidth // 8
    row0 = off_hz * N_CTX
    m0 = start_m * BLOCK_M
    n_tiles, limit = _key_tiles(m0, N_CTX, BLOCK_M, BLOCK_N, CAUSAL)
    # mbarriers start with the phase before phase 0 complete: the first waits on "empty" pass.
    mbarrier.wait(q_empty, (tile_i & 1) ^ 1)
    _load(q_desc, row0 + m0, q_ready, q_smem, Q_BYTES)
    for j in range(n_tiles):
        idx = it + j
        slot = idx % STAGES
        phase = (idx // STAGES) & 1
        mbarrier.wait(k_empty.index(slot), phase ^ 1)
        _load(k_desc, row0 + j * BLOCK_N, k_ready.index(slot), k_smem.index(slot), KV_BYTES)
        mbarrier.wait(v_empty.index(slot), phase ^ 1)
        _load(v_desc, row0 + j * BLOCK_N, v_ready.index(slot), v_smem.index(slot), KV_BYTES)
    return it + n_tiles


@gluon.jit
def _loader(q_desc, k_desc, v_desc, bufs, bars, N_CTX, BH,
            HEAD_DIM: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, STAGES: gl.constexpr,
            CAUSAL: gl.constexpr, ORDER: gl.constexpr):
    """The 1-warp producer partition: the same row blocks as the consumer, in the same order."""
    q_smem, k_smem, v_smem = bufs
    q_ready, q_empty, k_ready, k_empty, v_ready, v_empty = bars
    num_m = gl.cdiv(N_CTX, BLOCK_M)
    first, step = _tile_range(ORDER)
    if ORDER == 2:
        it = 0
        tile_i = 0
        for tile in range(first, num_m * BH, step):
            start_m, off_hz = _tile_coords(tile, num_m, BH, ORDER)
            it = _loader_row_block(q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_ready, q_empty, k_ready,
                                   k_empty, v_ready, v_empty, N_CTX, start_m, off_hz, it, tile_i,
                                   HEAD_DIM, BLOCK_M, BLOCK_N, STAGES, CAUSAL)
            tile_i += 1
    else:
        start_m, off_hz = _tile_coords(first, num_m, BH, ORDER)
        _loader_row_block(q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_ready, q_empty, k_ready, k_empty,
                          v_ready, v_empty, N_CTX, start_m, off_hz, 0, 0, HEAD_DIM, BLOCK_M, BLOCK_N, STAGES, CAUSAL)


@gluon.jit(do_not_specialize=["N_CTX", "BH"])
def _attn_fwd(q_desc, k_desc, v_desc, Out, qk_scale, N_CTX, BH,
              HEAD_DIM: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, STAGES: gl.constexpr,
              CAUSAL: gl.constexpr, PIPELINE: gl.constexpr, WARP_SPEC: gl.constexpr, ORDER: gl.constexpr,
              LOADER_REGS: gl.constexpr, num_warps: gl.constexpr):
    dtype: gl.constexpr = q_desc.dtype
    q_smem = gl.allocate_shared_memory(dtype, [BLOCK_M, HEAD_DIM], q_desc.layout)
    k_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_DIM], k_desc.layout)
    v_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_DIM], v_desc.layout)
    q_ready = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    q_empty = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    k_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    k_empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    v_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    v_empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    mbarrier.init(q_ready, count=1)
    mbarrier.init(q_empty, count=1)
    for st in gl.static_range(STAGES):
        mbarrier.init(k_ready.index(st), count=1)
        mbarrier.init(k_empty.index(st), count=1)
        mbarrier.init(v_ready.index(st), count=1)
        mbarrier.init(v_empty.index(st), count=1)
    fence_async_shared()
    bufs = (q_smem, k_smem, v_smem)
    bars = (q_ready, q_empty, k_ready, k_empty, v_ready, v_empty)
    if WARP_SPEC:
        gl.warp_specialize([
            (_consumer, (q_desc, k_desc, v_desc, bufs, bars, Out, qk_scale, N_CTX, BH, HEAD_DIM, BLOCK_M, BLOCK_N,
                         STAGES, CAUSAL, PIPELINE, WARP_SPEC, ORDER, num_warps)),
            (_loader, (q_desc, k_desc, v_desc, bufs, bars, N_CTX, BH, HEAD_DIM, BLOCK_M, BLOCK_N, STAGES, CAUSAL,
                       ORDER)),
        ], [1], [LOADER_REGS])
    else:
        _consumer(q_desc, k_desc, v_desc, bufs, bars, Out, qk_scale, N_CTX, BH, HEAD_DIM, BLOCK_M, BLOCK_N,
                  STAGES, CAUSAL, PIPELINE, WARP_SPEC, ORDER, num_warps)


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


_GL_DTYPES = {torch.float16: gl.float16, torch.bfloat16: gl.bfloat16}
H100_SMS = 132  # a persistent grid's size for meta tensors (the sm_90 compile check)


def _num_sms(q: torch.Tensor) -> int:
    return torch.cuda.get_device_properties(q.device).multi_processor_count if q.is_cuda else H100_SMS


def _require_hopper(device: torch.device) -> None:
    """A clear refusal instead of a compiler error elsewhere (meta tensors: the sm_90 compile check)."""
    if device.type == "meta":
        return
    if device.type != "cuda":
        raise ValueError(f"this Gluon kernel runs on a Hopper GPU (sm_90) only, not on {device.type}: "
                         "Gluon has no interpreter")
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) != (9, 0):
        raise ValueError(f"this Gluon kernel runs on a Hopper GPU (sm_90) only (wgmma, TMA): "
                         f"{torch.cuda.get_device_name(device)} is sm_{major}{minor}")


def forward(q, k, v, causal: bool, sm_scale: float) -> torch.Tensor:
    _require_hopper(q.device)
    B, H, N, D = q.shape
    if D not in (16, 32, 64, 128):
        raise ValueError(f"head_dim {D}: this kernel needs a power of two from 16 to 128")
    if q.dtype not in _GL_DTYPES:
        raise ValueError(f"dtype {q.dtype}: this kernel takes fp16 or bf16")
    cfg = _config(D, causal, N)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()  # the 2-D views need dense rows
    out = torch.empty_like(q)
    gdtype = _GL_DTYPES[q.dtype]
    bm, bn = ROWS, cfg["BLOCK_N"]
    q_desc = TensorDescriptor.from_tensor(q.view(B * H * N, D), [bm, D],
                                          gl.NVMMASharedLayout.get_default_for([bm, D], gdtype))
    kv_layout = gl.NVMMASharedLayout.get_default_for([bn, D], gdtype)
    k_desc = TensorDescriptor.from_tensor(k.view(B * H * N, D), [bn, D], kv_layout)
    v_desc = TensorDescriptor.from_tensor(v.view(B * H * N, D), [bn, D], kv_layout)
    tiles = triton.cdiv(N, bm) * B * H
    programs = min(tiles, _num_sms(q)) if cfg["ORDER"] == 2 else tiles
    extra = {}
    if cfg["WARP_SPEC"]:
        # num_warps + 4 warps in all (the loader's warpgroup): the register file split among them;
        # the partitions then move registers from the loader to the consumer.
        extra["maxnreg"] = 65536 // (32 * (CONSUMER_WARPS + 4)) // 8 * 8
    _attn_fwd[(programs,)](
        q_desc, k_desc, v_desc, out, sm_scale * LOG2E, N, B * H,
        HEAD_DIM=D, BLOCK_M=bm, BLOCK_N=bn, STAGES=cfg["STAGES"], CAUSAL=causal,
        PIPELINE=bool(cfg["PIPELINE"]), WARP_SPEC=bool(cfg["WARP_SPEC"]), ORDER=cfg["ORDER"],
        LOADER_REGS=LOADER_REGS, num_warps=CONSUMER_WARPS, **extra,
    )
    return out
