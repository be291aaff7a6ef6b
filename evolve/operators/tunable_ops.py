"""Operators that need no LLM: they move a kernel's tunables along their ladders, recombine
the tunables of two elites, or draw a fresh configuration. Cheap, and enough for the search
to improve kernels out of the box."""

from __future__ import annotations

import random

from evolve import tunables
from evolve.operators.base import Context, Operator, Proposal


def _step(name: str, value: int, rng: random.Random) -> int:
    ladder = tunables.LADDERS[name]
    if value not in ladder:
        return rng.choice(ladder)
    i = ladder.index(value) + rng.choice((-1, 1))
    return ladder[min(max(i, 0), len(ladder) - 1)]


def _proposal(operator: str, source: str, changes: dict[tunables.Tunable, int], parents: list[int]) -> Proposal | None:
    changes = {t: v for t, v in changes.items() if v != t.value}
    if not changes:
        return None
    summary = ", ".join(f"{t.entry + ':' if t.entry else ''}{t.name} {t.value}->{v}" for t, v in changes.items())
    return Proposal(tunables.rewrite(source, changes), parents, operator, {"changes": summary})


def _random_entry(source: str, rng: random.Random) -> dict[str, tunables.Tunable]:
    """One group of tunables (e.g. one head_dim's row of a table), or {} when there is none."""
    groups = list(tunables.entries(tunables.find(source)).values())
    return rng.choice(groups) if groups else {}


class ParameterMutation(Operator):
    """One or two tunables of one entry, one step up or down their ladder."""

    name = "mutate"

    async def propose(self, ctx: Context) -> Proposal | None:
        parent = ctx.parents[0]
        entry = _random_entry(parent.source, ctx.rng)
        if not entry:
            return None
        picked = ctx.rng.sample(list(entry.values()), k=min(len(entry), ctx.rng.choice((1, 1, 2))))
        changes = {t: _step(t.name, t.value, ctx.rng) for t in picked}
        return _proposal(self.name, parent.source, changes, [parent.program_id])


class TunableCrossover(Operator):
    """The first parent's code with, entry by entry, each tunable taken from either parent."""

    name = "crossover"
    arity = 2

    async def propose(self, ctx: Context) -> Proposal | None:
        a, b = ctx.parents
        mine = tunables.entries(tunables.find(a.source))
        theirs = tunables.entries(tunables.find(b.source))
        changes = {}
        for entry, names in mine.items():
            for name, t in names.items():
                other = theirs.get(entry, {}).get(name)
                if other is not None and other.value != t.value and ctx.rng.random() < 0.5:
                    changes[t] = other.value
        return _proposal(self.name, a.source, changes, [a.program_id, b.program_id])


class TunableReset(Operator):
    """A whole entry drawn afresh from the ladders: a long jump to escape a local optimum."""

    name = "reset"

    async def propose(self, ctx: Context) -> Proposal | None:
        parent = ctx.parents[0]
        entry = _random_entry(parent.source, ctx.rng)
        if not entry:
            return None
        changes = {t: ctx.rng.choice(tunables.LADDERS[t.name]) for t in entry.values()}
        return _proposal(self.name, parent.source, changes, [parent.program_id])
