"""What the prompts say about programs, read from the archive: a program's source and its
evaluation (stage reached, reason, per-shape errors, TFLOP/s per shape against the peak and the
baseline), its lineage (what each step changed and what it gained), and other elites as
differences from the parent."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from archive import Archive, EvaluationInfo, ProgramInfo
from harness.task import Task


@dataclass(frozen=True)
class TimingView:
    shape: str
    ms: float
    tflops: float
    peak_pct: float
    baseline: str
    baseline_tflops: float
    speedup: float


@dataclass(frozen=True)
class TrialView:
    label: str
    rel_err: float | None
    max_abs_err: float | None
    passed: bool
    note: str


@dataclass(frozen=True)
class ProgramView:
    id: int
    operator: str
    parents: tuple[int, ...]
    generation: int
    change: str  # what this program changed relative to its parent, as its operator described it
    source: str
    evaluated: bool
    outcome: str
    stage: str
    reason: str
    simulated: bool
    device: str
    fitness: float | None
    mean_tflops: float | None
    timings: tuple[TimingView, ...]
    trials: int
    failed_trials: tuple[TrialView, ...]
    worst_rel_err: float | None
    log_tail: str


@dataclass(frozen=True)
class StepView:
    id: int
    operator: str
    parents: tuple[int, ...]
    change: str
    fitness: float | None
    parent_fitness: float | None

    @property
    def gain(self) -> float | None:
        if self.fitness is None or self.parent_fitness is None:
            return None
        return self.fitness - self.parent_fitness


@dataclass(frozen=True)
class InspirationView:
    program: ProgramView
    diff: str | None  # against the parent; None when the whole source reads better


def short_label(c: dict[str, Any]) -> str:
    """``B16 H32 N1024 D64 causal``: a benchmark shape (they share one dtype)."""
    return f"B{c['batch']} H{c['heads']} N{c['seq']} D{c['head_dim']}" + (" causal" if c.get("causal") else "")


def describe_change(operator: str, parents: tuple[int, ...], meta: dict[str, Any] | None) -> str:
    meta = meta or {}
    text = meta.get("summary") or meta.get("changes") or ""
    if operator == "seed":
        return "the hand-written seed kernel"
    if len(parents) > 1 and not text:
        return f"{operator} of programs {', '.join(map(str, parents))}"
    return str(text) or operator


class Views:
    def __init__(self, archive: Archive, task: Task, *, peak_tflops: float, log_lines: int = 30) -> None:
        self.archive, self.task, self.peak, self.log_lines = archive, task, peak_tflops, log_lines

    def program(self, pid: int) -> ProgramView:
        info = self.archive.get_program(pid)
        return self._view(info, info.latest_evaluation)

    def _view(self, info: ProgramInfo, e: EvaluationInfo | None) -> ProgramView:
        timings: tuple[TimingView, ...] = ()
        failed: tuple[TrialView, ...] = ()
        worst = None
        if e is not None:
            timings = tuple(TimingView(short_label(t.shape), t.ms, t.tflops, 100 * t.tflops / self.peak,
                                       t.baseline_backend, t.baseline_tflops, t.speedup) for t in e.timings)
            failed = tuple(TrialView(r.label, r.rel_err, r.max_abs_err, r.passed, r.note)
                           for r in e.shape_results if not r.passed)
            errs = [r.rel_err for r in e.shape_results if r.passed and r.rel_err is not None]
            worst = max(errs) if errs else None
        log_tail = ""
        if e is not None and not e.passed and e.log:
            log_tail = "\n".join(e.log.strip().splitlines()[-self.log_lines:])
        return ProgramView(
            id=info.id, operator=info.operator, parents=tuple(info.parents), generation=info.generation,
            change=describe_change(info.operator, tuple(info.parents), info.meta), source=info.source,
            evaluated=e is not None, outcome=e.outcome.value if e else "pending", stage=e.stage.value if e else "",
            reason=e.reason if e else "", simulated=bool(e and e.simulated), device=e.device if e else "",
            fitness=e.fitness if e else None, mean_tflops=e.tflops if e else None, timings=timings,
            trials=len(e.shape_results) if e else 0, failed_trials=failed, worst_rel_err=worst, log_tail=log_tail)

    def lineage(self, pid: int, depth: int) -> list[StepView]:
        """The program and its first-parent ancestors, oldest first, at most ``depth`` steps."""
        chain = self.archive.lineage(pid)  # the program, its first parent, that one's first parent...
        out = []
        for i, s in reversed(list(enumerate(chain[:depth]))):
            info = self.archive.get_program(s.program_id)
            parent_fit = chain[i + 1].fitness if i + 1 < len(chain) else None
            out.append(StepView(s.program_id, s.operator, tuple(s.parents),
                                describe_change(s.operator, tuple(s.parents), info.meta), s.fitness, parent_fit))
        return out

    def inspiration(self, pid: int, parent_source: str, max_diff_lines: int = 80) -> InspirationView:
        view = self.program(pid)
        diff = list(difflib.unified_diff(parent_source.splitlines(), view.source.splitlines(),
                                         "current program", f"program {pid}", n=2, lineterm=""))
        if not diff or len(diff) > max_diff_lines:
            return InspirationView(view, None)
        return InspirationView(view, "\n".join(diff))
