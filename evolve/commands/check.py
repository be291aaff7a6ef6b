"""``evolve check FILE``: run the harness's cascade on one candidate and print the verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from evolve.errors import UserError


def check(
    file: Annotated[Path, typer.Argument(help="A candidate: one Python file defining the task's entry point, forward(q, k, v, causal, sm_scale) for mha_fwd and gqa_fwd, forward(q, k, v, o, do, lse, causal, sm_scale) for attn_bwd.")],
    task: Annotated[str, typer.Option(help="The task the candidate implements: mha_fwd, gqa_fwd (grouped-query forward), attn_bwd (attention backward), or one a plug-in registers.")] = "mha_fwd",
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as one JSON object on the last line.")] = False,
    no_timing: Annotated[bool, typer.Option("--no-timing", help="Check correctness only, even on a GPU.")] = False,
    no_isolation: Annotated[bool, typer.Option("--no-isolation", help="Run the candidate without namespaces or privilege drop (trusted code only).")] = False,
) -> None:
    """Check a candidate kernel: static gate, compile and smoke, shape sweep, numerical
    stability, determinism, anti-cheat and (on a GPU) timing against torch's default SDPA (its
    backward, for attn_bwd).

    On a GPU the candidate only records its kernel launches; a separate judge process replays,
    checks and times them. Without a GPU the kernels run in Triton's interpreter on small
    shapes (the untrusted simulation path) and timing is skipped. Exit status: 0 passed,
    1 rejected, 2 usage error.
    """
    from harness.checker import Checker, CheckOptions
    from harness.task import unknown_task

    if (problem := unknown_task(task)) is not None:
        raise UserError(problem)
    try:
        source = file.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {file}: {e.strerror if isinstance(e, OSError) else e}") from None
    checker = Checker(task, CheckOptions(timing=not no_timing, isolate=not no_isolation))
    console = Console(stderr=as_json)
    if checker.platform.mode == "interpreter":
        console.print("[yellow]No CUDA GPU: running kernels in Triton's interpreter on small shapes, on the "
                      "untrusted simulation path (outputs come from the candidate's own process); timing "
                      "skipped.[/yellow]")
    with console.status(f"checking {file.name} ..."):
        verdict = checker.check(source)
    missing = [s for s in verdict.sandbox if s.startswith("missing:")]
    for m in missing:
        console.print(f"[yellow]sandbox degraded: {m.removeprefix('missing: ')}[/yellow]")
    if as_json:
        print(json.dumps(verdict.to_dict()))
    else:
        _print(console, verdict)
    raise typer.Exit(0 if verdict.passed else 1)


def _print(console: Console, verdict) -> None:  # type: ignore[no-untyped-def]
    colour = "green" if verdict.passed else "red"
    console.print(f"[bold {colour}]{verdict.outcome.value.upper()}[/] at stage [bold]{verdict.stage.value}[/]"
                  + (f": {verdict.reason}" if verdict.reason else "")
                  + f"  ({verdict.duration_s:.1f} s, {verdict.device})")
    if verdict.shape_results:
        t = Table("trial", "rel err", "max abs err", "ok", title="correctness")
        for r in verdict.shape_results:
            t.add_row(r.label, _num(r.rel_err), _num(r.max_abs_err), "yes" if r.passed else f"[red]{r.note}[/]")
        console.print(t)
    if verdict.timings:
        t = Table("shape", "ms", "TFLOP/s", "baseline", "baseline TFLOP/s", "speedup", title="timing")
        for x in verdict.timings:
            label = f"N{x.shape['seq']} D{x.shape['head_dim']}{' causal' if x.shape['causal'] else ''}"
            t.add_row(label, f"{x.ms:.3f}", f"{x.tflops:.0f}", x.baseline_backend, f"{x.baseline_tflops:.0f}",
                      f"{x.speedup:.2f}x")
        console.print(t)
        console.print(f"fitness (geometric-mean speedup): [bold]{verdict.fitness:.3f}[/]")


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2e}"


def register(app: typer.Typer) -> None:
    app.command("check")(check)
