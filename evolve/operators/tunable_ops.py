"""Operators that need no LLM: they move a kernel's tunables along their ladders (and flip its
switches), recombine the tunables of two elites, gather each shape's fastest entry into one
kernel, or draw a fresh configuration. Cheap, and enough for the search to improve kernels out
of the box. None proposes an entry that evolve/feasibility.py says cannot compile.

A TUNABLES entry serves one benchmark shape of twelve, and fitness is their geometric mean: a
10% gain on one shape is 0.8% of fitness, close to what a duel can confirm. So a mutation often
carries its new values to the entry's peers too (same head_dim and mode, same head_dim, or every
entry), where a change such as warp specialisation pays on many shapes at once."""

from __future__ import annotations

import random
from typing import Any

from evolve import feasibility, tunables
from evolve.buckets import length_buckets
from evolve.operators.base import Context, Operator, Proposal

ATTEMPTS = 50  # draws before an operator gives up on finding a feasible change

Entry = dict[str, tunables.Tunable]


def _step(name: str, value: int, rng: random.Random) -> int:
    ladder = tunables.LADDERS[name]
    if value not in ladder:
        return rng.choice(ladder)
    if name in tunables.SWITCHES:
        return rng.choice([v for v in ladder if v != value])
    i = ladder.index(value) + rng.choice((-1, 1))
    return ladder[min(max(i, 0), len(ladder) - 1)]


def _proposal(operator: str, source: str, changes: dict[tunables.Tunable, int], parents: list[int]) -> Proposal | None:
    changes = {t: v for t, v in changes.items() if v != t.value}
    if not changes:
        return None
    summary = ", ".join(f"{t.entry + ':' if t.entry else ''}{t.name} {t.value}->{v}" for t, v in changes.items())
    return Proposal(tunables.rewrite(source, changes), parents, operator, {"changes": summary})


def _random_entry(source: str, rng: random.Random) -> tuple[str, Entry]:
    """One group of tunables (e.g. one shape's row of a table) and its name, or ("", {})."""
    groups = list(tunables.entries(tunables.find(source)).items())
    return rng.choice(groups) if groups else ("", {})


def _feasible(name: str, entry: Entry, changes: dict[tunables.Tunable, int]) -> bool:
    values = {n: changes.get(t, t.value) for n, t in entry.items()}
    return feasibility.feasible(values, feasibility.head_dim_of(name))


def _peers(name: str, names: list[str], rng: random.Random) -> list[str]:
    """Where a mutation of entry ``name`` applies: the entry alone, or with every entry that shares
    its head_dim and mode, its head_dim, or with all of them (each of the three a sixth of the
    time). Entries are named "head_dim,mode,length" in the seeds; for other names only "all"
    is left, a quarter of the time."""
    parts = name.split(",")
    scopes = [[name]] * 3 + [names]
    if len(parts) == 3:
        scopes += [[n for n in names if n.split(",")[:2] == parts[:2]], [n for n in names if n.split(",")[0] == parts[0]]]
    return rng.choice(scopes)


class ParameterMutation(Operator):
    """One or two tunables of one entry, one step up or down their ladder (a switch: to another
    of its choices), the new values often set in the entry's peers as well (see ``_peers``);
    a peer where they cannot compile is left as it was."""

    name = "mutate"

    async def propose(self, ctx: Context) -> Proposal | None:
        parent = ctx.parents[0]
        groups = tunables.entries(tunables.find(parent.source))
        if not groups:
            return None
        name = ctx.rng.choice(list(groups))
        entry = groups[name]
        for _ in range(ATTEMPTS):
            picked = ctx.rng.sample(list(entry.values()), k=min(len(entry), ctx.rng.choice((1, 1, 2))))
            values = {t.name: v for t in picked if (v := _step(t.name, t.value, ctx.rng)) != t.value}
            changes = {entry[n]: v for n, v in values.items()}
            if not values or not _feasible(name, entry, changes):
                continue
            for peer in _peers(name, list(groups), ctx.rng):
                mine = {groups[peer][n]: v for n, v in values.items() if n in groups[peer]}
                if peer != name and _feasible(peer, groups[peer], mine):
                    changes.update(mine)
            return _proposal(self.name, parent.source, changes, [parent.program_id])
        return None


class TunableCrossover(Operator):
    """The first parent's code with, entry by entry, each tunable taken from either parent; an
    entry whose mix cannot compile is drawn again, and kept as the first parent's if none can."""

    name = "crossover"
    arity = 2

    async def propose(self, ctx: Context) -> Proposal | None:
        a, b = ctx.parents
        mine = tunables.entries(tunables.find(a.source))
        theirs = tunables.entries(tunables.find(b.source))
        changes = {}
        for entry, names in mine.items():
            differ = {t: other.value for n, t in names.items()
                      if (other := theirs.get(entry, {}).get(n)) is not None and other.value != t.value}
            for _ in range(ATTEMPTS if differ else 0):
                mix = {t: v for t, v in differ.items() if ctx.rng.random() < 0.5}
                if _feasible(entry, names, mix):
                    changes.update(mix)
                    break
        return _proposal(self.name, a.source, changes, [a.program_id, b.program_id])


def entry_for(names: list[str], shape: dict[str, Any]) -> str | None:
    """The entry of a seed's table that serves ``shape``, by the seeds' own rule: entries are named
    "head_dim,mode,length" (mode "causal" or "full"); the smallest head_dim at least the shape's,
    its mode, and the length whose bucket holds its seq (evolve/buckets.py). None where no
    entry is named that way or none is wide enough."""
    rows = [(int(p[0]), p[1], int(p[2])) for p in (n.split(",") for n in names)
            if len(p) == 3 and p[0].isdigit() and p[2].isdigit()]
    mode = "causal" if shape.get("causal") else "full"
    dims = sorted({d for d, m, _ in rows if m == mode and d >= shape.get("head_dim", 0)})
    if not dims:
        return None
    seq = shape.get("seq", 1)
    bucket = next(b for b in length_buckets([n for d, m, n in rows if (d, m) == (dims[0], mode)])
                  if seq >= b.min_seq and (b.max_seq is None or seq <= b.max_seq))
    return f"{dims[0]},{mode},{bucket.measured_seq}"


class ShapeMerge(Operator):
    """The parent with the entry of each benchmark shape taken whole from that shape's leader
    (the run's fastest program on it, see ``Context.leaders``): per-shape gains found in
    different programs, put together in one kernel (where shapes share an entry, the last
    leader's is taken). Half the time every leader's entry, else
    each with even odds, so a leader that only won by noise need not spoil every child. An
    entry copied whole compiled in its leader; it is still checked for feasibility."""

    name = "merge"

    async def propose(self, ctx: Context) -> Proposal | None:
        parent = ctx.parents[0]
        mine = tunables.entries(tunables.find(parent.source))
        take_all = ctx.rng.random() < 0.5
        changes: dict[tunables.Tunable, int] = {}
        donors: set[int] = set()
        tables: dict[int, dict[str, Entry]] = {}  # by leader: one program often leads several shapes
        for leader in ctx.leaders:
            if leader.program.program_id == parent.program_id:
                continue
            name = entry_for(list(mine), leader.shape)
            if name is None:
                continue
            pid = leader.program.program_id
            if pid not in tables:
                tables[pid] = tunables.entries(tunables.find(leader.program.source))
            theirs = tables[pid].get(name, {})
            mix = {t: theirs[n].value for n, t in mine[name].items() if n in theirs and theirs[n].value != t.value}
            if mix and (take_all or ctx.rng.random() < 0.5) and _feasible(name, mine[name], mix):
                changes.update(mix)
                donors.add(leader.program.program_id)
        return _proposal(self.name, parent.source, changes, [parent.program_id, *sorted(donors)])


class TunableReset(Operator):
    """A whole entry drawn afresh from the ladders: a long jump to escape a local optimum."""

    name = "reset"

    async def propose(self, ctx: Context) -> Proposal | None:
        parent = ctx.parents[0]
        name, entry = _random_entry(parent.source, ctx.rng)
        for _ in range(ATTEMPTS if entry else 0):
            changes = {t: ctx.rng.choice(tunables.LADDERS[t.name]) for t in entry.values()}
            if _feasible(name, entry, changes):
                return _proposal(self.name, parent.source, changes, [parent.program_id])
        return None
