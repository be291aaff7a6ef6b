"""Meta-prompt evolution: a small population of strategy hints, each closing the proposal
prompt. A UCB bandit picks one per proposal and credits it with the fitness gain of what it
produced; every so often the model writes a new hint from the best ones, and the worst
well-tried hint is retired when the population is full.

Nothing here is stored apart from the archive's events: new hints are ``llm_strategy`` events
and credits ``llm_credit`` events, and replaying them in order rebuilds the pool on resume.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from evolve.llm.bandits import Ucb
from evolve.llm.settings import Strategies

_NAME = re.compile(r"^\W*name\W*:?\s*([A-Za-z0-9][\w-]{0,60})\s*$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Strategy:
    name: str
    text: str
    parent: str | None = None


class StrategyPool:
    def __init__(self, settings: Strategies, initial: dict[str, str]) -> None:
        self.settings = settings
        self.bandit = Ucb(settings.exploration)
        self.pool: dict[str, Strategy] = {}
        self.credited_since_mutation = 0
        self._names: set[str] = set()  # every name ever used: a retired hint's name is never reused
        for name, text in initial.items():
            self.add(Strategy(name, text))

    def add(self, s: Strategy) -> str | None:
        """Add a hint; returns the name of the hint retired to make room, if any."""
        self.pool[s.name] = s
        self._names.add(s.name)
        self.bandit.add(s.name)
        self.credited_since_mutation = 0
        if len(self.pool) <= self.settings.population:
            return None
        tried = [n for n in self.pool if n != s.name and self.bandit.arms[n].pulls >= self.settings.min_trials]
        if not tried:
            return None
        worst = min(tried, key=lambda n: (self.bandit.arms[n].mean, list(self.pool).index(n)))
        del self.pool[worst]
        self.bandit.remove(worst)
        return worst

    def pick(self, rng: random.Random) -> Strategy:
        return self.pool[self.bandit.pick(rng)]

    def credit(self, name: str, reward: float) -> None:
        if name in self.pool:
            self.bandit.credit(name, reward)
            self.credited_since_mutation += 1

    def mutation_due(self) -> bool:
        every = self.settings.mutate_every
        return every > 0 and self.credited_since_mutation >= every

    def best(self) -> Strategy:
        return self.pool[max(self.pool, key=lambda n: (self.bandit.arms[n].mean, self.bandit.arms[n].pulls))]

    def stats(self) -> list[dict[str, Any]]:
        return [{"name": s.name, "text": s.text, "parent": s.parent, "trials": self.bandit.arms[s.name].pulls,
                 "mean": self.bandit.arms[s.name].mean} for s in self.pool.values()]

    def parse(self, answer: str, parent: str) -> Strategy | None:
        """A new hint from the model's answer (``Name: ...`` then the hint), or None."""
        m = _NAME.search(answer)
        if m is None:
            return None
        text = answer[m.end():].strip().strip("`").strip()
        if len(text) < 20:
            return None
        name, base, n = m[1].lower(), m[1].lower(), 1
        while name in self._names:
            n += 1
            name = f"{base}-{n}"
        return Strategy(name, text[:1500], parent)
