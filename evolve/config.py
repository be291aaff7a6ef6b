"""Configuration of a search, in one validated tree: defaults here, a TOML file over them,
command-line options over both. Unknown keys are errors, named with their path."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evolve.errors import UserError
from evolve.llm.settings import LlmSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Budget(_Strict):
    """When a run stops: after this many evaluated candidates and/or this much wall time
    (summed over resumes). At least one must be set."""

    candidates: int | None = Field(default=None, ge=1)
    seconds: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_limit(self) -> Budget:
        if self.candidates is None and self.seconds is None:
            raise ValueError("set a number of candidates and/or a wall time")
        return self


class Islands(_Strict):
    count: int = Field(default=0, ge=0, le=64, description="0: one per seed kernel")
    migration_interval: int = Field(default=40, ge=1, description="evaluations between migrations")


class Selection(_Strict):
    explore: float = Field(default=0.3, ge=0, le=1, description="chance of a uniformly drawn parent")
    tournament: int = Field(default=3, ge=1, description="elites drawn when exploiting; the fittest wins")
    inspirations: int = Field(default=3, ge=0, description="other elites shown to operators")


class Evaluation(_Strict):
    workers: int | None = Field(default=None, ge=1, description="evaluation workers; default: one per GPU")
    # 12 at once kept an H200 with 16 cores at 564 checks per hour, its CPUs 37% busy
    # (benchmarks/results/check-speed-concurrent-h200.md); simulated workers take one at a time.
    per_worker: int | None = Field(default=None, ge=1, description="candidates checked at once per worker "
                                   "(default: 12 on a GPU, 1 simulated)")
    gpu_model: str | None = Field(default=None, description="Ray accelerator type to run on (e.g. H100); "
                                  "default: the one with most GPUs in the cluster, then fixed for the run")
    check_timeout_s: float = Field(default=600, gt=0)
    rep_ms: float = Field(default=50, gt=0, description="per shape, milliseconds of candidate and baseline "
                          "time each to sample, interleaved (duels decide what a check's noise cannot)")
    fixed_eval_s: float | None = Field(default=None, gt=0, description="simulated runs only: each job (check "
                                       "or duel) sleeps this many seconds; checks pass with the cost model's "
                                       "timings, no interpreter (the controller at scale without GPUs)")


class RunConfig(_Strict):
    task: str = "mha_fwd"
    budget: Budget
    db: str | None = None
    ray_address: str | None = None
    # The kernels a new run starts from (default: the task's seed), one lineage each: seed i
    # starts islands i, i + n, i + 2n, ... of n seeds, and crossover pairs kernels of one lineage.
    seed_kernel: list[Path] = Field(default_factory=list)
    # The run's own benchmark (e.g. a model's heads, kv heads, head_dim, lengths and batch):
    # fitness is measured on these shapes instead of the task's; each is checked by the task.
    shapes: list[dict[str, Any]] = Field(default_factory=list)
    simulate: bool = False
    random_seed: int | None = None
    generation_size: int = Field(default=16, ge=1, description="evaluations per statistics row")
    # The LLM operators take part only when a model is configured (``llm``); without one,
    # ``evolve run`` says so and keeps the others.
    operators: dict[str, float] = Field(default_factory=lambda: {
        "llm_diff": 0.3, "llm_rewrite": 0.1, "llm_crossover": 0.1, "mutate": 0.2, "crossover": 0.1, "merge": 0.1,
        "reset": 0.1})
    islands: Islands = Field(default_factory=Islands)
    selection: Selection = Field(default_factory=Selection)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    llm: LlmSettings = Field(default_factory=LlmSettings)

    @model_validator(mode="after")
    def _known_operators(self) -> RunConfig:
        from evolve.operators import BUILTIN

        unknown = sorted(set(self.operators) - set(BUILTIN))
        if unknown:
            raise ValueError(f"unknown operator(s) {', '.join(unknown)}; known: {', '.join(sorted(BUILTIN))}")
        if not any(w > 0 for w in self.operators.values()):
            raise ValueError("at least one operator needs a positive weight")
        return self

    @field_validator("seed_kernel", mode="before")
    @classmethod
    def _one_or_more(cls, v: Any) -> Any:
        return [] if v is None else [v] if isinstance(v, (str, Path)) else v

    @model_validator(mode="after")
    def _shapes_of_the_task(self) -> RunConfig:
        if not self.shapes:
            return self
        from harness.task import get_task, unknown_task

        if unknown_task(self.task) is None:  # an unknown task is said where it is used
            task = get_task(self.task)
            for i, shape in enumerate(self.shapes):
                try:
                    task.benchmark_case(shape)
                except ValueError as e:
                    raise ValueError(f"shape {i + 1} {shape}: {e}") from None
        return self

    @model_validator(mode="after")
    def _an_island_per_seed(self) -> RunConfig:
        seeds = max(1, len(self.seed_kernel))
        if self.islands.count == 0:
            self.islands.count = seeds
        elif self.islands.count < seeds:
            raise ValueError(f"islands.count is {self.islands.count} but there are {seeds} seed kernels: each "
                             "seed needs an island of its own")
        return self

    @model_validator(mode="after")
    def _fixed_time_only_simulated(self) -> RunConfig:
        if self.evaluation.fixed_eval_s is not None and not self.simulate:
            raise ValueError("evaluation.fixed_eval_s needs simulate: a fixed-time verdict is modelled, never measured")
        return self


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_budget(text: str) -> dict[str, Any]:
    """``200`` (candidates), ``30m`` (wall time: s, m, h, d), or both: ``200,30m``."""
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if part.isdigit():
            out["candidates"] = int(part)
        elif m := _DURATION.match(part):
            out["seconds"] = float(m[1]) * _UNIT[m[2]]
        else:
            raise UserError(f"cannot read budget {text!r}: use a number of candidates (200), a wall time "
                            "(30m, 2h) or both (200,2h)")
    if not out:
        raise UserError("the budget is empty: use a number of candidates (200), a wall time (30m) or both")
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{what} {path} is not valid TOML: {e}") from None


def load_shapes(path: Path) -> list[dict[str, Any]]:
    """A ``--shapes`` file: TOML whose ``[[shapes]]`` tables are the run's benchmark shapes."""
    data = _read_toml(path, "shapes file")
    shapes = data.get("shapes")
    if set(data) != {"shapes"} or not isinstance(shapes, list) or not shapes:
        raise UserError(f"shapes file {path} must hold [[shapes]] tables only, e.g.\n"
                        "  [[shapes]]\n  batch = 2\n  heads = 32\n  kv_heads = 8\n  seq = 8192\n"
                        "  head_dim = 128\n  causal = true")
    return shapes


def load(path: Path | None, overrides: dict[str, Any], base: dict[str, Any] | None = None,
         source: str | None = None) -> RunConfig:
    """``base`` (a resumed run's stored configuration), then the TOML file, then ``overrides``."""
    data = _read_toml(path, "config file") if path is not None else {}
    return validate(_merge(base or {}, _merge(data, overrides)), source=source or (str(path) if path else "options"))


def validate(data: dict[str, Any], source: str = "options") -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        lines = [f"  {'.'.join(str(x) for x in err['loc']) or '(top)'}: {err['msg']}" for err in e.errors()]
        raise UserError(f"invalid configuration ({source}):\n" + "\n".join(lines)) from None
