"""What queries hand back: frozen dataclasses, detached from any session, safe to keep and to
serialize (``dataclasses.asdict``); the CLI's ``--json`` prints exactly these."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from archive.models import ProgramState, RunStatus
from harness.verdict import Outcome, Stage


@dataclass(frozen=True)
class Spend:
    candidates: int
    seconds: float
    dollars: float
    tokens: int


@dataclass(frozen=True)
class RunInfo:
    id: int
    name: str | None
    task: str
    simulated: bool
    status: RunStatus
    config: dict[str, Any]
    budget: dict[str, Any] | None
    started_at: datetime
    ended_at: datetime | None
    spend: Spend


@dataclass(frozen=True)
class RunSummary:
    """A run with its counts: ``passed`` programs have at least one passed evaluation,
    ``failed`` ones were evaluated without any."""

    id: int
    name: str | None
    task: str
    simulated: bool
    status: RunStatus
    started_at: datetime
    ended_at: datetime | None
    programs: int
    evaluated: int
    passed: int
    failed: int
    best_fitness: float | None


@dataclass(frozen=True)
class ShapeResultInfo:
    label: str
    shape: dict[str, Any]
    rel_err: float | None
    max_abs_err: float | None
    passed: bool
    note: str


@dataclass(frozen=True)
class TimingInfo:
    label: str
    shape: dict[str, Any]
    ms: float
    baseline_ms: float
    baseline_backend: str
    tflops: float
    baseline_tflops: float
    speedup: float
    samples: int  # timed calls per contender (0: not kept)
    speedup_low: float | None
    speedup_high: float | None


@dataclass(frozen=True)
class EvaluationInfo:
    id: int
    program_id: int
    key: str
    outcome: Outcome
    stage: Stage
    reason: str
    passed: bool
    fitness: float | None
    fitness_low: float | None
    fitness_high: float | None
    tflops: float | None
    mode: str
    simulated: bool
    device: str
    torch_version: str
    triton_version: str
    duration_s: float
    sandbox: list[str]
    log: str
    created_at: datetime
    shape_results: tuple[ShapeResultInfo, ...]
    timings: tuple[TimingInfo, ...]


@dataclass(frozen=True)
class ProgramInfo:
    id: int
    run_id: int
    source: str
    content_hash: str
    code_hash: str
    parents: tuple[int, ...]
    operator: str
    generation: int
    island: int
    descriptors: dict[str, float]
    meta: dict[str, Any] | None
    state: ProgramState
    created_at: datetime
    latest_evaluation: EvaluationInfo | None


@dataclass(frozen=True)
class CellInfo:
    index: int
    coords: tuple[int, ...]
    program_id: int
    fitness: float


@dataclass(frozen=True)
class GridAxis:
    dim: int
    name: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class GridView:
    """Best fitness per (y, x) over all other dimensions; ``fitness[y][x]`` is None when empty.
    A one-dimensional grid has ``y=None`` and a single row."""

    run_id: int
    x: GridAxis
    y: GridAxis | None
    fitness: tuple[tuple[float | None, ...], ...]
    filled: int
    size: int


@dataclass(frozen=True)
class GenerationStats:
    generation: int
    evaluated: int
    coverage: float
    qd_score: float
    best_fitness: float | None
    extra: dict[str, Any] | None
    recorded_at: datetime


@dataclass(frozen=True)
class LlmCallInfo:
    id: int
    run_id: int | None
    program_id: int | None
    model: str
    purpose: str
    prompt: str
    response: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_s: float
    error: str | None
    created_at: datetime


@dataclass(frozen=True)
class OperatorStats:
    """What one operator produced in a run: its programs, how many were evaluated and how many
    passed, the best fitness among them, and how many cells of the grid they hold now."""

    operator: str
    programs: int
    evaluated: int
    passed: int
    best_fitness: float | None
    elites: int


@dataclass(frozen=True)
class ModelCredit:
    """One model's share of a run's credit events (``llm_credit``, written by the LLM operators):
    its proposals, how many became programs, the credit they earned (the bandits' reward), the
    dollars and tokens they cost."""

    model: str
    proposals: int
    programs: int
    reward: float
    cost_usd: float
    tokens: int


@dataclass(frozen=True)
class EventInfo:
    id: int
    run_id: int | None
    kind: str
    message: str
    data: dict[str, Any] | None
    created_at: datetime


@dataclass(frozen=True)
class ConfirmationInfo:
    """A side-by-side re-timing of ``candidate_id`` against ``rival_id``: the candidate's speedup
    over the rival with its interval, and whether that admitted it."""

    id: int
    run_id: int
    candidate_id: int
    rival_id: int
    speedup: float
    low: float
    high: float
    admitted: bool
    mode: str
    device: str
    shapes: tuple[dict[str, Any], ...]
    created_at: datetime


@dataclass(frozen=True)
class TopEntry:
    """A program ranked by its best passed evaluation."""

    program_id: int
    evaluation_id: int
    fitness: float
    fitness_low: float | None
    fitness_high: float | None
    tflops: float | None
    operator: str
    generation: int
    island: int
    simulated: bool
    device: str


@dataclass(frozen=True)
class CaseBest:
    """The fastest passed, measured program on one benchmark shape, with its timing."""

    label: str
    program_id: int
    evaluation_id: int
    timing: TimingInfo


@dataclass(frozen=True)
class LineageStep:
    """One ancestor on the first-parent chain; ``parents`` lists all of its parents in order."""

    program_id: int
    operator: str
    generation: int
    fitness: float | None
    parents: tuple[int, ...]


@dataclass(frozen=True)
class FailureGroup:
    outcome: Outcome
    stage: Stage
    reason: str
    count: int
    example_program_id: int


@dataclass(frozen=True)
class RunStats:
    run_id: int
    programs: int
    pending: int
    evaluations: int
    by_outcome: dict[str, int]
    cells: int
    grid_size: int | None
    coverage: float | None
    qd_score: float
    best_fitness: float | None
    evaluations_per_hour: float | None


def plain(value: Any, *, properties: tuple[str, ...] = (), finite: bool = False) -> Any:
    """Records as JSON-ready values: dataclasses to dicts (with the computed ``properties`` a
    class has), datetimes to ISO strings; ``finite``: inf and NaN to None (JSON has neither)."""
    def walk(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            out = {f.name: walk(getattr(v, f.name)) for f in dataclasses.fields(v)}
            out.update({name: walk(getattr(v, name)) for name in properties if hasattr(type(v), name)})
            return out
        if isinstance(v, (list, tuple)):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {str(k): walk(x) for k, x in v.items()}
        if isinstance(v, datetime):
            return v.isoformat()
        if finite and isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    return walk(value)
