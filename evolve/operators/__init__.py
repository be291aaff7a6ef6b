"""Variation operators, by name. The LLM operators register here too (``evolve.llm``)."""

from __future__ import annotations

from evolve.llm.operators import LlmCrossover, LlmDiff, LlmRewrite
from evolve.operators.base import Context, Feedback, Leader, Operator, Parent, Proposal
from evolve.operators.tunable_ops import ParameterMutation, ShapeMerge, TunableCrossover, TunableReset

# The LLM operators are built with their runtime (``evolve.llm.runtime.build_operators``).
BUILTIN: dict[str, type[Operator]] = {
    op.name: op for op in (ParameterMutation, TunableCrossover, ShapeMerge, TunableReset, LlmDiff, LlmRewrite,
                           LlmCrossover)
}

__all__ = ["BUILTIN", "Context", "Feedback", "Leader", "Operator", "Parent", "Proposal"]
