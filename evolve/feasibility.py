"""Whether one TUNABLES entry can compile for the GPU the search runs on (H100/H200, sm_90, with
triton 3.6), judged from its numbers alone so that the LLM-free operators never spend GPU time
on a configuration that cannot build.

Two rules, both measured with tests/honest/compile_seed.py:

- shared memory: the Q tile plus ``num_stages`` (or, for a kernel with its own K/V rings like the
  Gluon seed, ``STAGES``) buffers of one K and one V tile (the wider of
  BLOCK_N and BLOCK_N_MASKED; the two key loops reuse one allocation) plus a little for TMA and
  the lazy-rescale branch. Exact on the wgmma path (BLOCK_M >= 64), an overestimate on the
  mma.sync path (Q stays in registers), and checked against the 227 KiB a block may opt into on
  sm_90, the limit Triton compiles against;
- warp specialisation (``WARP_SPEC``) only with 8 warps: triton 3.6's Hopper pass crashes on
  4 warps (and builds no specialised partitions on sm_90 at any count).
"""

from __future__ import annotations

from collections.abc import Mapping

SHARED_LIMIT = 232448  # bytes: sm_90's opt-in maximum per block (228 KiB less 1 KiB reserved)
SHARED_RESERVE = 2048  # mbarriers of the TMA loads and of the lazy-rescale branch (1 KiB each)
DTYPE_BYTES = 2  # the task's GPU dtypes, fp16 and bf16
WARP_SPEC_WARPS = 8
LARGEST_HEAD_DIM = 128  # what an entry serves when its name does not say
# The value a tunable missing from an entry has in the seed's kernel.
SEED_DEFAULTS = {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 8, "num_stages": 3, "WARP_SPEC": 0}


def head_dim_of(entry: str) -> int:
    """The largest head_dim an entry serves, from its name ("128,causal,4096" or "128")."""
    first = entry.split(",")[0].strip()
    return int(first) if first.isdigit() else LARGEST_HEAD_DIM


def shared_bytes(values: Mapping[str, int], head_dim: int, dtype_bytes: int = DTYPE_BYTES) -> int:
    """Upper estimate of the shared memory one program of the seed's kernel takes."""
    v = {**SEED_DEFAULTS, **values}
    block_d = max(16, 1 << (head_dim - 1).bit_length())
    block_n = max(v["BLOCK_N"], v.get("BLOCK_N_MASKED", v["BLOCK_N"]))
    q_tile = v["BLOCK_M"] * block_d * dtype_bytes
    kv_tiles = 2 * block_n * block_d * dtype_bytes
    return q_tile + max(1, v.get("STAGES", v["num_stages"])) * kv_tiles + SHARED_RESERVE


def problems(values: Mapping[str, int], head_dim: int, dtype_bytes: int = DTYPE_BYTES) -> list[str]:
    """Why an entry cannot compile on sm_90; empty when it can."""
    v = {**SEED_DEFAULTS, **values}
    out = []
    shared = shared_bytes(v, head_dim, dtype_bytes)
    if shared > SHARED_LIMIT:
        out.append(f"needs ~{shared} B of shared memory, more than sm_90's {SHARED_LIMIT} B")
    if v["WARP_SPEC"] and v["num_warps"] != WARP_SPEC_WARPS:
        out.append(f"warp specialisation compiles with {WARP_SPEC_WARPS} warps only, not {v['num_warps']}")
    return out


def feasible(values: Mapping[str, int], head_dim: int, dtype_bytes: int = DTYPE_BYTES) -> bool:
    return not problems(values, head_dim, dtype_bytes)
