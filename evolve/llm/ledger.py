"""What LLM calls cost and how much may still be spent. Spend is the archive's: a resumed run
starts from what its earlier sessions spent (``Archive.llm_spend``)."""

from __future__ import annotations

from dataclasses import dataclass

from evolve.llm.settings import LlmBudget, Price


class PriceTable:
    def __init__(self, prices: dict[str, Price]) -> None:
        self._prices = dict(prices)

    def knows(self, model: str) -> bool:
        return model in self._prices

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        """Dollars; 0 for a model without a price (tokens are still counted)."""
        p = self._prices.get(model)
        if p is None:
            return 0.0
        return (prompt_tokens * p.input + completion_tokens * p.output) / 1e6


@dataclass
class Ledger:
    limits: LlmBudget
    dollars: float = 0.0
    tokens: int = 0

    def add(self, dollars: float, tokens: int) -> None:
        self.dollars += dollars
        self.tokens += tokens

    def exhausted(self) -> str | None:
        """Why no new call may start, or None. Calls already in flight may overshoot the limit
        by what they cost (at most ``concurrency`` answers)."""
        b = self.limits
        if b.dollars is not None and self.dollars >= b.dollars:
            return f"the LLM budget of ${b.dollars:g} is spent (${self.dollars:.4f})"
        if b.tokens is not None and self.tokens >= b.tokens:
            return f"the LLM budget of {b.tokens} tokens is spent ({self.tokens})"
        return None
