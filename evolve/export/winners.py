"""The kernels worth exporting: for each benchmark shape of each run, the program measured
fastest there, with its provenance; refusals for anything not measured on a GPU or not passed.

Only evaluations that passed every harness stage and were timed on a GPU count (simulated
timings come from a cost model and are never exported). A winning program that failed any
other evaluation of its own is refused rather than skipped: a kernel that was once wrong or
crashed does not belong in a library, and silently exporting the runner-up would hide that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from archive import Archive, EvaluationInfo
from evolve.errors import UserError
from harness.verdict import Outcome, Stage

TASK = "mha_fwd"
# Failures that say something about the kernel; ``error`` is the harness's own, retryable one.
_DISQUALIFYING = {Outcome.REJECTED, Outcome.CRASHED, Outcome.TIMEOUT}


@dataclass(frozen=True)
class Kernel:
    """A program chosen for at least one shape, and where it came from."""

    program_id: int
    run_id: int
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


@dataclass(frozen=True)
class Measurement:
    """A kernel's timing on one benchmark shape, beside the baseline timed in the same worker."""

    kernel: Kernel
    head_dim: int
    causal: bool
    dtype: str
    seq: int
    batch: int
    heads: int
    ms: float
    tflops: float
    baseline: str
    baseline_tflops: float
    speedup: float


def measured_winners(archive: Archive, runs: list[int]) -> list[Measurement]:
    """The fastest measured kernel per benchmark shape of each run (several runs: one entry per
    run and shape; the table picks among them)."""
    out: list[Measurement] = []
    for run_id in runs:
        out += _run_winners(archive, run_id)
    devices = sorted({m.kernel.device for m in out})
    if len(devices) > 1:
        raise UserError(f"the runs were measured on different GPUs ({', '.join(devices)}); "
                        "export runs of one GPU model together")
    return out


def _run_winners(archive: Archive, run_id: int) -> list[Measurement]:
    run = archive.get_run(run_id)
    if run.simulated:
        raise UserError(f"run {run_id} is simulated (a cost model, not GPU timings); "
                        "only runs measured on a GPU can be exported")
    if run.task != TASK:
        raise UserError(f"run {run_id} optimized task {run.task!r}; export builds {TASK} libraries only")
    bests = archive.best_per_case(run_id)
    if not bests:
        raise UserError(_why_nothing_measured(archive, run_id))
    kernels: dict[int, Kernel] = {}
    out = []
    for best in bests:
        if best.program_id not in kernels:
            kernels[best.program_id] = _kernel(archive, best.program_id, best.evaluation_id)
        t = best.timing
        s = t.shape
        out.append(Measurement(kernels[best.program_id], int(s["head_dim"]), bool(s["causal"]), str(s["dtype"]),
                               int(s["seq"]), int(s["batch"]), int(s["heads"]), t.ms, t.tflops,
                               t.baseline_backend, t.baseline_tflops, t.speedup))
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


def _kernel(archive: Archive, program_id: int, evaluation_id: int) -> Kernel:
    program = archive.get_program(program_id)
    evaluations = archive.evaluations(program_id)
    chosen = next(e for e in evaluations if e.id == evaluation_id)
    problem = _not_exportable(chosen)
    if problem:
        raise UserError(f"program {program_id} (run {program.run_id}) cannot be exported: evaluation "
                        f"{evaluation_id} {problem}")
    failed = [e for e in evaluations if e.outcome in _DISQUALIFYING]
    if failed:
        e = failed[0]
        raise UserError(f"program {program_id} (run {program.run_id}) is the fastest on some shape but its "
                        f"evaluation {e.id} ended {e.outcome.value} at stage {e.stage.value} ({e.reason}); "
                        "a kernel that failed a harness stage is not exported")
    return Kernel(
        program_id=program_id,
        run_id=program.run_id,
        evaluation_id=evaluation_id,
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


def _not_exportable(e: EvaluationInfo) -> str | None:
    if not e.passed or e.stage is not Stage.DONE:
        return f"stopped at stage {e.stage.value} ({e.outcome.value})"
    if e.simulated or e.mode != "gpu":
        return "was not measured on a GPU"
    if not e.timings:
        return "has no timings"
    return None
