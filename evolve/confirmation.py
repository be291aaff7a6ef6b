"""Confirmed improvement: a candidate displaces an elite only when it wins a side-by-side
re-timing against it by more than the noise.

One evaluation's fitness moves by a few percent between checks of the same kernel, so a grid
that admits on any gain keeps whichever kernel was lucky. When a candidate's fitness would make
it the run's best, or beat its cell's elite, the search sends a ``Duel``: the candidate and that
rival timed in turns, in one trusted process, on every benchmark shape. The ``Ruling`` admits it
only if the whole bootstrap interval of its speedup over the rival lies above ``MIN_SPEEDUP``
(a 95% interval alone would still let about one neutral candidate in forty through, and timing
in turns leaves small systematic differences of its own). Its fitness in
the grid is then the rival's times that speedup, so elites are ranked by what was measured side
by side, and credit (the bandits') goes to confirmed gains only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evolve.executor import DuelResult
from harness.confidence import Interval, Paired, speedups

MIN_SPEEDUP = 1.005


@dataclass(frozen=True)
class Ruling:
    speedup: Interval | None  # candidate over rival, over all shapes; None: not measured
    shapes: list[tuple[str, Interval]]
    admitted: bool
    fitness: float  # the candidate's fitness for the grid: the rival's times what was measured
    reason: str

    def shape_rows(self) -> list[dict[str, Any]]:
        return [{"label": label, "speedup": i.estimate, "low": i.low, "high": i.high} for label, i in self.shapes]


def rule(result: DuelResult, lone_fitness: float) -> Ruling:
    """Admit the candidate when its speedup over the rival is above ``MIN_SPEEDUP`` with the
    interval's confidence. Not admitted, it keeps at most the rival's fitness (a tie never displaces), or
    its lone fitness when the duel could not be measured."""
    rival = result.duel.rival_fitness
    if not result.shapes:
        return Ruling(None, [], False, min(lone_fitness, rival), f"not re-timed: {result.reason}")
    per_shape, overall = speedups([Paired(s.candidate, s.rival) for s in result.shapes])
    shapes = [(s.label, i) for s, i in zip(result.shapes, per_shape)]
    if overall.above(MIN_SPEEDUP):
        return Ruling(overall, shapes, True, rival * overall.estimate,
                      f"confirmed {overall} x program {result.duel.rival.program_id}")
    return Ruling(overall, shapes, False, rival * min(overall.estimate, 1.0),
                  f"not beyond the noise: {overall} x program {result.duel.rival.program_id}")
