"""Rich renderings of archive records for ``evolve archive``: tables, trees and a heatmap.

Pure functions from records to renderables, so the commands stay a thin layer and the
benchmark can time a command's full work without a terminal.
"""

from __future__ import annotations

from datetime import datetime

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from archive import (
    ConfirmationInfo,
    EvaluationInfo,
    FailureGroup,
    GridView,
    LineageStep,
    ProgramInfo,
    RunSummary,
    TopEntry,
)

_OUTCOME_STYLE = {"passed": "green", "rejected": "yellow", "crashed": "red", "timeout": "magenta", "error": "red"}
_STATUS_STYLE = {"running": "cyan", "stopped": "yellow", "finished": "green", "failed": "red"}


def speedup(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}x"


def interval(low: float | None, high: float | None) -> str:
    """A 95% bootstrap interval, or "-" where no samples were kept."""
    return "-" if low is None or high is None else f"[{low:.3f}, {high:.3f}]"


def confirmation(c: ConfirmationInfo | None) -> str:
    if c is None:
        return "-"
    verdict = "admitted" if c.admitted else "not beyond the noise"
    return f"{c.speedup:.3f}x {interval(c.low, c.high)} vs {c.rival_id}: {verdict}"


def number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def scientific(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}"


def when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M")


def outcome(value: str) -> Text:
    return Text(value, style=_OUTCOME_STYLE.get(value, ""))


def runs_table(runs: list[RunSummary]) -> Table:
    table = Table(title="Runs", title_justify="left")
    for name in ("run", "task", "status", "started (UTC)", "programs", "evaluated", "passed", "failed", "best"):
        table.add_column(name, justify="left" if name in ("task", "status", "started (UTC)") else "right")
    for r in runs:
        status = Text(r.status.value + (" (simulated)" if r.simulated else ""), style=_STATUS_STYLE[r.status.value])
        table.add_row(
            str(r.id),
            r.task + (f" ({r.name})" if r.name else ""),
            status,
            when(r.started_at),
            str(r.programs),
            str(r.evaluated),
            str(r.passed),
            str(r.failed),
            speedup(r.best_fitness),
        )
    return table


def top_table(run_id: int, entries: list[TopEntry], confirmed: dict[int, ConfirmationInfo]) -> Table:
    """``confirmed``: each program's latest side-by-side re-timing as a candidate."""
    table = Table(title=f"Best correct kernels of run {run_id}", title_justify="left",
                  caption="speedup over the baseline in its own check, with its 95% interval; re-timed: "
                          "against the elite it would displace, in turns", caption_justify="left")
    for name in ("#", "program", "speedup", "95% interval", "re-timed", "TFLOP/s", "operator", "gen", "island",
                 "device"):
        table.add_column(name, justify="left" if name in ("operator", "device", "re-timed") else "right")
    for rank, e in enumerate(entries, 1):
        device = e.device + (" (simulated)" if e.simulated else "")
        table.add_row(
            str(rank),
            str(e.program_id),
            speedup(e.fitness),
            interval(e.fitness_low, e.fitness_high),
            confirmation(confirmed.get(e.program_id)),
            number(e.tflops),
            e.operator,
            str(e.generation),
            str(e.island),
            device,
        )
    return table


def _evaluation(ev: EvaluationInfo, total: int) -> RenderableType:
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("verdict", Text.assemble(outcome(ev.outcome.value), f" at stage {ev.stage.value}"))
    summary.add_row("reason", ev.reason or "-")
    summary.add_row("speedup", f"{speedup(ev.fitness)} {interval(ev.fitness_low, ev.fitness_high)}")
    summary.add_row("TFLOP/s", number(ev.tflops))
    device = f"{ev.device or '-'} ({ev.mode}{', simulated' if ev.simulated else ''})"
    summary.add_row("device", device)
    summary.add_row("versions", f"torch {ev.torch_version or '-'}, triton {ev.triton_version or '-'}")
    summary.add_row("duration", f"{ev.duration_s:.1f} s")
    summary.add_row("evaluation", f"{ev.id} (key {ev.key}), latest of {total}")
    parts: list[RenderableType] = [summary]
    if ev.shape_results:
        shapes = Table(title="Per-shape results", title_justify="left")
        for name in ("shape", "rel err", "max abs err", "ok", "note"):
            shapes.add_column(name, justify="right" if "err" in name else "left")
        for s in ev.shape_results:
            shapes.add_row(
                s.label,
                scientific(s.rel_err),
                scientific(s.max_abs_err),
                Text("yes", style="green") if s.passed else Text("no", style="red"),
                s.note,
            )
        parts.append(shapes)
    if ev.timings:
        timings = Table(title="Timings", title_justify="left")
        for name in ("shape", "ms", "baseline ms", "baseline", "TFLOP/s", "speedup", "95% interval", "calls"):
            timings.add_column(name, justify="left" if name in ("shape", "baseline") else "right")
        for t in ev.timings:
            timings.add_row(
                t.label,
                f"{t.ms:.4f}",
                f"{t.baseline_ms:.4f}",
                t.baseline_backend,
                number(t.tflops),
                speedup(t.speedup),
                interval(t.speedup_low, t.speedup_high),
                str(t.samples),
            )
        parts.append(timings)
    return Group(*parts)


def _confirmations(program_id: int, found: list[ConfirmationInfo]) -> RenderableType:
    table = Table(title="Side-by-side re-timings", title_justify="left")
    for name in ("candidate", "rival", "speedup", "95% interval", "admitted", "device", "when (UTC)"):
        table.add_column(name, justify="left" if name in ("device", "when (UTC)", "admitted") else "right")

    def mark(pid: int) -> str:
        return f"{pid} (this)" if pid == program_id else str(pid)

    for c in found:
        table.add_row(mark(c.candidate_id), mark(c.rival_id), speedup(c.speedup), interval(c.low, c.high),
                      Text("yes", style="green") if c.admitted else Text("no", style="yellow"),
                      f"{c.device} ({c.mode})", when(c.created_at))
    return table


def program_view(program: ProgramInfo, n_evaluations: int,
                 confirmations: list[ConfirmationInfo] | None = None) -> RenderableType:
    header = Table.grid(padding=(0, 2))
    header.add_column(style="bold")
    header.add_column()
    header.add_row("program", f"{program.id} in run {program.run_id}")
    header.add_row("operator", f"{program.operator}, generation {program.generation}, island {program.island}")
    header.add_row("parents", ", ".join(map(str, program.parents)) or "none")
    if program.descriptors:
        header.add_row("descriptors", ", ".join(f"{k}={v:g}" for k, v in sorted(program.descriptors.items())))
    header.add_row("state", program.state.value)
    header.add_row("code hash", program.code_hash[:16])
    header.add_row("created", when(program.created_at) + " UTC")
    source = Syntax(program.source, "python", line_numbers=True, word_wrap=True)
    latest: RenderableType = (
        _evaluation(program.latest_evaluation, n_evaluations)
        if program.latest_evaluation is not None
        else Text("Not evaluated yet.", style="dim")
    )
    parts: list[RenderableType] = [header, Text(""), source, Text(""), latest]
    if confirmations:
        parts += [Text(""), _confirmations(program.id, confirmations)]
    return Group(*parts)


def diff_view(text: str) -> RenderableType:
    return Syntax(text, "diff")


def lineage_tree(steps: list[LineageStep]) -> Tree:
    """The first-parent chain from the root down to the program; other parents are named."""

    def label(step: LineageStep) -> Text:
        text = Text.assemble(
            (f"program {step.program_id}", "bold"),
            f"  {step.operator}, gen {step.generation}  ",
            (speedup(step.fitness), "green" if step.fitness is not None else "dim"),
        )
        if len(step.parents) > 1:
            text.append(f"  (also from {', '.join(map(str, step.parents[1:]))})", style="dim")
        return text

    chain = list(reversed(steps))
    tree = Tree(label(chain[0]))
    node = tree
    for step in chain[1:]:
        node = node.add(label(step))
    return tree


def _heat(value: float, lo: float, hi: float) -> str:
    """Red for the weakest filled cell to green for the best."""
    t = 0.5 if hi == lo else (value - lo) / (hi - lo)
    red, green = int(200 * (1 - t)) + 40, int(170 * t) + 60
    return f"black on rgb({red},{green},60)"


def grid_table(view: GridView) -> Table:
    values = [v for row in view.fitness for v in row if v is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 0.0)
    table = Table(
        title=f"Run {view.run_id}: best speedup, {view.filled}/{view.size} cells filled",
        title_justify="left",
        caption="max over the other dimensions; · empty",
        caption_justify="left",
    )
    table.add_column(f"{view.y.name} \\ {view.x.name}" if view.y is not None else "", style="bold")
    for label in view.x.labels:
        table.add_column(label, justify="right")
    row_labels = view.y.labels if view.y is not None else ("",)
    for label, row in zip(row_labels, view.fitness):
        cells: list[Text] = [
            Text("·", style="dim") if v is None else Text(f"{v:.2f}", style=_heat(v, lo, hi)) for v in row
        ]
        table.add_row(label, *cells)
    return table


def failures_table(run_id: int, groups: list[FailureGroup]) -> Table:
    table = Table(title=f"Failures of run {run_id}", title_justify="left")
    for name in ("count", "outcome", "stage", "reason", "example"):
        table.add_column(name, justify="right" if name in ("count", "example") else "left")
    for g in groups:
        table.add_row(str(g.count), outcome(g.outcome.value), g.stage.value, g.reason, str(g.example_program_id))
    return table
