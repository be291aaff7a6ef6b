"""Bandits that learn which strategy hint and which model to use from what their candidates
gained. A reward is a candidate's relative fitness gain over its parent, counted when positive
only (a failed or slower candidate earns 0: models and hints are not punished for trying,
ShinkaEvolve's asymmetric reward)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


def gain(parent_fitness: float | None, fitness: float | None) -> float:
    """Relative improvement of a candidate over its parent, floored at 0."""
    if fitness is None or parent_fitness is None or parent_fitness <= 0:
        return 0.0
    return max(0.0, fitness / parent_fitness - 1.0)


@dataclass
class Arm:
    pulls: int = 0
    gain: float = 0.0
    cost: float = 0.0
    free: int = 0  # pulls that cost nothing (the call failed before any token was counted)

    @property
    def mean(self) -> float:
        return self.gain / self.pulls if self.pulls else 0.0


def _argmax(scores: dict[str, float], rng: random.Random) -> str:
    top = max(scores.values())
    return rng.choice(sorted(k for k, v in scores.items() if v >= top - 1e-12))


class Ucb:
    """UCB1 on the mean reward, normalized by the best arm's mean so the exploration constant
    does not depend on the scale of fitness gains. Untried arms go first."""

    def __init__(self, exploration: float) -> None:
        self.c = exploration
        self.arms: dict[str, Arm] = {}

    def add(self, name: str) -> None:
        self.arms.setdefault(name, Arm())

    def remove(self, name: str) -> None:
        self.arms.pop(name, None)

    def credit(self, name: str, reward: float) -> None:
        arm = self.arms.get(name)
        if arm is not None:  # a retired arm's late results are dropped
            arm.pulls += 1
            arm.gain += reward

    def pick(self, rng: random.Random) -> str:
        untried = sorted(n for n, a in self.arms.items() if a.pulls == 0)
        if untried:
            return rng.choice(untried)
        total = sum(a.pulls for a in self.arms.values())
        best = max(a.mean for a in self.arms.values())
        scale = best if best > 0 else 1.0
        return _argmax({n: a.mean / scale + self.c * math.sqrt(math.log(total) / a.pulls)
                        for n, a in self.arms.items()}, rng)


class CostAwareUcb:
    """Model choice by improvement per unit of cost (dollars, or tokens when a model has no
    price). Efficiency = (gain + prior_gain · weight) / cost, normalized by the best model's,
    plus a UCB bonus; untried models go first, drawn by weight."""

    def __init__(self, weights: dict[str, float], exploration: float, prior_gain: float) -> None:
        self.weights = dict(weights)
        self.c, self.prior = exploration, prior_gain
        self.arms = {name: Arm() for name in weights}

    def credit(self, name: str, reward: float, cost: float) -> None:
        arm = self.arms.get(name)
        if arm is not None:
            arm.pulls += 1
            arm.gain += reward
            arm.cost += cost
            arm.free += cost <= 0

    def efficiency(self, name: str) -> float:
        # A pull that cost nothing (a dead endpoint fails before any token) is charged what an
        # average paid pull costs: it took a proposal's turn all the same.
        paid = sum(a.pulls - a.free for a in self.arms.values())
        average = sum(a.cost for a in self.arms.values()) / paid if paid else 1.0
        arm = self.arms[name]
        return (arm.gain + self.prior * self.weights[name]) / (arm.cost + arm.free * average)

    def pick(self, rng: random.Random) -> str:
        names = sorted(self.arms)
        untried = [n for n in names if self.arms[n].pulls == 0]
        if untried:
            return rng.choices(untried, weights=[self.weights[n] for n in untried])[0]
        total = sum(a.pulls for a in self.arms.values())
        eff = {n: self.efficiency(n) for n in names}
        best = max(eff.values())
        return _argmax({n: eff[n] / best + self.c * math.sqrt(math.log(total) / self.arms[n].pulls)
                        for n in names}, rng)
