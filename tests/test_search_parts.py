"""The search's parts on their own: tunables, descriptors, the grid, selection, budgets and
configuration, the GPU lock."""

from __future__ import annotations

import random
import threading
import time

import pytest

from evolve import config, descriptors, tunables
from evolve.config import Selection
from evolve.errors import UserError
from evolve.grid import KernelGrid
from evolve.selection import select
from harness.gpulock import GpuLock


def test_tunables_are_found_per_entry_and_rewritten_without_touching_anything_else(seed_source: str) -> None:
    entries = tunables.entries(tunables.find(seed_source))
    assert set(entries) == {f"{d},{mode},{n}" for d in (64, 128) for mode in ("full", "causal") for n in (1024, 4096, 16384)}
    assert {n: t.value for n, t in entries["128,causal,4096"].items()} == {
        "BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_N_MASKED": 64, "num_warps": 8, "num_stages": 3,
        "WARP_SPEC": 0, "TMA": 0, "ORDER": 0, "LAZY_RESCALE": 0, "EXP2": 1}
    wide, warps = entries["128,causal,4096"]["BLOCK_N"], entries["64,full,1024"]["num_warps"]
    changed = tunables.rewrite(seed_source, {wide: 128, warps: 4})
    before, after = seed_source.splitlines(), changed.splitlines()
    assert [i for i, (a, b) in enumerate(zip(before, after)) if a != b] == [warps.line - 1, wide.line - 1]
    again = tunables.entries(tunables.find(changed))
    assert again["128,causal,4096"]["BLOCK_N"].value == 128 and again["64,full,1024"]["num_warps"].value == 4
    assert again["128,causal,16384"]["BLOCK_N"].value == 64  # a neighbouring entry untouched


def test_an_entry_is_named_by_its_key_whether_constant_or_tuple() -> None:
    src = 'T = {64: {"BLOCK_M": 64}, (128, "causal", 4096): {"BLOCK_M": 128}, (1, x): {"BLOCK_M": 32}}\n'
    assert {t.entry: t.value for t in tunables.find(src)} == {"64": 64, "128,causal,4096": 128}


def test_keyword_and_assignment_tunables_are_found() -> None:
    src = "BLOCK_M = 64\n\ndef f(k):\n    k[(1,)](num_warps=4, num_stages=2)\n"
    found = {(t.name, t.value) for t in tunables.find(src)}
    assert found == {("BLOCK_M", 64), ("num_warps", 4), ("num_stages", 2)}


def test_descriptors_describe_how_the_kernel_works_not_its_text(seed_source: str) -> None:
    d = descriptors.describe(seed_source)
    assert d == {"tile": 13.0, "warps": 3.0, "stages": 3.0, "features": 0.0, "masked_tile": 13.0, "order": 0.0,
                 "lazy_rescale": 0.0, "exp2": 1.0}
    padded = seed_source + "\n# " + "a long comment " * 100
    assert descriptors.describe(padded) == d


def test_descriptors_read_the_seeds_switches_not_the_code_they_turn_off(seed_source: str) -> None:
    assert "make_tensor_descriptor" in seed_source and "num_programs(" in seed_source
    entry = tunables.entries(tunables.find(seed_source))["128,causal,16384"]
    switched = tunables.rewrite(seed_source, {entry["TMA"]: 1, entry["ORDER"]: 2, entry["BLOCK_N_MASKED"]: 32,
                                              entry["EXP2"]: 0})
    d = descriptors.describe(switched)
    assert (d["features"], d["order"], d["masked_tile"], d["exp2"]) == (5.0, 2.0, 12.0, 0.0)
    other = tunables.entries(tunables.find(seed_source))["64,full,1024"]
    assert descriptors.describe(tunables.rewrite(seed_source, {other["TMA"]: 1}))["features"] == 0.0


def test_descriptors_fall_back_to_the_source_for_kernels_without_switches() -> None:
    from pathlib import Path

    honest = Path(__file__).parent / "honest"
    assert descriptors.describe((honest / "tma_descriptors.py").read_text())["features"] == 1.0
    assert descriptors.describe((honest / "autotuned.py").read_text())["features"] == 0.0


def test_grid_keeps_the_best_per_cell_and_islands_apart() -> None:
    grid = KernelGrid(islands=2, seed=0)
    d = {"tile": 13.0, "warps": 3.0, "stages": 3.0, "features": 0.0}
    assert grid.insert(0, 1, 1.0, d).improved
    assert not grid.insert(0, 2, 0.9, d).improved
    assert grid.insert(0, 3, 1.1, d).improved
    assert grid.insert(1, 4, 0.5, d).improved
    assert [e.program_id for e in grid.elites(0)] == [3]
    cell0, coords0 = grid.cell_of(0, d)
    cell1, coords1 = grid.cell_of(1, d)
    assert cell1 == cell0 + grid.cells_per_island and coords0[:-1] == coords1[:-1] and (coords0[-1], coords1[-1]) == (0, 1)
    assert grid.stats()["elites"] == 2 and grid.best().program_id == 3


def test_selection_mostly_exploits_but_explores() -> None:
    grid = KernelGrid(seed=0)
    for pid, tile in enumerate(range(10, 16), start=1):
        grid.insert(0, pid, float(pid), {"tile": float(tile), "warps": 2.0, "stages": 2.0, "features": 0.0})
    rng = random.Random(0)
    greedy = [select(grid, 0, 1, rng, Selection(explore=0.0, tournament=6))[0].program_id for _ in range(20)]
    assert set(greedy) == {6}
    mixed = {select(grid, 0, 1, rng, Selection(explore=1.0))[0].program_id for _ in range(200)}
    assert mixed == set(range(1, 7))
    pair = select(grid, 0, 2, rng, Selection())
    assert pair[0].program_id != pair[1].program_id


@pytest.mark.parametrize("text, expected", [
    ("200", {"candidates": 200}), ("30m", {"seconds": 1800.0}), ("200,2h", {"candidates": 200, "seconds": 7200.0}),
    ("1.5h", {"seconds": 5400.0}),
])
def test_budget_reads_candidates_and_wall_time(text: str, expected: dict) -> None:
    assert config.parse_budget(text) == expected


@pytest.mark.parametrize("text", ["", "ten", "30 minutes", "5x"])
def test_bad_budget_is_a_sentence(text: str) -> None:
    with pytest.raises(UserError, match="budget"):
        config.parse_budget(text)


def test_config_rejects_unknown_keys_with_their_path(tmp_path) -> None:
    f = tmp_path / "run.toml"
    f.write_text('[budget]\ncandidates = 10\n[selection]\nexplor = 0.5\n')
    with pytest.raises(UserError, match=r"selection\.explor: Extra inputs are not permitted"):
        config.load(f, {})
    f.write_text('[budget]\ncandidates = 10\n[operators]\nmutate = 1.0\nteleport = 1.0\n')
    with pytest.raises(UserError, match="unknown operator"):
        config.load(f, {})
    with pytest.raises(UserError, match="does not exist"):
        config.load(tmp_path / "missing.toml", {})


def test_command_line_overrides_the_file(tmp_path) -> None:
    f = tmp_path / "run.toml"
    f.write_text('task = "mha_fwd"\n[budget]\ncandidates = 10\n[islands]\ncount = 3\n')
    cfg = config.load(f, {"budget": {"seconds": 60.0}})
    assert cfg.budget.candidates == 10 and cfg.budget.seconds == 60.0 and cfg.islands.count == 3


def test_timing_waits_for_trials_and_trials_wait_for_a_waiting_timing() -> None:
    lock, order = GpuLock(), []

    def trial(name: str, hold: float) -> None:
        with lock.shared():
            order.append(f"{name} start")
            time.sleep(hold)
            order.append(f"{name} end")

    def timing() -> None:
        with lock.exclusive():
            order.append("timing start")
            time.sleep(0.05)
            order.append("timing end")

    first = threading.Thread(target=trial, args=("a", 0.2))
    first.start()
    time.sleep(0.05)
    t = threading.Thread(target=timing)
    t.start()
    time.sleep(0.05)
    late = threading.Thread(target=trial, args=("b", 0.0))
    late.start()
    for th in (first, t, late):
        th.join()
    assert order == ["a start", "a end", "timing start", "timing end", "b start", "b end"]


def test_workers_go_to_the_gpu_model_with_most_gpus_and_dead_nodes_do_not_count() -> None:
    from evolve.executor import _gpus_by_model

    nodes = [
        {"Alive": True, "Resources": {"CPU": 32.0, "GPU": 4.0, "accelerator_type:H100": 1.0}},
        {"Alive": True, "Resources": {"CPU": 32.0, "GPU": 2.0, "accelerator_type:A100": 1.0}},
        {"Alive": False, "Resources": {"CPU": 32.0, "GPU": 8.0, "accelerator_type:A100": 1.0}},
        {"Alive": True, "Resources": {"CPU": 8.0}},
        {"Alive": True, "Resources": {"CPU": 8.0, "GPU": 1.0}},
    ]
    assert _gpus_by_model(nodes) == {"H100": 4, "A100": 2, "unknown": 1}


def test_llm_free_operators_change_only_tunables_and_stay_on_their_ladders(seed_source: str) -> None:
    import asyncio

    from evolve.operators import BUILTIN, Context, Parent

    seed = Parent(1, seed_source, 1.0)
    before = tunables.entries(tunables.find(seed_source))
    widths: list[int] = []
    for _ in range(40):
        rng = random.Random(_)
        p = asyncio.run(BUILTIN["mutate"]().propose(Context([seed], [], rng)))
        after = tunables.entries(tunables.find(p.source))
        moved = [(e, n) for e in before for n in before[e] if before[e][n].value != after[e][n].value]
        names = {n for _, n in moved}
        assert moved and len(names) <= 2, p.meta
        widths.append(len({e for e, _ in moved}))
        for n in names:  # one new value per tunable, set in every entry where it moved
            assert len({after[e][n].value for e, m in moved if m == n}) == 1, p.meta
        for e, n in moved:
            ladder = tunables.LADDERS[n]
            step = abs(ladder.index(after[e][n].value) - ladder.index(before[e][n].value))
            assert step == 1 or (n in tunables.SWITCHES and after[e][n].value in ladder)
        assert len(p.source.splitlines()) == len(seed_source.splitlines())
    # mostly one entry; otherwise its peers too: same head_dim and mode (3), head_dim (6), all (12)
    assert widths.count(1) >= 10 and {3, 6, 12} & set(widths), widths

    big, small = "128,causal,16384", "64,full,1024"
    other_src = tunables.rewrite(seed_source, {before[big]["BLOCK_N"]: 128, before[small]["num_stages"]: 4})
    other = Parent(2, other_src, 1.1)
    proposals = [asyncio.run(BUILTIN["crossover"]().propose(Context([seed, other], [], random.Random(i))))
                 for i in range(30)]
    children = {p.source for p in proposals if p is not None}  # None: every tunable kept from the first
    assert len(children) >= 2
    for child in children:
        got = tunables.entries(tunables.find(child))
        assert got[big]["BLOCK_N"].value in (64, 128) and got[small]["num_stages"].value in (3, 4)
        assert got[big]["BLOCK_M"].value == 128  # equal in both parents: untouched
