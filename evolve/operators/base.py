"""The variation-operator interface: every way of making a candidate (parameter mutation,
recombination, an LLM's edit) is one small plug-in behind it."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from harness.verdict import Verdict


@dataclass(frozen=True)
class Parent:
    """A program an operator may build on, with what is known of how it did."""

    program_id: int
    source: str
    fitness: float | None = None
    descriptors: dict[str, float] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = None  # the latest verdict, as a dict


@dataclass(frozen=True)
class Proposal:
    source: str
    parents: list[int]
    operator: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Leader:
    """The run's fastest passed program on one benchmark shape, as timed in its own check."""

    shape: dict[str, Any]
    ms: float
    program: Parent


@dataclass
class Context:
    """What an operator is given: its parents (``arity`` of them), a few other elites for
    inspiration, each benchmark shape's leader (elite or not: fitness is a mean over the shapes,
    so a program fastest on one shape is often kept nowhere in the grid), and a random generator
    it must use for every choice (runs are reproducible)."""

    parents: list[Parent]
    inspirations: list[Parent]
    rng: random.Random
    task: str = "mha_fwd"
    leaders: list[Leader] = field(default_factory=list)


@dataclass(frozen=True)
class Feedback:
    """How a program an operator proposed was judged: what bandits and prompt evolution learn from."""

    program_id: int
    meta: dict[str, Any]  # the proposal's meta, as stored with the program
    parent_fitness: float | None  # the best fitness among its parents, when known
    verdict: Verdict
    # What the search credits it with: its fitness where a side-by-side re-timing confirmed a
    # gain, else at most its parents' (an unconfirmed gain counts for nothing); None if it failed.
    fitness: float | None


class Operator(ABC):
    name: ClassVar[str]
    arity: ClassVar[int] = 1  # parents it needs

    @abstractmethod
    async def propose(self, ctx: Context) -> Proposal | None:
        """A new candidate, or None when this operator has nothing to offer for these parents."""

    def feedback(self, fb: Feedback) -> None:  # noqa: B027  (optional hook: most operators learn nothing)
        """Called once the search has recorded the verdict of a program this operator proposed."""
