"""How sure a timing is: bootstrap confidence intervals on speedups measured side by side.

A single median ratio moves by a few percent between checks of the same kernel, so a search
that believes it keeps noise. These intervals resample the timed calls of each shape (with
replacement, independently for each contender and shape) and recompute the statistic: the
speedup on one shape is median(theirs) / median(ours); over several shapes it is the geometric
mean of those. A gain is confirmed only when the whole interval lies above the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """``estimate`` from all samples; ``low`` and ``high`` bound the central ``LEVEL`` of the
    bootstrap distribution."""

    estimate: float
    low: float
    high: float

    def above(self, threshold: float = 1.0) -> bool:
        return self.low > threshold

    def below(self, threshold: float = 1.0) -> bool:
        return self.high < threshold

    def __str__(self) -> str:
        return f"{self.estimate:.4f} [{self.low:.4f}, {self.high:.4f}]"


@dataclass(frozen=True)
class Paired:
    """The timed calls (ms) of one shape: ``ours`` and ``theirs`` taken in turns."""

    ours: Sequence[float]
    theirs: Sequence[float]


def _medians(samples: Sequence[float], rng: np.random.Generator, resamples: int) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0 or not np.all(np.isfinite(x)) or np.any(x <= 0):
        raise ValueError("timings must be positive finite milliseconds, at least one per contender")
    picks = rng.integers(0, x.size, size=(resamples, x.size))
    return np.median(x[picks], axis=1)


def speedups(shapes: Sequence[Paired], *, seed: int = 0, resamples: int = RESAMPLES,
             level: float = LEVEL) -> tuple[list[Interval], Interval]:
    """Per shape, the interval of median(theirs) / median(ours); over all shapes, the interval of
    their geometric mean (each bootstrap round resamples every shape once)."""
    if not shapes:
        raise ValueError("no timed shape")
    rng = np.random.default_rng(seed)
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    logs = []
    per_shape = []
    for s in shapes:
        r = np.log(_medians(s.theirs, rng, resamples)) - np.log(_medians(s.ours, rng, resamples))
        logs.append(r)
        estimate = float(np.median(np.asarray(s.theirs)) / np.median(np.asarray(s.ours)))
        per_shape.append(Interval(estimate, float(np.exp(np.quantile(r, lo_q))), float(np.exp(np.quantile(r, hi_q)))))
    mean = np.mean(np.stack(logs), axis=0)
    estimate = math.exp(sum(math.log(i.estimate) for i in per_shape) / len(per_shape))
    overall = Interval(estimate, float(np.exp(np.quantile(mean, lo_q))), float(np.exp(np.quantile(mean, hi_q))))
    return per_shape, overall
