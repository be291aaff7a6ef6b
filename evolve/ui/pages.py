"""What each page shows, gathered from the archive's public API: one function per page, from an
``Archive`` to plain records and chart markup. The templates only lay them out, and the JSON
endpoints serve the same records."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer, PythonLexer

from archive import (
    Archive,
    CellInfo,
    ConfirmationInfo,
    EvaluationInfo,
    FailureGroup,
    GenerationStats,
    GridView,
    LineageStep,
    LlmCallInfo,
    ProgramInfo,
    RunInfo,
    RunStats,
    RunSummary,
)
from archive.grid import grid_spec
from evolve.ui import charts

RECENT_EVENTS = 15
CREDIT_EVENT = "llm_credit"  # evolve.llm.runtime.CREDIT; not imported: that module pulls in the LLM client
_FORMATTER = HtmlFormatter(cssclass="highlight", linenos="table")
_DIFF_FORMATTER = HtmlFormatter(cssclass="highlight diff")


def highlight_css() -> str:
    return _FORMATTER.get_style_defs(".highlight")


def python_html(source: str) -> Markup:
    """Highlighted source; pygments escapes every token, so candidate text stays text."""
    return Markup(highlight(source, PythonLexer(), _FORMATTER))


def diff_html(diff: str) -> Markup:
    return Markup(highlight(diff, DiffLexer(), _DIFF_FORMATTER))


@dataclass(frozen=True)
class Progress:
    """How far a run is through its budget: candidates and seconds, each against its limit."""

    evaluated: int
    candidates: int | None
    seconds: float
    seconds_limit: float | None

    @property
    def fraction(self) -> float | None:
        parts = [self.evaluated / self.candidates if self.candidates else None,
                 self.seconds / self.seconds_limit if self.seconds_limit else None]
        known = [p for p in parts if p is not None]
        return min(1.0, max(known)) if known else None


@dataclass(frozen=True)
class RunRow:
    summary: RunSummary
    run: RunInfo
    stats: RunStats
    progress: Progress


def _progress(run: RunInfo, stats: RunStats) -> Progress:
    budget = run.budget or {}
    return Progress(stats.evaluations, budget.get("candidates"), run.spend.seconds, budget.get("seconds"))


def runs_page(archive: Archive) -> dict[str, Any]:
    rows = []
    for summary in archive.list_runs():
        run, stats = archive.get_run(summary.id), archive.stats(summary.id)
        rows.append(RunRow(summary, run, stats, _progress(run, stats)))
    rows.reverse()  # newest first
    return {"runs": rows, "live": any(r.run.status.value == "running" for r in rows)}


@dataclass(frozen=True)
class StageFailures:
    stage: str
    count: int
    groups: tuple[FailureGroup, ...]


@dataclass(frozen=True)
class GridPanel:
    view: GridView
    svg: Markup
    dims: tuple[str, ...]
    cells: tuple[CellInfo, ...]  # every filled cell, all dimensions


def grid_panel(archive: Archive, run_id: int, config: dict[str, Any], x: str | None, y: str | None) -> GridPanel | None:
    """The heatmap of the best elite per (x, y) over the other dimensions; None without a grid."""
    spec = grid_spec(config)
    filled = archive.cells(run_id)
    if spec is None and not filled:
        return None
    view = archive.grid(run_id, x=x, y=y)
    rows = len(view.y.labels) if view.y is not None else 1
    best: dict[tuple[int, int], tuple[float, int]] = {}
    for c in filled:
        if view.x.dim >= len(c.coords) or (view.y is not None and view.y.dim >= len(c.coords)):
            continue
        key = (c.coords[view.y.dim] if view.y is not None else 0, c.coords[view.x.dim])
        if key not in best or c.fitness > best[key][0]:
            best[key] = (c.fitness, c.program_id)
    cells = []
    for j in range(rows):
        row = []
        for i, x_label in enumerate(view.x.labels):
            where = f"{view.x.name} {x_label}" + (f", {view.y.name} {view.y.labels[j]}" if view.y else "")
            if (j, i) in best:
                fitness, program = best[(j, i)]
                row.append(charts.HeatCell(fitness, program, f"{where}: {fitness:.3f}x, program {program}"))
            else:
                row.append(charts.HeatCell(None, None, f"{where}: empty"))
        cells.append(row)
    svg = charts.heatmap(view.x.name, view.x.labels, view.y.name if view.y else None,
                         view.y.labels if view.y else [""], cells)
    dims = tuple(d.name for d in spec.dims) if spec is not None else tuple(a.name for a in (view.x, view.y) if a)
    return GridPanel(view, svg, dims, tuple(filled))


def failures_by_stage(groups: list[FailureGroup]) -> list[StageFailures]:
    by_stage: dict[str, list[FailureGroup]] = defaultdict(list)
    for g in groups:
        by_stage[g.stage.value].append(g)
    out = [StageFailures(stage, sum(g.count for g in gs), tuple(gs)) for stage, gs in by_stage.items()]
    return sorted(out, key=lambda s: -s.count)


def run_page(archive: Archive, run_id: int, x: str | None = None, y: str | None = None) -> dict[str, Any]:
    """The run's page. Its queries are independent reads, run side by side (each its own
    transaction: SQLite and the database driver release the GIL while they work), so the page
    takes about as long as its slowest query rather than their sum."""
    run = archive.get_run(run_id)  # first: an unknown run is one error, not one per query
    jobs: dict[str, Callable[[], Any]] = {
        "stats": lambda: archive.stats(run_id),
        "generations": lambda: archive.generation_stats(run_id),
        "operators": lambda: archive.operator_stats(run_id),
        "models": lambda: archive.model_credit(run_id, CREDIT_EVENT),
        "failures": lambda: archive.failures(run_id),
        "top": lambda: archive.top(run_id, 10),
        "events": lambda: archive.events(run_id, last=RECENT_EVENTS),
        "confirmations": lambda: archive.confirmations(run_id),
        "grid": lambda: grid_panel(archive, run_id, run.config, x, y),
    }
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="evolve-ui") as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        got = {name: future.result() for name, future in futures.items()}
    stats: RunStats = got["stats"]
    generations: list[GenerationStats] = got["generations"]
    confirmations: list[ConfirmationInfo] = got["confirmations"]
    best_points = [(g.evaluated, g.best_fitness) for g in generations if g.best_fitness is not None]
    return {
        "run": run,
        "stats": stats,
        "progress": _progress(run, stats),
        "grid": got["grid"],
        "generations": generations,
        "best_chart": charts.line_chart("best fitness (speedup over the baseline)", best_points,
                                        x_label="evaluations"),
        "qd_chart": charts.line_chart("QD-score (sum of the elites' fitness)",
                                      [(g.evaluated, g.qd_score) for g in generations], x_label="evaluations",
                                      y_format="{:.1f}"),
        "operators": got["operators"],
        "models": got["models"],
        "failures": got["failures"],
        "failures_by_stage": failures_by_stage(got["failures"]),
        "top": got["top"],
        "events": got["events"][::-1],
        "confirmations": len(confirmations),
        "admitted": sum(c.admitted for c in confirmations),
        "live": run.status.value == "running",
    }


def run_json(archive: Archive, run_id: int) -> dict[str, Any]:
    page = run_page(archive, run_id)
    grid: GridPanel | None = page["grid"]
    return {
        "run": page["run"],
        "stats": page["stats"],
        "progress": page["progress"],
        "grid": grid.view if grid is not None else None,
        "cells": grid.cells if grid is not None else [],
        "generations": page["generations"],
        "operators": page["operators"],
        "models": page["models"],
        "failures": page["failures"],
        "top": page["top"],
    }


@dataclass(frozen=True)
class ParentDiff:
    parent: int
    diff: str
    html: Markup


def _call_ids(program: ProgramInfo) -> list[int]:
    ids = (program.meta or {}).get("llm_calls") or []
    return [i for i in ids if isinstance(i, int)] if isinstance(ids, list) else []


def _shown_evaluation(evaluations: list[EvaluationInfo]) -> EvaluationInfo | None:
    """The latest evaluation with timings, else the latest."""
    timed = [e for e in evaluations if e.timings]
    return (timed or evaluations or [None])[-1]


_SHORT = (("batch", "B"), ("heads", "H"), ("seq", "N"), ("head_dim", "D"))
_DTYPES = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}


def shape_label(label: str, shape: dict[str, Any]) -> str:
    """``B16 H32 N1024 D64 causal bf16`` for an attention shape; the stored label otherwise."""
    if not all(isinstance(shape.get(k), int) for k, _ in _SHORT):
        return label
    parts = [f"{short}{shape[k]}" for k, short in _SHORT]
    if shape.get("causal"):
        parts.append("causal")
    if isinstance(shape.get("dtype"), str):
        parts.append(_DTYPES.get(shape["dtype"], shape["dtype"]))
    return " ".join(parts)


def shape_bars(evaluation: EvaluationInfo) -> list[charts.ShapeBar]:
    bars = []
    for t in evaluation.timings:
        # The baseline's TFLOP/s is fixed within a check, so the speedup's interval scales to TFLOP/s.
        low = t.baseline_tflops * t.speedup_low if t.speedup_low is not None else None
        high = t.baseline_tflops * t.speedup_high if t.speedup_high is not None else None
        bars.append(charts.ShapeBar(shape_label(t.label, t.shape), t.tflops, low, high, t.baseline_tflops, t.speedup))
    return bars


def program_data(archive: Archive, program_id: int) -> dict[str, Any]:
    program = archive.get_program(program_id)
    evaluations = archive.evaluations(program_id)
    lineage: list[LineageStep] = archive.lineage(program_id)
    confirmations: list[ConfirmationInfo] = archive.confirmations(program_id=program_id)
    calls: list[LlmCallInfo] = archive.llm_calls_by_id(_call_ids(program))
    return {"program": dataclasses.replace(program, latest_evaluation=None), "evaluations": evaluations,
            "lineage": lineage, "confirmations": confirmations, "llm_calls": calls}


def program_page(archive: Archive, program_id: int) -> dict[str, Any]:
    data = program_data(archive, program_id)
    program: ProgramInfo = data["program"]
    shown = _shown_evaluation(data["evaluations"])
    run = archive.get_run(program.run_id)
    diffs = []
    for parent in program.parents:
        text = archive.diff(parent, program_id)
        diffs.append(ParentDiff(parent, text, diff_html(text) if text else Markup("")))
    return {
        **data,
        "run": run,
        "shown": shown,
        "source_html": python_html(program.source),
        "diffs": diffs,
        "shape_chart": charts.shape_chart(shape_bars(shown), modelled=shown.simulated)
        if shown is not None and shown.timings else None,
    }
