"""Variation operators, by name. The LLM operators register here too (``evolve.llm``)."""

from __future__ import annotations

from evolve.operators.base import Context, Operator, Parent, Proposal
from evolve.operators.tunable_ops import ParameterMutation, TunableCrossover, TunableReset

BUILTIN: dict[str, type[Operator]] = {
    op.name: op for op in (ParameterMutation, TunableCrossover, TunableReset)
}

__all__ = ["BUILTIN", "Context", "Operator", "Parent", "Proposal"]
