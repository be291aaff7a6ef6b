"""The shape-wise merge: each benchmark shape's entry comes whole from the run's fastest program on
that shape, and the search keeps those leaders, across a resume too."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

from archive import Archive
from evolve import tunables
from evolve.config import validate
from evolve.executor import Duel, DuelResult, Executor, Job, Result, ShapeDuel
from evolve.operators import BUILTIN, Context, Leader, Operator, Parent, Proposal
from evolve.search import Search
from harness.task import get_task
from harness.verdict import Outcome, Stage, Timing, Verdict

from .conftest import SEED

CASES = get_task("mha_fwd").benchmark_cases()
BIG = next(c for c in CASES if (c["head_dim"], c["causal"], c["seq"]) == (128, False, 16384))
SMALL = next(c for c in CASES if (c["head_dim"], c["causal"], c["seq"]) == (64, False, 1024))


def _with(source: str, entry: str, **values: int) -> str:
    found = tunables.entries(tunables.find(source))[entry]
    return tunables.rewrite(source, {found[n]: v for n, v in values.items()})


def _entries(source: str) -> dict[str, dict[str, int]]:
    return {e: {n: t.value for n, t in ts.items()} for e, ts in tunables.entries(tunables.find(source)).items()}


def test_merge_takes_each_shapes_entry_whole_from_the_program_fastest_on_it(seed_source: str) -> None:
    seed = Parent(1, seed_source, 0.8)
    big = Parent(2, _with(seed_source, "128,full,16384", TMA=1, BLOCK_N=128), 0.79)
    small = Parent(3, _with(seed_source, "64,full,1024", num_stages=4), 0.78)
    leaders = [Leader(c, 1.0, seed) for c in CASES if c not in (BIG, SMALL)]
    leaders += [Leader(BIG, 0.9, big), Leader(SMALL, 0.9, small)]
    before = _entries(seed_source)
    children = []
    for i in range(20):
        p = asyncio.run(BUILTIN["merge"]().propose(Context([seed], [], random.Random(i), leaders=leaders)))
        if p is not None:
            children.append(p)
    assert children
    for p in children:
        after = _entries(p.source)
        changed = {e for e in before if after[e] != before[e]}
        assert changed and changed <= {"128,full,16384", "64,full,1024"}
        assert all(after[e] == _entries(q.source)[e] for e, q in (("128,full,16384", big), ("64,full,1024", small))
                   if e in changed)  # whole entries, as the leader has them
        assert p.parents == [1] + [pid for pid, e in ((2, "128,full,16384"), (3, "64,full,1024")) if e in changed]
    assert any(len({e for e in before if _entries(p.source)[e] != before[e]}) == 2 for p in children)
    assert any(len({e for e in before if _entries(p.source)[e] != before[e]}) == 1 for p in children)


def test_a_shape_is_served_by_the_entry_the_seed_would_pick_for_it() -> None:
    from evolve.operators.tunable_ops import entry_for

    names = list(tunables.entries(tunables.find(SEED.read_text())))
    assert entry_for(names, BIG) == "128,full,16384"
    assert entry_for(names, {**BIG, "seq": 8192, "causal": True}) == "128,causal,16384"  # bucket 8192+
    assert entry_for(names, {**BIG, "seq": 2047, "head_dim": 96}) == "128,full,1024"  # 1-2047, D 96 -> 128
    assert entry_for(names, {**BIG, "seq": 2048, "head_dim": 32}) == "64,full,4096"
    assert entry_for(names, {**BIG, "head_dim": 256}) is None
    assert entry_for(["128", "64"], BIG) is None  # a table by head_dim only names no such entries


def test_merge_offers_nothing_when_the_parent_leads_every_shape_it_has_an_entry_for(seed_source: str) -> None:
    seed = Parent(1, seed_source, 0.8)
    other = Parent(2, _with(seed_source, "64,full,1024", num_stages=4), 0.7)
    unserved = {**SMALL, "head_dim": 256}  # wider than any entry of the seed's table
    leaders = [Leader(c, 1.0, seed) for c in CASES] + [Leader(unserved, 0.5, other)]
    for i in range(10):
        assert asyncio.run(BUILTIN["merge"]().propose(Context([seed], [], random.Random(i), leaders=leaders))) is None
        assert asyncio.run(BUILTIN["merge"]().propose(Context([seed], [], random.Random(i)))) is None


class ByEntry(Executor):
    """Times each shape at 1 ms, or 0.8 ms where the program's entry for it has num_stages 4; duels
    confirm the candidate 10% faster."""

    def __init__(self) -> None:
        self.done: list[Result | DuelResult] = []

    @property
    def capacity(self) -> int:
        return 1

    def submit(self, job: Job | Duel) -> None:
        if isinstance(job, Duel):
            shapes = [ShapeDuel(f"shape {i}", [1.0] * 30, [1.1] * 30) for i in range(12)]
            self.done.append(DuelResult(job, shapes, "simulated", "cpu"))
            return
        entries = _entries(job.source)
        timings = [Timing(c, 0.8 if entries[f"{c['head_dim']},{'causal' if c['causal'] else 'full'},{c['seq']}"]
                          ["num_stages"] == 4 else 1.0, 1.0, "sdpa default", 400.0, 400.0) for c in CASES]
        self.done.append(Result(job, Verdict(Outcome.PASSED, Stage.DONE, "", "simulated",
                                             timings=timings)))

    def results(self, timeout: float) -> list[Result | DuelResult]:
        time.sleep(0.01)
        out, self.done = self.done, []
        return out

    def in_flight(self) -> int:
        return len(self.done)

    def describe(self) -> str:
        return "by entry"

    def close(self) -> None:
        pass


class _Scripted(Operator):
    """Proposes the given sources in turn (each a child of the seed), noting the leaders it was shown."""

    name = "mutate"

    def __init__(self, sources: list[str]) -> None:
        self.sources, self.seen = list(sources), []

    async def propose(self, ctx: Context) -> Proposal | None:
        self.seen.append({(lead.shape["head_dim"], lead.shape["causal"], lead.shape["seq"]): lead.program.program_id
                          for lead in ctx.leaders})
        return Proposal(self.sources.pop(0), [1], "mutate") if self.sources else None


def test_the_search_shows_operators_each_shapes_fastest_program_and_rebuilds_them_on_resume(
        tmp_path: Path, seed_source: str) -> None:
    fast_big = _with(seed_source, "128,full,16384", num_stages=4)
    fast_small = _with(seed_source, "64,full,1024", num_stages=4)
    cfg = validate({"budget": {"candidates": 3}, "simulate": True, "random_seed": 1, "operators": {"mutate": 1.0}})
    with Archive.open(str(tmp_path / "a.db")) as archive:
        op = _Scripted([fast_big, fast_small])
        search = Search(cfg, archive, ByEntry(), {"mutate": op})
        run_id = search.open()
        asyncio.run(search.run())
        want = {(c["head_dim"], c["causal"], c["seq"]): 1 for c in CASES}
        want[(128, False, 16384)] = archive.find_program_by_code(run_id, fast_big)
        want[(64, False, 1024)] = archive.find_program_by_code(run_id, fast_small)
        assert op.seen[0] == dict.fromkeys(want, 1)  # after the seed alone
        assert op.seen[1] == {**want, (64, False, 1024): 1}  # after the first candidate too

        again = _Scripted([])
        resumed = Search(cfg.model_copy(update={"budget": cfg.budget.model_copy(update={"candidates": 4})}), archive,
                         ByEntry(), {"mutate": again}, resume=run_id)
        resumed.open()
        asyncio.run(resumed.run())
        assert again.seen and again.seen[0] == want
