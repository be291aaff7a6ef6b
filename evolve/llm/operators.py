"""The LLM operators: ``llm_diff`` (SEARCH/REPLACE edit of one parent), ``llm_rewrite`` (a
complete new version of one parent) and ``llm_crossover`` (a child of two parents).

Each proposal is a short agentic loop (AVO's lesson): the model answers; its edit is applied;
the candidate goes through the cheap checks (novelty across the archive, static gate, compile and
smoke in the CPU interpreter); on any failure the error goes back to the model, up to
``repair.rounds`` times. Only a candidate that passes is handed to the search; one that never
does is dropped and recorded (its calls, and an ``llm_credit`` event saying why). A failed call
(timeout, HTTP error, truncated or empty answer) ends the proposal the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from evolve.llm import edits
from evolve.llm.client import Completion, Message
from evolve.operators.base import Context, Feedback, Operator, Proposal
from harness.verdict import Outcome

if TYPE_CHECKING:
    from evolve.llm.prompts import EditFormat
    from evolve.llm.runtime import LlmRuntime


@dataclass
class Attempt:
    """One proposal's calls: the first answer and its repair rounds."""

    model: str
    strategy: str
    calls: list[int] = field(default_factory=list)
    cost_usd: float = 0.0
    tokens: int = 0
    rounds: int = 0  # repair rounds used
    summary: str = ""  # the model's account of its change: from its first answer that gives one

    def add(self, c: Completion) -> None:
        if c.call_id is not None:
            self.calls.append(c.call_id)
        if not self.summary and c.ok and c.text:
            self.summary = edits.summary(c.text)
        self.cost_usd += c.cost_usd
        self.tokens += c.tokens


class LlmOperator(Operator):
    edit_format: ClassVar[EditFormat]

    def __init__(self, runtime: LlmRuntime) -> None:
        self.rt = runtime

    def _apply(self, current: str, answer: str) -> str:
        if self.edit_format == "diff":
            return edits.apply_blocks(current, edits.parse_blocks(answer))
        return edits.extract_program(answer)

    def _messages(self, ctx: Context, strategy: str) -> list[Message]:
        rt = self.rt
        views = [rt.views.program(p.program_id) for p in ctx.parents]
        inspirations = [rt.views.inspiration(p.program_id, ctx.parents[0].source) for p in ctx.inspirations]
        lineage = rt.views.lineage(ctx.parents[0].program_id, rt.settings.lineage_depth)
        return rt.prompts.propose(self.edit_format, parents=views, inspirations=inspirations, lineage=lineage,
                                  scratchpad=rt.scratchpad.text, strategy=strategy)

    async def propose(self, ctx: Context) -> Proposal | None:
        rt = self.rt
        if not rt.budget_left():
            return None
        await rt.maintain()
        model, strategy = rt.pick(ctx.rng)
        attempt = Attempt(model, strategy.name)
        parents = [p.program_id for p in ctx.parents]
        messages = self._messages(ctx, strategy.text)
        current = ctx.parents[0].source
        rounds = rt.settings.repair.rounds
        for round_ in range(rounds + 1):
            answer = await rt.client.complete(model, messages, purpose=self.name if round_ == 0 else "repair")
            attempt.add(answer)
            attempt.rounds = round_
            if not answer.ok or answer.text is None:
                self._drop(attempt, f"the call failed: {answer.detail}")
                return None
            try:
                source = self._apply(current, answer.text)
            except edits.EditError as e:
                kind, problem, log_tail, shown = "edit", str(e), "", None
            else:
                check = await rt.precheck(source, parents)
                if check.ok:
                    return Proposal(source, parents, self.name, self._meta(attempt))
                kind, problem, log_tail = check.kind, check.message, check.log_tail
                # A broken candidate is repaired as it stands; a duplicate is replaced by another
                # change to the parent.
                shown = source if self.edit_format == "diff" and kind != "duplicate" else None
                if shown is not None:
                    current = source
            if round_ == rounds or not rt.budget_left():
                self._drop(attempt, f"{kind}: {problem}")
                return None
            messages = messages + [
                {"role": "assistant", "content": answer.text},
                rt.prompts.repair(edit_format=self.edit_format, problem_kind=kind, problem=problem,
                                  log_tail=log_tail, candidate=shown, round=round_ + 1, rounds=rounds)]
        return None  # not reached: the last round returns

    def _meta(self, attempt: Attempt) -> dict[str, object]:
        return {"summary": attempt.summary, "model": attempt.model, "strategy": attempt.strategy,
                "repairs": attempt.rounds, "llm_calls": attempt.calls, "llm_cost_usd": attempt.cost_usd,
                "llm_tokens": attempt.tokens}

    def _drop(self, attempt: Attempt, why: str) -> None:
        meta = {"model": attempt.model, "strategy": attempt.strategy, "llm_cost_usd": attempt.cost_usd,
                "llm_tokens": attempt.tokens, "summary": attempt.summary, "llm_calls": attempt.calls}
        rounds = f" after {attempt.rounds} repair round(s)" if attempt.rounds else ""
        self.rt.credit(operator=self.name, meta=meta, parent_fitness=None, fitness=None,
                       result=f"dropped{rounds}: {why[:400]}", program_id=None)

    def feedback(self, fb: Feedback) -> None:
        meta = fb.meta or {}
        if "model" not in meta or "strategy" not in meta:
            return  # not made by this session's kind of proposal (e.g. an older archive)
        v = fb.verdict
        if v.outcome is Outcome.PASSED and v.fitness is not None and fb.fitness is not None:
            parent = f" vs {fb.parent_fitness:.3f}" if fb.parent_fitness is not None else ""
            result = f"passed, fitness {fb.fitness:.3f}{parent}"
        elif v.outcome is Outcome.PASSED:
            result = "passed"
        else:
            result = f"{v.outcome.value} at {v.stage.value}: {v.reason[:300]}"
        self.rt.credit(operator=self.name, meta=meta, parent_fitness=fb.parent_fitness, fitness=fb.fitness,
                       result=result, program_id=fb.program_id)


class LlmDiff(LlmOperator):
    """A SEARCH/REPLACE edit of one parent."""

    name = "llm_diff"
    edit_format = "diff"


class LlmRewrite(LlmOperator):
    """A complete new version of one parent."""

    name = "llm_rewrite"
    edit_format = "rewrite"


class LlmCrossover(LlmOperator):
    """A child of two parents, written whole by the model."""

    name = "llm_crossover"
    arity = 2
    edit_format = "crossover"
