"""FA2-style attention forward for ``mha_fwd``: the seed of every search.

One program computes BLOCK_M query rows of one (batch, head) with an online softmax over key
tiles. Causal attention is split into key tiles wholly below the diagonal (no mask, BLOCK_N
keys each) and the tiles that cross it (masked, BLOCK_N_MASKED keys each); a ragged last tile
is masked the same way, so any length works. Structural choices (warp specialisation, TMA, the
order of the work, lazy rescaling, exp2) are constexpr switches stored beside the tile sizes in
each TUNABLES entry, so search operators flip them just as they move tile sizes.
"""

import math

import torch
import triton
import triton.language as tl

# Tunables per (largest head_dim served, "causal" or "full", measured sequence length). A call
# takes the entry of the smallest head_dim at least its own, of its mode, and of the measured
# length nearest its own on a log scale (1-2047 -> 1024, 2048-8191 -> 4096, 8192+ -> 16384).
#   BLOCK_M query rows per program; BLOCK_N keys per unmasked tile; BLOCK_N_MASKED keys per tile
#     crossing the diagonal or the end of the sequence; num_warps; num_stages (pipelining depth).
#   WARP_SPEC 1: key loops warp-specialised (tl.range(warp_specialize=True)).
#   TMA 1: K and V tiles read through tensor descriptors (TMA on Hopper) where rows are 16-byte aligned.
#   ORDER 0: row blocks in launch order; 1: longest rows (last row blocks) first; 2: a persistent
#     grid, one program per SM, taking the row blocks longest first.
#   LAZY_RESCALE 1: the accumulator is rescaled only when a row max grows by more than RESCALE_LOG2.
#   EXP2 1: exp2 with log2(e) folded into the scale; 0: exp.
TUNABLES = {
    (64, "full", 1024): {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_N_MASKED": 32, "num_warps": 8, "num_stages": 3,
                         "WARP_SPEC": 0, "TMA": 0, "ORDER": 0, "LAZY_RESCALE": 0, "EXP2": 1},
    (64, "full", 4096): {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_N_MASKED": 64, "num_warps": 8, "num_stages": 3,
                         "WARP_SPEC": 0, "TMA": 1, "ORDER": 0, "LAZY_RESCALE": 0, "EXP2": 1},
    (64, "full", 16384): {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_N_MASKED": 64, "num_warps": 8, "num_stages": 3,
                          "WARP_SPEC": 0, "TMA": 1, "ORDER": 0, "LAZY_RESCALE": 0, "EXP2": 1},
    (64, "causal", 1024): {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_N_MASKED": 64, "num_warps": 8, "num_stages": 3,
                           "WARP_SPEC": 0, "TMA": 0, "ORDER": 0, "LAZY_RESCALE": 0, "EXP2": 1},
    (64, "causal", 4096): {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_N_MASKED": 64, "num_warps": 8, "num_stages": 3,
                           "WARP_SPEC": 0, "TMA": 0, "ORDER": 0, "LAZY_RESCALE": 0, "EXP2": 1},
    (64, "causal", 16384): {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_N_MASKED": 64, "num_warps": 8, "num_stages": 3,
                            "WARP_SPEC": 0, "TMA": 0, "ORDER": 1, "LAZY_RESCALE": 0, "EXP2": 1},
    (128, "full", 1024): {"BLOCK_M": 256, "BLOCK_N": 64, "BLOCK_N_MASKED": 64, "num_warps": 8, "num_stages": 4,
                          "WARP_SPEC": 0, "TMA": 1, "ORDER": 0, "LAZY_RESCALE": 0, "EXP2": 1},
    (128, "full", 4096): {"BLOCK_M": 256, "BLOCK_N": 64, "BLOCK_N_MASKED": 64, "num_warps": 8, "num_stages": 4,
                          "WARP_SPEC": 0, "TMA": 1, "ORDER": 0, "LAZY_RESCALE": 0, "EXP2": 1},
    (128, "full", 16384): {"BLOCK_M": 256, "BLOCK_N": 64, "BLOCK_N_MASKED": 64, "num_warps": 8, "num_stages": 4,
                           "WARP_SPEC": 0, "TMA": 1, "ORDER": 0, "LAZY_RESCALE": 0, "EXP2": 1},
    (128, "causal", 1024): {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_N_MASKED": 64, "num_warps": 8, "num_stages": 3,
                            "WARP_SPEC": 0, "TMA": 0, "ORDER": 0, "LAZY_RESCALE": 0, "EXP2": 1},
    (128, "causal", 4096): {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_N_MASKED": 64, "num_warps": 8, "num_stages": 4,
                            "WARP_SPEC": 0, "TMA": 1, "ORDER": 0, "LAZY_RESCALE": 0, "EXP2": 1},
    (128, "causal", 16384): {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_N_MASKED": 64, "num_warps": 8, "num_stages": 4,
                             "WARP_SPEC": 0, "TMA": 1, "ORDER": 0, "LAZY_RESCALE": 0, "EXP2": 1},
}

LOG2E = 1.4426950408889634
# Lazy rescaling lets p = exp2(s - stale max) grow up to 2**RESCALE_LOG2 = 256: safe in fp16/bf16.
RESCALE_LOG2 = 8.0
CPU_PROGRAMS = 3  # a persistent grid's size in the interpreter: few enough that programs loop


@triton.jit
def _exp(x, EXP2: tl.constexpr):
    if EXP2:
        return tl.math.exp2(x)
    else:
        return tl.exp(x)


@triton.jit
def _attn_tiles(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_vn, offs_m, offs_d, d_mask,
                lo, hi, N_CTX, qk_scale, rescale_above,
                HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, MASKED: tl.constexpr,
                CAUSAL: tl.constexpr, WARP_SPEC: tl.constexpr, TMA: tl.constexpr, LAZY_RESCALE: tl.constexpr,
                EXP2: tl.constexpr):
    offs_n = tl.arange(0, BLOCK_N)
    if TMA:
        # Zero-filled past N_CTX and HEAD_DIM by the copy engine.
        k_desc = tl.make_tensor_descriptor(k_base, shape=[N_CTX, HEAD_DIM], strides=[stride_kn, 1],
                                           block_shape=[BLOCK_N, BLOCK_D])
        v_desc = tl.make_tensor_descriptor(v_base, shape=[N_CTX, HEAD_DIM], strides=[stride_vn, 1],
                                           block_shape=[BLOCK_N, BLOCK_D])
    for start_n in tl.range(lo, hi, BLOCK_N, warp_specialize=WARP_SPEC):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        cols = start_n + offs_n
        if TMA:
            k = k_desc.load([start_n, 0])  # [BLOCK_N, BLOCK_D]
            v = v_desc.load([start_n, 0])  # [BLOCK_N, BLOCK_D]
        else:
            kv_mask = d_mask[None, :]
            if MASKED:
                kv_mask = kv_mask & (cols[:, None] < N_CTX)
            k = tl.load(k_base + cols[:, None] * stride_kn + offs_d[None, :], mask=kv_mask, other=0.0)
            v = tl.load(v_base + cols[:, None] * stride_vn + offs_d[None, :], mask=kv_mask, other=0.0)
        qk = tl.dot(q, tl.trans(k))  # [BLOCK_M, BLOCK_N], fp32
        if MASKED:
            keep = cols[None, :] < N_CTX
            if CAUSAL:
                keep = keep & (cols[None, :] <= offs_m[:, None])
            qk = tl.where(keep, qk, float("-inf"))
        m_ij = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
        if LAZY_RESCALE:
            # FA4's conditional rescaling: keep the stale max while no row's max has grown by more
            # than rescale_above; acc and l_i share that max, so acc / l_i stays exact.
            if tl.max(m_ij - m_i, 0) > rescale_above:
                alpha = _exp(m_i - m_ij, EXP2)
                l_i = l_i * alpha
                acc = acc * alpha[:, None]
                m_i = m_ij
        else:
            alpha = _exp(m_i - m_ij, EXP2)
            l_i = l_i * alpha
            acc = acc * alpha[:, None]
            m_i = m_ij
        p = _exp(qk * qk_scale - m_i[:, None], EXP2)
        l_i = l_i + tl.sum(p, 1)
        acc = tl.dot(p.to(v.dtype), v, acc)
    return acc, l_i, m_i


@triton.jit
def _attn_block(tile, Q, K, V, Out, qk_scale, rescale_above,
                stride_qz, stride_qh, stride_qm, stride_kz, stride_kh, stride_kn,
                stride_vz, stride_vh, stride_vn, stride_oz, stride_oh, stride_om,
                H, BH, N_CTX, num_m,
                HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                BLOCK_N_MASKED: tl.constexpr, CAUSAL: tl.constexpr, WARP_SPEC: tl.constexpr, TMA: tl.constexpr,
                ORDER: tl.constexpr, LAZY_RESCALE: tl.constexpr, EXP2: tl.constexpr):
    """BLOCK_M query rows of one (batch, head): tile number ``tile`` in the order ORDER asks for."""
    if ORDER == 0:
        start_m = tile % num_m
        off_hz = tile // num_m
    else:
        # Last row blocks of every (batch, head) first: under a causal mask they see the most keys.
        start_m = num_m - 1 - tile // BH
        off_hz = tile % BH
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
        split = m0
        hi = tl.minimum(m0 + BLOCK_M, N_CTX)
    else:
        split = N_CTX
        hi = N_CTX
    # Unmasked tiles end on a multiple of both tile widths (powers of two): both phases stay aligned.
    split = split // BLOCK_N * BLOCK_N // BLOCK_N_MASKED * BLOCK_N_MASKED
    acc, l_i, m_i = _attn_tiles(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_vn, offs_m, offs_d, d_mask,
                                0, split, N_CTX, qk_scale, rescale_above, HEAD_DIM, BLOCK_D, BLOCK_N, False, CAUSAL,
                                WARP_SPEC, TMA, LAZY_RESCALE, EXP2)
    acc, l_i, m_i = _attn_tiles(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_vn, offs_m, offs_d, d_mask,
                                split, hi, N_CTX, qk_scale, rescale_above, HEAD_DIM, BLOCK_D, BLOCK_N_MASKED, True,
                                CAUSAL, WARP_SPEC, TMA, LAZY_RESCALE, EXP2)

    acc = acc / l_i[:, None]
    tl.store(o_base + offs_m[:, None] * stride_om + offs_d[None, :], acc.to(Out.dtype.element_ty),
             mask=row_mask[:, None] & d_mask[None, :])


@triton.jit(do_not_specialize=["N_CTX"])
def _attn_fwd(Q, K, V, Out, qk_scale, rescale_above,
              stride_qz, stride_qh, stride_qm, stride_kz, stride_kh, stride_kn,
              stride_vz, stride_vh, stride_vn, stride_oz, stride_oh, stride_om,
              H, BH, N_CTX,
              HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
              BLOCK_N_MASKED: tl.constexpr, CAUSAL: tl.constexpr, WARP_SPEC: tl.constexpr, TMA: tl.constexpr,
              ORDER: tl.constexpr, LAZY_RESCALE: tl.constexpr, EXP2: tl.constexpr):
    num_m = (N_CTX + BLOCK_M - 1) // BLOCK_M
    if ORDER == 2:
        for tile in tl.range(tl.program_id(0), num_m * BH, tl.num_programs(0)):
            _attn_block(tile, Q, K, V, Out, qk_scale, rescale_above,
                        stride_qz, stride_qh, stride_qm, stride_kz, stride_kh, stride_kn,
                        stride_vz, stride_vh, stride_vn, stride_oz, stride_oh, stride_om, H, BH, N_CTX, num_m,
                        HEAD_DIM, BLOCK_D, BLOCK_M, BLOCK_N, BLOCK_N_MASKED, CAUSAL, WARP_SPEC, TMA, ORDER,
                        LAZY_RESCALE, EXP2)
    else:
        _attn_block(tl.program_id(0), Q, K, V, Out, qk_scale, rescale_above,
                    stride_qz, stride_qh, stride_qm, stride_kz, stride_kh, stride_kn,
                    stride_vz, stride_vh, stride_vn, stride_oz, stride_oh, stride_om, H, BH, N_CTX, num_m,
                    HEAD_DIM, BLOCK_D, BLOCK_M, BLOCK_N, BLOCK_N_MASKED, CAUSAL, WARP_SPEC, TMA, ORDER,
                    LAZY_RESCALE, EXP2)


def _config(head_dim: int, causal: bool, seq: int) -> dict[str, int]:
    """The TUNABLES entry for a call; lengths between buckets go to the measured length nearest on
    a log scale, i.e. to the longer one once seq² ≥ shorter · longer (evolve/export/buckets.py)."""
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


def _tma_ready(*ts: torch.Tensor) -> bool:
    """TMA needs unit stride along head_dim and a 16-byte aligned start for every row and head."""
    return all(t.stride(-1) == 1 and t.data_ptr() % 16 == 0
               and all(s * t.element_size() % 16 == 0 for s in t.stride()[:-1]) for t in ts)


def _programs(q: torch.Tensor, cfg: dict[str, int]) -> int:
    B, H, N, _ = q.shape
    tiles = triton.cdiv(N, cfg["BLOCK_M"]) * B * H
    if cfg["ORDER"] != 2:
        return tiles
    sms = torch.cuda.get_device_properties(q.device).multi_processor_count if q.is_cuda else CPU_PROGRAMS
    return min(tiles, sms)


def _launch(q, k, v, out, causal: bool, sm_scale: float, cfg: dict[str, int], programs: int) -> None:
    B, H, N, D = q.shape
    tma = bool(cfg["TMA"]) and _tma_ready(k, v)
    if tma:
        # Device-side descriptors live in global scratch that Triton asks this allocator for.
        device = q.device
        triton.set_allocator(lambda size, alignment, stream: torch.empty(size, dtype=torch.int8, device=device))
    scale = sm_scale * LOG2E if cfg["EXP2"] else sm_scale
    rescale_above = RESCALE_LOG2 if cfg["EXP2"] else RESCALE_LOG2 * math.log(2.0)
    _attn_fwd[(programs,)](
        q, k, v, out, scale, rescale_above,
        q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2), out.stride(0), out.stride(1), out.stride(2),
        H, B * H, N,
        HEAD_DIM=D, BLOCK_D=max(16, triton.next_power_of_2(D)),
        BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"], BLOCK_N_MASKED=cfg["BLOCK_N_MASKED"], CAUSAL=causal,
        WARP_SPEC=bool(cfg["WARP_SPEC"]), TMA=tma, ORDER=cfg["ORDER"], LAZY_RESCALE=bool(cfg["LAZY_RESCALE"]),
        EXP2=bool(cfg["EXP2"]), num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )


def forward(q, k, v, causal: bool, sm_scale: float) -> torch.Tensor:
    B, H, N, D = q.shape
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))  # the kernel steps d by 1
    cfg = _config(D, causal, N)
    out = torch.empty_like(q)
    _launch(q, k, v, out, causal, sm_scale, cfg, _programs(q, cfg))
    return out
