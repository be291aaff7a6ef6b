"""``evolve export``: the best measured kernels of runs as an installable attention library."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evolve.commands.archive import Db


def export(
    runs: Annotated[list[int], typer.Argument(metavar="RUN", help="Runs whose best measured kernels to export "
                                              "(mha_fwd, gqa_fwd, and attn_bwd next to a forward run).",
                                              show_default=False)],
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="Directory to write the package into (new or empty).",
                                      show_default=False)],
    name: Annotated[str, typer.Option("--name", metavar="PACKAGE", help="Import name of the package.")] = "evolved_attention",
    force: Annotated[bool, typer.Option("--force", help="Replace DIR if it holds an earlier export.")] = False,
    no_retime: Annotated[bool, typer.Option(
        "--no-retime", help="Route by the intervals the search archived instead of re-timing the chosen kernels "
                            "on this GPU (for machines without one); the package says it was not re-timed.")] = False,
    db: Db = None,
) -> None:
    """Write, per pass (forward, or backward from attn_bwd runs), group size (query heads per
    key/value head), head_dim, causal flag, dtype and sequence-length bucket, the kernel measured
    surest on that bucket's benchmark shape as a standalone package (torch + triton only) with a
    drop-in scaled_dot_product_attention, its dispatch table, provenance, README and tests.

    Before writing, every chosen kernel is checked again by the harness of its run's task on this
    GPU and timed in turns with torch's default SDPA (its backward, for attn_bwd); a bucket whose
    kernel is not confirmed faster (its interval's lower end above 1.01) calls torch's default
    SDPA (for the backward: calls that need gradients run it, forward and backward). Refuses simulated runs, kernels that failed a harness
    stage and kernels without GPU timings.
    """
    from archive import Archive
    from evolve.export import export as export_package
    from harness.checker import Checker

    with Archive.open(db, create=False) as archive:
        table = export_package(archive, runs, out, name, judge_for=None if no_retime else Checker, force=force,
                               progress=lambda line: typer.echo(line, err=True))
    for row in table.timed_rows:
        typer.echo(f"  {row.summary()}")
    kernels = table.kernels
    ours = sum(1 for r in table.timed_rows if r.runs)
    typer.echo(f"Wrote {name} to {out}: {ours} of {len(table.timed_rows)} measured shapes run "
               f"{len(kernels)} kernel{'s' if len(kernels) != 1 else ''} "
               f"(programs {', '.join(str(k.program_id) for k in kernels)}), the others torch's default SDPA "
               "(backward shapes: forward and backward, for calls that need gradients); "
               + ("re-timed on this GPU." if table.retiming else
                  "routed by the archived intervals, not re-timed (--no-retime)."))
    typer.echo(f"Install it with `pip install {out}`; test it with `python -m pytest {out}/tests` "
               f"(on a CPU: TRITON_INTERPRET=1).")


def register(app: typer.Typer) -> None:
    app.command()(export)
