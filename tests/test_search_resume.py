"""A duel in flight when the search stops is not lost: ``--resume`` decides the candidate again
against the rebuilt grid and re-times it beside the elite it would displace."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from archive import Archive
from evolve.config import validate
from evolve.executor import Duel, DuelResult, Executor, Job, Result, ShapeDuel
from evolve.operators import BUILTIN
from evolve.search import Search
from harness.task import get_task
from harness.verdict import Outcome, Stage, Timing, Verdict


def verdict(fitness: float) -> Verdict:
    case = get_task("mha_fwd").benchmark_cases()[0]
    return Verdict(Outcome.PASSED, Stage.DONE, "", "simulated",
                   timings=[Timing(case, 1.0 / fitness, 1.0, "sdpa default", 400 * fitness, 400.0)])


class Scripted(Executor):
    """Judges the seed at 0.8 and every other candidate at 0.9 at once; holds duels, or answers
    them with the candidate 10% faster on every shape. ``on_duel`` runs when one is held."""

    def __init__(self, hold_duels: bool) -> None:
        self.hold_duels = hold_duels
        self.done: list[Result | DuelResult] = []
        self.held: list[Duel] = []
        self.duels_seen: list[Duel] = []
        self.on_duel = lambda: None

    @property
    def capacity(self) -> int:
        return 1

    def submit(self, job: Job | Duel) -> None:
        if isinstance(job, Duel):
            self.duels_seen.append(job)
            if self.hold_duels:
                self.held.append(job)
                self.on_duel()
            else:
                shapes = [ShapeDuel(f"shape {i}", [1.0 + 0.001 * j for j in range(30)],
                                    [1.1 + 0.001 * j for j in range(30)]) for i in range(12)]
                self.done.append(DuelResult(job, shapes, "simulated", "cpu"))
        else:
            self.done.append(Result(job, verdict(0.8 if job.program_id == 1 else 0.9)))

    def results(self, timeout: float) -> list[Result | DuelResult]:
        time.sleep(0.01)
        out, self.done = self.done, []
        return out

    def in_flight(self) -> int:
        return len(self.done) + len(self.held)

    def describe(self) -> str:
        return "scripted"

    def close(self) -> None:
        pass


def test_a_duel_in_flight_when_the_search_stops_is_sent_again_on_resume(tmp_path: Path) -> None:
    cfg = validate({"budget": {"candidates": 2}, "simulate": True, "random_seed": 3, "operators": {"mutate": 1.0}})
    with Archive.open(str(tmp_path / "a.db")) as archive:
        first = Scripted(hold_duels=True)
        search = Search(cfg, archive, first, {"mutate": BUILTIN["mutate"]()})
        first.on_duel = lambda: (search.request_stop(), search.request_stop())  # stopped at once
        run_id = search.open()
        asyncio.run(search.run())
        [lost] = first.held
        candidate = lost.candidate.program_id
        assert lost.rival.program_id == 1 and archive.confirmations(run_id) == []
        assert candidate not in {c.program_id for c in archive.cells(run_id)}

        again = Scripted(hold_duels=False)
        resumed = Search(cfg, archive, again, {"mutate": BUILTIN["mutate"]()}, resume=run_id)
        resumed.open()
        progress = asyncio.run(resumed.run())
        assert [(d.candidate.program_id, d.rival.program_id) for d in again.duels_seen][0] == (candidate, 1)
        [confirmation] = [c for c in archive.confirmations(run_id) if c.candidate_id == candidate]
        assert confirmation.admitted and confirmation.low > 1.05
        assert progress.best_program == candidate
        assert progress.evaluated == 2  # nothing judged twice
