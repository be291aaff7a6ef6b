"""Confirmed improvement: bootstrap intervals on speedups measured side by side, and the ruling
that admits a candidate over an elite only beyond the noise."""

from __future__ import annotations

import math
import random

import pytest

from evolve.confirmation import MIN_SPEEDUP, rule
from evolve.executor import Duel, DuelResult, Job, ShapeDuel
from harness.confidence import Paired, speedups
from harness.cost_model import simulated_duel
from harness.task import get_task
from harness.verdict import Outcome, Stage, Timing, Verdict

SHAPES = 12


def calls(ms: float, rng: random.Random, n: int = 40, jitter: float = 0.03) -> list[float]:
    return [ms * math.exp(rng.gauss(0.0, jitter)) for _ in range(n)]


def duel_result(gain: float, rng: random.Random, rival_fitness: float = 0.8) -> DuelResult:
    """Candidate ``gain`` times faster than its rival on every shape, in noisy timed calls."""
    shapes = [ShapeDuel(f"shape {i}", calls(1.0 / gain, rng), calls(1.0, rng)) for i in range(SHAPES)]
    duel = Duel(Job(2, "candidate", {}, 0), Job(1, "rival", {}, 0), rival_fitness)
    return DuelResult(duel, shapes, "simulated", "cpu")


def test_an_interval_covers_the_true_speedup_and_narrows_with_more_calls() -> None:
    rng = random.Random(0)
    covered, widths = 0, {}
    for n in (10, 160):
        for trial in range(20):
            [one], _ = speedups([Paired(calls(1.0, rng, n), calls(1.05, rng, n))], seed=trial, resamples=500)
            covered += one.low < 1.05 < one.high
            widths.setdefault(n, []).append(one.high - one.low)
    assert covered >= 36  # of 40 intervals at 95%
    assert sum(widths[160]) < 0.5 * sum(widths[10])


def test_a_gain_within_the_noise_is_not_admitted_and_displaces_nobody() -> None:
    rng = random.Random(1)
    for _ in range(10):
        ruling = rule(duel_result(1.0, rng), lone_fitness=0.84)  # its lone check was lucky: +5%
        assert not ruling.admitted
        assert ruling.fitness <= 0.8 and ruling.speedup is not None and ruling.speedup.low <= MIN_SPEEDUP


def test_a_real_gain_is_admitted_with_the_fitness_measured_beside_its_rival() -> None:
    rng = random.Random(2)
    ruling = rule(duel_result(1.03, rng), lone_fitness=0.81)
    assert ruling.admitted and ruling.speedup is not None and ruling.speedup.low > 1.0
    assert ruling.fitness == pytest.approx(0.8 * 1.03, rel=0.01)
    assert [row["label"] for row in ruling.shape_rows()] == [f"shape {i}" for i in range(SHAPES)]


def test_a_slower_candidate_keeps_the_fitness_it_showed_beside_its_rival() -> None:
    ruling = rule(duel_result(0.9, random.Random(3)), lone_fitness=0.85)
    assert not ruling.admitted and ruling.fitness == pytest.approx(0.8 * 0.9, rel=0.02)


def test_a_duel_that_could_not_be_measured_admits_nothing_and_says_why() -> None:
    empty = DuelResult(duel_result(1.0, random.Random(4)).duel, [], "gpu", "", "its worker hung")
    ruling = rule(empty, lone_fitness=0.9)
    assert not ruling.admitted and ruling.speedup is None and ruling.fitness == 0.8
    assert "its worker hung" in ruling.reason


def test_verdicts_carry_the_intervals_of_their_timings() -> None:
    rng = random.Random(5)
    timings = []
    for _ in range(3):
        ours, theirs = calls(1.0, rng), calls(1.2, rng)
        timings.append(Timing({}, 1.0, 1.2, "b", 1.0, 1.0, samples=ours, baseline_samples=theirs))
    v = Verdict(Outcome.PASSED, Stage.DONE, "", "gpu", timings=timings)
    v.add_intervals()
    assert v.fitness_low is not None and v.fitness_high is not None
    assert v.fitness_low < 1.2 < v.fitness_high
    assert all(t.speedup_low is not None and t.speedup_low < t.speedup < t.speedup_high for t in v.timings)
    again = Verdict.from_dict(v.to_dict())
    assert (again.fitness_low, again.timings[0].speedup_high) == (v.fitness_low, v.timings[0].speedup_high)


def test_untimed_verdicts_have_no_interval() -> None:
    v = Verdict(Outcome.PASSED, Stage.DONE, "", "gpu", timings=[Timing({}, 1.0, 1.2, "b", 1.0, 1.0)])
    v.add_intervals()
    assert v.fitness_low is None and v.timings[0].speedup_low is None


def test_the_modelled_duel_separates_what_the_cost_model_separates() -> None:
    task = get_task("mha_fwd")
    seed = {"tile": 13.0, "warps": 3.0, "stages": 3.0, "features": 0.0}
    deeper = {**seed, "stages": 4.0}  # the cost model's peak: about 7% faster
    for rival, admitted in ((seed, False), (deeper, True)):
        shapes = [ShapeDuel(s["label"], s["candidate"], s["rival"])
                  for s in simulated_duel(task, rival if admitted else seed, seed, key=str(admitted))]
        result = DuelResult(Duel(Job(2, "", {}, 0), Job(1, "", {}, 0), 0.8), shapes, "simulated", "cpu")
        assert rule(result, 0.85).admitted is admitted
