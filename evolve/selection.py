"""Parent selection: mostly the fittest of a few elites drawn from the island's grid
(exploitation), sometimes any elite at all (exploration), so that cells far from the current
best keep being developed."""

from __future__ import annotations

import random
from collections.abc import Callable

from evolve.config import Selection
from evolve.grid import Elite, KernelGrid


def select(grid: KernelGrid, island: int, k: int, rng: random.Random, cfg: Selection,
           same_kind: Callable[[Elite, Elite], bool] = lambda a, b: True) -> list[Elite]:
    """``k`` distinct elites when there are that many (else repeats), from ``island`` if it has
    any elite, otherwise from the whole grid; after the first, only elites of the first's kind
    (``same_kind``: its lineage, so that crossover pairs kernels written alike). Empty when the
    grid is."""
    pool = grid.elites(island) or grid.elites()
    if not pool:
        return []
    chosen: list[Elite] = []
    for _ in range(k):
        if chosen:
            pool = [e for e in pool if same_kind(chosen[0], e)]
        candidates = [e for e in pool if e not in chosen] or pool
        if rng.random() < cfg.explore:
            chosen.append(rng.choice(candidates))
        else:
            drawn = rng.sample(candidates, k=min(cfg.tournament, len(candidates)))
            chosen.append(max(drawn, key=lambda e: e.fitness))
    return chosen


def inspirations(grid: KernelGrid, exclude: list[Elite], n: int, rng: random.Random) -> list[Elite]:
    """A few elites from other cells (any island), best first, to show an operator what else works."""
    others = [e for e in grid.elites() if e.program_id not in {x.program_id for x in exclude}]
    picked = rng.sample(others, k=min(n, len(others)))
    return sorted(picked, key=lambda e: -e.fitness)
