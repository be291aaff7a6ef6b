"""Everything the LLM operators share during a run: the client and its budget, the prompts and
the archive views they are rendered from, the cheap checks, the model and strategy bandits
and the scratchpad. ``build_operators`` is how ``evolve run`` gets its operators.

State that must survive ``--resume`` lives in the archive and is rebuilt by ``start``: spend
from the recorded calls (``llm_spend``), bandits and hints by replaying the run's
``llm_credit`` and ``llm_strategy`` events, the scratchpad from its last event.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from typing import Any

from archive import Archive
from evolve.llm.bandits import CostAwareUcb, gain
from evolve.llm.client import (
    Completion,
    Endpoint,
    LlmClient,
    Message,
    NotConfigured,
    resolve_endpoint,
)
from evolve.llm.ledger import Ledger, PriceTable
from evolve.llm.precheck import LocalCheck
from evolve.llm.prompts import Prompts, load_strategies
from evolve.llm.scratchpad import Scratchpad
from evolve.llm.strategies import Strategy, StrategyPool
from evolve.llm.views import Views
from harness.task import get_task

log = logging.getLogger("evolve.llm")

LLM_OPERATORS = ("llm_diff", "llm_rewrite", "llm_crossover")
LLM_FREE_DEFAULT = {"mutate": 0.5, "crossover": 0.15, "merge": 0.15, "reset": 0.2}
CREDIT, STRATEGY, BUDGET = "llm_credit", "llm_strategy", "llm_budget"


class LlmRuntime:
    def __init__(self, cfg: Any, archive: Archive, endpoint: Endpoint) -> None:
        s = cfg.llm
        self.settings, self.archive = s, archive
        self.task = get_task(cfg.task, cfg.shapes)
        self.prompts = Prompts(self.task, s.knowledge, peak_tflops=s.peak_tflops)
        self.views = Views(archive, self.task, peak_tflops=s.peak_tflops)
        self.prices = PriceTable(s.prices)
        self.ledger = Ledger(s.budget)
        self.client = LlmClient(s, endpoint, prices=self.prices, ledger=self.ledger, record=self._record)
        self.precheck = LocalCheck(archive, cfg.task, s.repair)
        self.models = CostAwareUcb({m.name: m.weight for m in s.models}, s.ensemble.exploration, s.ensemble.prior_gain)
        self.cost_in_dollars = all(self.prices.knows(m.name) for m in s.models)
        self.strategies = StrategyPool(s.strategies, load_strategies())
        self.scratchpad = Scratchpad(s.scratchpad, archive, self.views, self.prompts)
        self.outcomes: list[dict[str, Any]] = []  # recent proposals, for the scratchpad
        self.run_id: int | None = None
        self._busy = False
        self._budget_noted = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, run_id: int) -> None:
        """Bind to the run (new or resumed) and rebuild what earlier sessions learned."""
        self.run_id = run_id
        self.ledger.dollars, self.ledger.tokens = self.archive.llm_spend(run_id)
        for e in self.archive.events(run_id):
            if e.kind == STRATEGY and e.data:
                self.strategies.add(Strategy(e.data["name"], e.data["text"], e.data.get("parent")))
            elif e.kind == CREDIT and e.data:
                self._learn(e.data)
        self.scratchpad.load(run_id)

    def _record(self, **fields: Any) -> int:
        call_id = self.archive.add_llm_call(self.run_id, **fields)
        if self.run_id is not None:
            self.archive.add_spend(self.run_id, dollars=fields["cost_usd"],
                                   tokens=fields["prompt_tokens"] + fields["completion_tokens"])
        self.budget_left()  # noted the moment it is spent, not at the next proposal
        return call_id

    def budget_left(self) -> bool:
        why = self.ledger.exhausted()
        if why is not None and not self._budget_noted:
            self._budget_noted = True
            log.warning("%s: the LLM operators make no new proposals", why)
            if self.run_id is not None:
                self.archive.add_event(self.run_id, BUDGET, f"{why}: the LLM operators make no new proposals")
        return why is None

    # -- choices -----------------------------------------------------------------------------
    def pick(self, rng: random.Random) -> tuple[str, Strategy]:
        return self.models.pick(rng), self.strategies.pick(rng)

    async def ask(self, messages: list[Message], purpose: str) -> Completion:
        """A call by the helper model (scratchpad, new strategy hints)."""
        helper = self.settings.helper()
        assert helper is not None  # a runtime exists only with a model configured
        return await self.client.complete(helper, messages, purpose=purpose)

    async def maintain(self) -> None:
        """Refresh the scratchpad and write a new strategy hint when they are due. One at a time:
        concurrent proposals do not queue up behind it."""
        if self._busy or self.run_id is None:
            return
        self._busy = True
        try:
            evaluations = self.archive.stats(self.run_id).evaluations
            if self.scratchpad.due(evaluations) and self.budget_left():
                await self.scratchpad.refresh(self.run_id, evaluations, self.outcomes, self.ask)
            if self.strategies.mutation_due() and self.budget_left():
                await self._mutate_strategy()
        finally:
            self._busy = False

    async def _mutate_strategy(self) -> None:
        assert self.run_id is not None
        parent = self.strategies.best()
        messages = self.prompts.strategy(strategies=self.strategies.stats(), scratchpad=self.scratchpad.text)
        answer = await self.ask(messages, "meta_prompt")
        new = self.strategies.parse(answer.text or "", parent.name) if answer.ok else None
        if new is None:
            self.strategies.credited_since_mutation = 0  # asked again after another round of credits
            log.warning("no new strategy hint: %s", answer.detail or "the answer has no `Name:` line and hint")
            return
        retired = self.strategies.add(new)
        self.archive.add_event(self.run_id, STRATEGY,
                               f"new strategy hint {new.name} from {parent.name}"
                               + (f"; retired {retired}" if retired else ""),
                               {"name": new.name, "text": new.text, "parent": parent.name, "retired": retired,
                                "llm_call": answer.call_id})

    # -- credit ------------------------------------------------------------------------------
    def credit(self, *, operator: str, meta: dict[str, Any], parent_fitness: float | None,
               fitness: float | None, result: str, program_id: int | None) -> None:
        """What a proposal earned, to its model and strategy; stored as an event (the ledger the
        bandits are rebuilt from on resume)."""
        data = {"program_id": program_id, "operator": operator, "model": meta["model"],
                "strategy": meta["strategy"], "summary": meta.get("summary", ""), "result": result,
                "reward": gain(parent_fitness, fitness), "cost_usd": meta["llm_cost_usd"],
                "tokens": meta["llm_tokens"]}
        self._learn(data)
        if self.run_id is not None:
            what = f"program {program_id}" if program_id is not None else "a dropped proposal"
            self.archive.add_event(self.run_id, CREDIT, f"{operator} by {data['model']}: {what}: {result}", data)

    def _learn(self, data: Mapping[str, Any]) -> None:
        cost = data["cost_usd"] if self.cost_in_dollars else data["tokens"]
        self.models.credit(data["model"], data["reward"], cost)
        self.strategies.credit(data["strategy"], data["reward"])
        self.outcomes = (self.outcomes + [dict(data)])[-50:]


def build_operators(cfg: Any, archive: Archive, say: Callable[[str], None],
                    env: Mapping[str, str] | None = None) -> tuple[dict[str, Any], Any, LlmRuntime | None]:
    """The operators of ``cfg.operators`` with a positive weight, the configuration to run with
    and the LLM runtime (None when no LLM operator is used). Without an LLM configured the LLM
    operators are left out, saying so; if nothing else is left, the LLM-free defaults are used."""
    from evolve.operators import BUILTIN

    wanted = [n for n, w in cfg.operators.items() if w > 0 and n in LLM_OPERATORS]
    runtime = None
    if wanted:
        endpoint = resolve_endpoint(cfg.llm, env)
        if isinstance(endpoint, NotConfigured):
            rest = {n: w for n, w in cfg.operators.items() if w > 0 and n not in LLM_OPERATORS}
            if not rest:
                cfg = cfg.model_copy(update={"operators": dict(LLM_FREE_DEFAULT)})
                rest = LLM_FREE_DEFAULT
            say(f"No LLM configured ({endpoint.reason}): using the LLM-free operators "
                + ", ".join(f"{n} {w:g}" for n, w in rest.items()) + ".")
        else:
            runtime = LlmRuntime(cfg, archive, endpoint)
            say(f"LLM operators {', '.join(wanted)} with {', '.join(m.name for m in cfg.llm.models)} "
                f"at {endpoint.describe()}.")
    ops = {}
    for name, weight in cfg.operators.items():
        if weight <= 0:
            continue
        if name in LLM_OPERATORS:
            if runtime is not None:
                ops[name] = BUILTIN[name](runtime)  # type: ignore[call-arg]  # an LlmOperator
        else:
            ops[name] = BUILTIN[name]()
    return ops, cfg, runtime
