"""Several seed kernels in one search: each starts its own islands, its descendants keep its
lineage, crossover pairs kernels of one lineage, and the run fails only when every seed does."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from archive import Archive
from evolve import tunables
from evolve.config import validate
from evolve.errors import UserError
from evolve.executor import Duel, Job, Result
from evolve.operators import BUILTIN
from evolve.search import Search, SearchFailed
from harness.verdict import Outcome, Stage, Verdict

from .test_shape_merge import ByEntry


def _seeds(tmp_path: Path, seed_source: str) -> list[Path]:
    entry = tunables.entries(tunables.find(seed_source))["64,full,1024"]
    other = tunables.rewrite(seed_source, {entry["BLOCK_N"]: 32})
    paths = [tmp_path / "triton_seed.py", tmp_path / "other_seed.py"]
    for path, source in zip(paths, (seed_source, other)):
        path.write_text(source)
    return paths


def test_seed_kernels_are_one_path_or_several_and_islands_default_to_one_per_seed() -> None:
    base = {"budget": {"candidates": 5}}
    assert validate({**base, "seed_kernel": "a.py"}).seed_kernel == [Path("a.py")]
    assert validate(base).seed_kernel == [] and validate(base).islands.count == 1
    two = validate({**base, "seed_kernel": ["a.py", "b.py"]})
    assert two.islands.count == 2
    assert validate({**base, "seed_kernel": ["a.py", "b.py"], "islands": {"count": 4}}).islands.count == 4
    with pytest.raises(UserError, match="islands.count is 1 but there are 2 seed kernels"):
        validate({**base, "seed_kernel": ["a.py", "b.py"], "islands": {"count": 1}})


def test_each_seed_starts_its_own_islands_and_crossover_pairs_one_lineage(tmp_path: Path, seed_source: str) -> None:
    seeds = _seeds(tmp_path, seed_source)
    cfg = validate({"budget": {"candidates": 40}, "simulate": True, "random_seed": 2, "seed_kernel": [str(p) for p in seeds],
                    "islands": {"count": 4, "migration_interval": 1000},
                    "operators": {"mutate": 0.5, "crossover": 0.5}})
    with Archive.open(str(tmp_path / "a.db")) as archive:
        search = Search(cfg, archive, ByEntry(), {n: BUILTIN[n]() for n in ("mutate", "crossover")})
        run_id = search.open()
        asyncio.run(search.run())
        programs = {pid: archive.get_program(pid) for pid in archive.program_ids(run_id)}
    lineage = {pid: p.meta["lineage"] for pid, p in programs.items()}
    seeds_by_lineage = {lineage[pid]: pid for pid, p in programs.items() if p.generation == 0}
    assert seeds_by_lineage.keys() == {0, 1}
    assert {p.source for p in programs.values() if p.generation == 0} == {s.read_text() for s in seeds}
    children = [p for p in programs.values() if p.generation > 0]
    assert {lineage[p.id] for p in children} == {0, 1}  # both lineages were developed
    for p in children:
        assert p.island % 2 == lineage[p.id]  # seed i's islands: i, i + 2
        assert {lineage[q] for q in p.parents} == {lineage[p.id]}
    assert any(p.operator == "crossover" for p in children)


class _Failing(ByEntry):
    """Rejects the programs whose source is one of ``sources``."""

    def __init__(self, sources: set[str]) -> None:
        super().__init__()
        self.sources = sources

    def submit(self, job: Job | Duel) -> None:
        if isinstance(job, Job) and job.source in self.sources:
            self.done.append(Result(job, Verdict(Outcome.REJECTED, Stage.COMPILE, "smoke test: NaN", "simulated")))
        else:
            super().submit(job)


def test_the_run_goes_on_while_one_seed_passes_and_fails_when_none_does(tmp_path: Path, seed_source: str) -> None:
    paths = _seeds(tmp_path, seed_source)
    sources = [p.read_text() for p in paths]
    cfg = validate({"budget": {"candidates": 6}, "simulate": True, "random_seed": 1,
                    "seed_kernel": [str(p) for p in paths], "operators": {"mutate": 1.0}})
    with Archive.open(str(tmp_path / "a.db")) as archive:
        search = Search(cfg, archive, _Failing({sources[0]}), {"mutate": BUILTIN["mutate"]()})
        run_id = search.open()
        progress = asyncio.run(search.run())
        assert progress.status == "finished" and progress.evaluated == 6
        children = [archive.get_program(pid) for pid in archive.program_ids(run_id)]
        assert {p.meta["lineage"] for p in children if p.generation > 0} == {1}

        search = Search(cfg, archive, _Failing(set(sources)), {"mutate": BUILTIN["mutate"]()})
        search.open()
        with pytest.raises(SearchFailed) as failed:
            asyncio.run(search.run())
    assert str(failed.value).count("did not pass its checks") == 2
    assert all(str(p) in str(failed.value) for p in paths)


def test_the_search_report_names_each_lineages_seed_and_best(tmp_path: Path, seed_source: str) -> None:
    seeds = _seeds(tmp_path, seed_source)
    cfg = validate({"budget": {"candidates": 24}, "simulate": True, "random_seed": 3,
                    "seed_kernel": [str(p) for p in seeds], "operators": {"mutate": 1.0}})
    db = tmp_path / "a.db"
    with Archive.open(str(db)) as archive:
        search = Search(cfg, archive, ByEntry(), {"mutate": BUILTIN["mutate"]()})
        run_id = search.open()
        asyncio.run(search.run())
        seed_ids = sorted(pid for pid in archive.program_ids(run_id) if archive.get_program(pid).generation == 0)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "search_report.py"
    out = tmp_path / "report"
    r = subprocess.run([sys.executable, str(script), "--db", str(db), "--run", str(run_id), "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = json.loads(out.with_suffix(".json").read_text())["lineages"]
    assert [(x["lineage"], x["seed"]) for x in lines] == [(0, seed_ids[0]), (1, seed_ids[1])]
    assert all(x["best"] is not None and x["best"]["grid_fitness"] >= x["seed_fitness"] for x in lines)
    assert "| lineage | seed |" in out.with_suffix(".md").read_text()
