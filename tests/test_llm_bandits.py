"""The bandits behind strategy hints (UCB) and model choice (cost-aware UCB), and the hint pool."""

from __future__ import annotations

import random
from collections import Counter

from evolve.llm.bandits import CostAwareUcb, Ucb, gain
from evolve.llm.settings import Strategies
from evolve.llm.strategies import Strategy, StrategyPool


def test_rewards_are_relative_gains_and_never_negative() -> None:
    assert abs(gain(0.8, 0.88) - 0.1) < 1e-12
    assert gain(0.8, 0.7) == 0 and gain(None, 0.9) == 0 and gain(0.8, None) == 0


def test_ucb_tries_every_arm_then_prefers_the_one_that_gains() -> None:
    rng, ucb = random.Random(0), Ucb(exploration=0.5)
    for name in ("a", "b", "c"):
        ucb.add(name)
    first = []
    for _ in range(3):
        arm = ucb.pick(rng)
        first.append(arm)
        ucb.credit(arm, 0.0)
    assert sorted(first) == ["a", "b", "c"]  # untried arms first
    picks = Counter()
    for _ in range(200):
        arm = ucb.pick(rng)
        picks[arm] += 1
        ucb.credit(arm, 0.05 if arm == "b" else 0.0)
    assert picks["b"] > 150 and picks["a"] > 0 and picks["c"] > 0  # exploration never stops


def test_the_model_bandit_prefers_gain_per_dollar() -> None:
    rng = random.Random(1)
    bandit = CostAwareUcb({"cheap": 1.0, "dear": 1.0}, exploration=0.3, prior_gain=0.01)
    picks = Counter()
    for _ in range(300):
        m = bandit.pick(rng)
        picks[m] += 1
        # Same gains per proposal; the dear model costs ten times as much.
        bandit.credit(m, 0.02, 0.01 if m == "cheap" else 0.10)
    assert picks["cheap"] > 2 * picks["dear"] > 0
    assert bandit.efficiency("cheap") > bandit.efficiency("dear")


def test_a_model_whose_calls_fail_before_costing_anything_does_not_look_free() -> None:
    bandit = CostAwareUcb({"dead": 1.0, "live": 1.0}, exploration=0.0, prior_gain=0.01)
    for _ in range(10):
        bandit.credit("dead", 0.0, 0.0)
        bandit.credit("live", 0.02, 0.05)
    assert bandit.efficiency("live") > bandit.efficiency("dead")


def test_untried_models_are_drawn_by_weight() -> None:
    rng = random.Random(2)
    picks = Counter(CostAwareUcb({"a": 9.0, "b": 1.0}, 1.0, 0.01).pick(rng) for _ in range(500))
    assert picks["a"] > 5 * picks["b"] > 0


def test_the_pool_retires_its_worst_well_tried_hint_and_never_reuses_a_name() -> None:
    pool = StrategyPool(Strategies(population=2, min_trials=2), {"x": "hint x", "y": "hint y"})
    for _ in range(2):
        pool.credit("x", 0.1)
        pool.credit("y", 0.0)
    assert pool.mutation_due() is False  # mutate_every defaults to 30
    new = pool.parse("Name: better\nA hint that is long enough to be a hint.", "x")
    assert new == Strategy("better", "A hint that is long enough to be a hint.", "x")
    assert pool.add(new) == "y" and set(pool.pool) == {"x", "better"}
    again = pool.parse("Name: y\nAnother hint long enough to count as one.", "x")
    assert again is not None and again.name == "y-2"
    assert pool.parse("no name line here", "x") is None
