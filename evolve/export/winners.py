"""What the archive says each program measured: per benchmark shape of each run, every program's
timing there, with its provenance; refusals for anything not measured on a GPU or not passed.

Only evaluations that passed every harness stage and were timed on a GPU count (simulated
timings come from a cost model and are never exported); a program evaluated more than once
counts with its latest such evaluation, the freshest word on it. A chosen program that failed
any other evaluation of its own is refused rather than skipped: a kernel that was once wrong or
crashed does not belong in a library, and silently exporting the runner-up would hide that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from archive import Archive, EvaluationInfo, TimingInfo
from evolve.errors import UserError
from harness.task import Task, get_task
from harness.verdict import Outcome, Stage, Timing

# The tasks a package is built from, and which pass of attention each one's kernels serve: the
# forward tasks share the entry point forward(q, k, v, causal, sm_scale) (k and v may have fewer
# heads for gqa_fwd), attn_bwd's is forward(q, k, v, o, do, lse, causal, sm_scale) -> dq, dk, dv.
DIRECTIONS = {"mha_fwd": "forward", "gqa_fwd": "forward", "attn_bwd": "backward"}
# Failures that say something about the kernel; ``error`` is the harness's own, retryable one.
_DISQUALIFYING = {Outcome.REJECTED, Outcome.CRASHED, Outcome.TIMEOUT}


@dataclass(frozen=True)
class Shape:
    """A benchmark shape of a forward or a backward task; ``key`` is what a dispatch row is
    chosen for. ``group`` is heads / kv_heads (1 for tasks whose k and v have every head)."""

    direction: str  # "forward" or "backward"
    head_dim: int
    causal: bool
    dtype: str
    seq: int
    batch: int
    heads: int
    kv_heads: int

    @classmethod
    def of(cls, case: dict[str, Any], direction: str) -> Shape:
        heads = int(case["heads"])
        return cls(direction, int(case["head_dim"]), bool(case["causal"]), str(case["dtype"]), int(case["seq"]),
                   int(case["batch"]), heads, int(case.get("kv_heads", heads)))

    @property
    def group(self) -> int:
        return self.heads // self.kv_heads

    @property
    def family(self) -> tuple[str, int, int, bool]:
        """What shares length buckets: the measured lengths of one pass, group, head_dim and mode."""
        return self.direction, self.group, self.head_dim, self.causal

    @property
    def key(self) -> tuple[str, int, int, bool, str, int]:
        return self.direction, self.group, self.head_dim, self.causal, self.dtype, self.seq

    def where(self) -> str:
        """e.g. "forward GQA 32/8 D128 causal"."""
        heads = f" GQA {self.heads}/{self.kv_heads}" if self.group > 1 else ""
        return f"{self.direction}{heads} D{self.head_dim}{' causal' if self.causal else ''}"


@dataclass(frozen=True)
class Figures:
    """One timing of a kernel on one shape, taken in turns with the baseline; ``low`` and
    ``high`` bound the speedup's bootstrap interval (None where the samples were not kept)."""

    ms: float
    tflops: float
    baseline: str
    baseline_tflops: float
    speedup: float
    low: float | None
    high: float | None
    samples: int
    retimed: bool  # by ``evolve export`` itself, rather than archived by the search

    @classmethod
    def archived(cls, t: TimingInfo) -> Figures:
        return cls(t.ms, t.tflops, t.baseline_backend, t.baseline_tflops, t.speedup, t.speedup_low,
                   t.speedup_high, t.samples, retimed=False)

    @classmethod
    def fresh(cls, t: Timing) -> Figures:
        return cls(t.ms, t.tflops, t.baseline_backend, t.baseline_tflops, t.speedup, t.speedup_low,
                   t.speedup_high, len(t.samples), retimed=True)


@dataclass(frozen=True)
class Measurement:
    """A program's timing on one benchmark shape, from its latest measured evaluation."""

    program_id: int
    run_id: int
    task: str
    evaluation_id: int
    device: str
    shape: Shape
    figures: Figures


@dataclass(frozen=True)
class Kernel:
    """A program chosen for at least one shape, and where it came from."""

    program_id: int
    run_id: int
    task: str
    evaluation_id: int
    operator: str
    generation: int
    source: str
    sha256: str
    device: str
    torch_version: str
    triton_version: str
    measured_at: datetime
    fitness: float | None
    checked_dtypes: tuple[str, ...]  # dtypes of the correctness trials it passed

    @property
    def name(self) -> str:
        return f"program_{self.program_id}"

    @property
    def direction(self) -> str:
        return DIRECTIONS[self.task]


def measurements(archive: Archive, runs: list[int]) -> list[Measurement]:
    """Every measured program's timing on every benchmark shape of ``runs``."""
    out: list[Measurement] = []
    for run_id in runs:
        out += _run_measurements(archive, run_id)
    devices = sorted({m.device for m in out})
    if len(devices) > 1:
        raise UserError(f"the runs were measured on different GPUs ({', '.join(devices)}); "
                        "export runs of one GPU model together")
    return out


def _run_measurements(archive: Archive, run_id: int) -> list[Measurement]:
    run = archive.get_run(run_id)
    if run.simulated:
        raise UserError(f"run {run_id} is simulated (a cost model, not GPU timings); "
                        "only runs measured on a GPU can be exported")
    if run.task not in DIRECTIONS:
        raise UserError(f"run {run_id} optimized task {run.task!r}; export builds libraries from runs of "
                        f"{', '.join(DIRECTIONS)} only")
    direction = DIRECTIONS[run.task]
    out = []
    for program_id in archive.program_ids(run_id):
        measured = [e for e in archive.evaluations(program_id) if _measured(e)]
        if measured:
            e = measured[-1]
            out += [Measurement(program_id, run_id, run.task, e.id, e.device, Shape.of(t.shape, direction),
                                Figures.archived(t)) for t in e.timings]
    if not out:
        raise UserError(_why_nothing_measured(archive, run_id))
    return out


def _why_nothing_measured(archive: Archive, run_id: int) -> str:
    stats = archive.stats(run_id)
    if stats.evaluations == 0:
        return f"run {run_id} has no evaluated program to export"
    if not stats.by_outcome.get(Outcome.PASSED.value):
        counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(stats.by_outcome.items()))
        return f"no program of run {run_id} passed every harness stage ({counts})"
    return (f"run {run_id} has passed programs but none with GPU-measured timings "
            "(simulated or untimed evaluations cannot be exported)")


def kernel(archive: Archive, m: Measurement) -> Kernel:
    """The chosen program of ``m`` with its provenance; refused if any evaluation of it failed."""
    program = archive.get_program(m.program_id)
    evaluations = archive.evaluations(m.program_id)
    chosen = next(e for e in evaluations if e.id == m.evaluation_id)
    failed = [e for e in evaluations if e.outcome in _DISQUALIFYING]
    if failed:
        e = failed[0]
        raise UserError(f"program {m.program_id} (run {program.run_id}) is the best on some shape but its "
                        f"evaluation {e.id} ended {e.outcome.value} at stage {e.stage.value} ({e.reason}); "
                        "a kernel that failed a harness stage is not exported")
    return Kernel(
        program_id=m.program_id,
        run_id=program.run_id,
        task=m.task,
        evaluation_id=chosen.id,
        operator=program.operator,
        generation=program.generation,
        source=program.source,
        sha256=program.content_hash,
        device=chosen.device,
        torch_version=chosen.torch_version,
        triton_version=chosen.triton_version,
        measured_at=chosen.created_at,
        fitness=chosen.fitness,
        checked_dtypes=tuple(sorted({str(r.shape["dtype"]) for r in chosen.shape_results
                                     if r.passed and "dtype" in r.shape})),
    )


def run_task(archive: Archive, run_id: int) -> Task:
    """The task a run measured on, with the run's own benchmark shapes where it had them: what
    re-timing its kernels must measure to time the shapes the table holds."""
    run = archive.get_run(run_id)
    return get_task(run.task, run.config.get("shapes") or None)


def _measured(e: EvaluationInfo) -> bool:
    """Passed every stage and was timed on a GPU."""
    return e.passed and e.stage is Stage.DONE and not e.simulated and e.mode == "gpu" and bool(e.timings)
