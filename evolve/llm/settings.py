"""The ``[llm]`` section of a run's configuration: which models, at what price, under what
budget, and how the LLM operators behave. Validated like the rest of ``RunConfig`` (unknown
keys are errors). API keys are never part of it: they are read from the environment variable
named by ``api_key_env``, so a stored run configuration never holds one."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

import prompts

KNOWLEDGE_DIR = Path(prompts.__file__).resolve().parent / "knowledge"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def parse_model_option(text: str) -> dict[str, Any]:
    """``NAME`` or ``NAME=WEIGHT`` (the ``--model`` option) as a ``ModelChoice`` dict."""
    name, sep, weight = text.rpartition("=")
    if sep and name:
        try:
            return {"name": name.strip(), "weight": float(weight)}
        except ValueError:
            pass
    return {"name": text.strip()}


class ModelChoice(_Strict):
    """One model of the ensemble. ``weight`` is its prior: how strongly it is preferred while
    the ensemble bandit knows nothing yet (see ``Ensemble``)."""

    name: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        return parse_model_option(data) if isinstance(data, str) else data


class Price(_Strict):
    """Dollars per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class LlmBudget(_Strict):
    """LLM spend after which no new LLM proposal starts (calls in flight finish). Counts what
    earlier sessions of a resumed run spent. Unset: no limit."""

    dollars: float | None = Field(default=None, gt=0)
    tokens: int | None = Field(default=None, ge=1)


class Repair(_Strict):
    """The agentic repair loop: a proposal goes through the cheap checks on this machine's CPU
    (novelty, static gate and, with ``smoke``, compile and a smoke test in Triton's
    interpreter); on failure the error goes back to the model, up to ``rounds`` times."""

    rounds: int = Field(default=2, ge=0, le=10)
    smoke: bool = True
    concurrency: int = Field(default=2, ge=1, description="cheap checks running at once on this machine")
    timeout_s: float = Field(default=180, gt=0, description="limit of one cheap check")


class Scratchpad(_Strict):
    """Insights the run learned, summarized by a model from the archive every ``interval``
    evaluations (0: never) and shown in every proposal prompt."""

    interval: int = Field(default=40, ge=0)
    max_chars: int = Field(default=4000, ge=200)


class Strategies(_Strict):
    """Meta-prompt evolution: strategy hints chosen by UCB, credited with the fitness gains of
    the candidates they produced; every ``mutate_every`` credited proposals (0: never) the model
    writes a new hint from the best one; at most ``population`` hints are kept."""

    exploration: float = Field(default=1.0, ge=0, description="UCB exploration constant")
    mutate_every: int = Field(default=30, ge=0)
    population: int = Field(default=8, ge=2)
    min_trials: int = Field(default=5, ge=1, description="trials before a hint may be retired")


class Ensemble(_Strict):
    """Model choice per proposal: cost-aware UCB on fitness gain per dollar (per token when a
    model has no price). ``prior_gain``, scaled by each model's weight, keeps an untried or
    not yet successful model from being written off."""

    exploration: float = Field(default=1.0, ge=0)
    prior_gain: float = Field(default=0.01, gt=0)


class LlmSettings(_Strict):
    models: list[ModelChoice] = Field(default_factory=list)
    base_url: str | None = Field(default=None, description="default: $OPENAI_BASE_URL, else OpenAI's")
    api_key_env: str = Field(default="OPENAI_API_KEY", min_length=1,
                             description="the environment variable holding the API key")
    prices: dict[str, Price] = Field(default_factory=dict)
    helper_model: str | None = Field(default=None, description="writes scratchpads and new strategy hints; "
                                                               "default: the model of highest weight")
    concurrency: int = Field(default=4, ge=1, description="requests in flight at once")
    timeout_s: float = Field(default=300, gt=0, description="limit of one request")
    max_retries: int = Field(default=4, ge=0, description="retries with backoff on 408/409/429/5xx and timeouts")
    temperature: float | None = Field(default=None, ge=0, le=2, description="None: the model's default")
    max_tokens: int = Field(default=16384, ge=256, description="limit of one answer")
    token_limit_param: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens"
    knowledge: list[str] = Field(default_factory=lambda: ["attention", "triton", "hopper"],
                                 description="files of prompts/knowledge/ given to the model")
    peak_tflops: float = Field(default=790.0, gt=0, description="the GPU's measured bf16 matmul TFLOP/s")
    lineage_depth: int = Field(default=5, ge=0)
    budget: LlmBudget = Field(default_factory=LlmBudget)
    repair: Repair = Field(default_factory=Repair)
    scratchpad: Scratchpad = Field(default_factory=Scratchpad)
    strategies: Strategies = Field(default_factory=Strategies)
    ensemble: Ensemble = Field(default_factory=Ensemble)

    @field_validator("knowledge")
    @classmethod
    def _knowledge_exists(cls, names: list[str]) -> list[str]:
        missing = [n for n in names if not (KNOWLEDGE_DIR / f"{n}.md").is_file()]
        if missing:
            known = sorted(p.stem for p in KNOWLEDGE_DIR.glob("*.md"))
            raise ValueError(f"no knowledge file {', '.join(missing)}; known: {', '.join(known)}")
        return names

    @field_validator("base_url")
    @classmethod
    def _no_credentials_in_url(cls, url: str | None) -> str | None:
        # The configuration is stored in the archive: a password in the URL would land there.
        if url is not None and "@" in url.split("//", 1)[-1].split("/", 1)[0]:
            raise ValueError("put credentials in the API key's environment variable, not in the URL")
        return url

    @model_validator(mode="after")
    def _consistent(self) -> LlmSettings:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            twice = sorted(n for n in set(names) if names.count(n) > 1)
            raise ValueError(f"a model is listed twice: {', '.join(twice)}")
        if self.budget.dollars is not None:
            unpriced = [n for n in self.used_models() if n not in self.prices]
            if unpriced:
                raise ValueError(f"a budget in dollars needs a price for every model; none for {', '.join(unpriced)} "
                                 "(add [llm.prices.\"NAME\"] input = ..., output = ... in $ per 1M tokens)")
        return self

    def used_models(self) -> list[str]:
        names = [m.name for m in self.models]
        helper = self.helper()
        return names + ([helper] if helper is not None and helper not in names else [])

    def helper(self) -> str | None:
        if self.helper_model is not None:
            return self.helper_model
        return max(self.models, key=lambda m: m.weight).name if self.models else None
