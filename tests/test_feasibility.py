"""The rule for which TUNABLES entries can compile on sm_90, against figures the compiler gave
(triton 3.6, tests/honest/compile_seed.py), and the LLM-free operators held to it."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from evolve import feasibility, tunables
from evolve.operators import BUILTIN, Context, Parent

SEED_ENTRY = {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_N_MASKED": 64, "num_warps": 8, "num_stages": 3,
              "WARP_SPEC": 0, "TMA": 0, "ORDER": 0, "LAZY_RESCALE": 0, "EXP2": 1}


# (BLOCK_M, BLOCK_N, num_stages, head_dim, shared bytes Triton 3.6 reported for sm_90, bf16)
@pytest.mark.parametrize("block_m, block_n, stages, head_dim, measured", [
    (128, 64, 3, 128, 131072), (128, 64, 5, 128, 196608), (64, 128, 3, 128, 212992), (256, 64, 4, 128, 196608),
    (128, 128, 4, 128, 294912), (256, 128, 5, 128, 393216), (64, 256, 4, 64, 270336), (32, 128, 4, 128, 212992),
    (256, 256, 1, 64, 98304),
])
def test_the_shared_memory_estimate_is_never_below_what_the_compiler_needed(
        block_m: int, block_n: int, stages: int, head_dim: int, measured: int) -> None:
    cfg = {**SEED_ENTRY, "BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_N_MASKED": block_n, "num_stages": stages}
    estimate = feasibility.shared_bytes(cfg, head_dim)
    assert measured <= estimate
    if block_m >= 64:  # the wgmma path: exact up to the reserve
        assert estimate - measured == feasibility.SHARED_RESERVE
    assert feasibility.feasible(cfg, head_dim) == (estimate <= feasibility.SHARED_LIMIT)


def test_configurations_that_failed_to_compile_are_refused_and_the_seed_is_not() -> None:
    assert feasibility.problems(SEED_ENTRY, 128) == []
    too_big = {**SEED_ENTRY, "BLOCK_N": 128, "BLOCK_N_MASKED": 128, "num_stages": 4}  # needed 294912 B
    assert "shared memory" in feasibility.problems(too_big, 128)[0]
    assert feasibility.feasible(too_big, 64)  # half the head_dim, half the tiles
    wide_diagonal = {**SEED_ENTRY, "BLOCK_N_MASKED": 256, "num_stages": 4}  # the wider phase sizes the buffers
    assert not feasibility.feasible(wide_diagonal, 128)


def test_warp_specialisation_is_allowed_with_eight_warps_only() -> None:
    assert feasibility.feasible({**SEED_ENTRY, "WARP_SPEC": 1}, 128)
    for warps in (2, 4, 16):
        assert "warp specialisation" in feasibility.problems({**SEED_ENTRY, "WARP_SPEC": 1, "num_warps": warps}, 128)[0]


def test_an_entry_serves_the_head_dim_its_name_starts_with() -> None:
    assert [feasibility.head_dim_of(e) for e in ("64,causal,4096", "128", "", "x,1")] == [64, 128, 128, 128]


def _near_the_limit(seed_source: str) -> str:
    """The seed with one entry one pipeline stage below the shared-memory limit, with 8 warps and
    warp specialisation on: a step up in stages or tile width, or down in warps, is refused."""
    entry = tunables.entries(tunables.find(seed_source))["128,causal,16384"]
    return tunables.rewrite(seed_source, {entry["BLOCK_N"]: 128, entry["BLOCK_N_MASKED"]: 128,
                                          entry["WARP_SPEC"]: 1})


def _assert_every_entry_feasible(source: str) -> None:
    for name, entry in tunables.entries(tunables.find(source)).items():
        values = {n: t.value for n, t in entry.items()}
        assert feasibility.feasible(values, feasibility.head_dim_of(name)), (name, values)


def test_llm_free_operators_never_propose_an_entry_that_cannot_compile(seed_source: str) -> None:
    source = _near_the_limit(seed_source)
    _assert_every_entry_feasible(source)
    parent = Parent(1, source, 1.0)
    far = Parent(2, tunables.rewrite(seed_source, {
        t: v for n, v in (("num_stages", 5), ("num_warps", 4), ("BLOCK_M", 64))
        for t in [tunables.entries(tunables.find(seed_source))["128,causal,16384"][n]]}), 1.0)
    proposed = 0
    for i in range(200):
        rng = random.Random(i)
        for name, parents in (("mutate", [parent]), ("reset", [parent]), ("crossover", [parent, far])):
            p = asyncio.run(BUILTIN[name]().propose(Context(parents, [], rng)))
            if p is not None:
                proposed += 1
                _assert_every_entry_feasible(p.source)
    assert proposed > 400


def test_a_model_candidate_with_an_entry_that_cannot_compile_is_refused_before_the_gpu(
        seed_source: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from archive import Archive
    from evolve.llm.precheck import LocalCheck
    from evolve.llm.settings import Repair

    entry = tunables.entries(tunables.find(seed_source))["128,causal,16384"]
    too_big = tunables.rewrite(seed_source, {entry["BLOCK_N"]: 128, entry["num_stages"]: 5})
    with Archive.open(str(tmp_path / "a.db")) as archive:
        check = LocalCheck(archive, "mha_fwd", Repair(smoke=False))
        refused = asyncio.run(check(too_big, []))
        passed = asyncio.run(check(seed_source, []))
    assert not refused.ok and refused.kind == "feasibility"
    assert "TUNABLES entry 128,causal,16384" in refused.message and "shared memory" in refused.message
    assert passed.ok


def test_the_gluon_seed_exposes_its_rings_and_pipelining_but_not_its_fixed_rows_and_warps() -> None:
    source = (Path(__file__).resolve().parents[1] / "seeds" / "mha_fwd_gluon.py").read_text()
    names = {n for entry in tunables.entries(tunables.find(source)).values() for n in entry}
    assert names == {"BLOCK_N", "STAGES", "PIPELINE", "WARP_SPEC", "ORDER"}
    # Its header: 160 KB with 2 K/V slots at head_dim 128, 224 KB with 3; 4 do not fit.
    ring = {"BLOCK_N": 128, "PIPELINE": 1, "WARP_SPEC": 1, "ORDER": 1}
    assert [feasibility.feasible({**ring, "STAGES": s}, 128) for s in (2, 3, 4)] == [True, True, False]
    assert feasibility.feasible({**ring, "STAGES": 4}, 64)
