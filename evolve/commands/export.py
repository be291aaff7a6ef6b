"""``evolve export``: the best measured kernels of runs as an installable attention library."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evolve.commands.archive import Db


def export(
    runs: Annotated[list[int], typer.Argument(metavar="RUN", help="Runs whose best measured kernels to export.",
                                              show_default=False)],
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="Directory to write the package into (new or empty).",
                                      show_default=False)],
    name: Annotated[str, typer.Option("--name", metavar="PACKAGE", help="Import name of the package.")] = "evolved_attention",
    force: Annotated[bool, typer.Option("--force", help="Replace DIR if it holds an earlier export.")] = False,
    db: Db = None,
) -> None:
    """Write the kernels measured fastest per head_dim, causal flag, dtype and sequence-length
    bucket as a standalone package (torch + triton only) with a drop-in
    scaled_dot_product_attention, its dispatch table, provenance, README and tests.

    Refuses simulated runs, kernels that failed a harness stage and kernels without GPU timings.
    """
    from archive import Archive
    from evolve.export import export as export_package

    with Archive.open(db, create=False) as archive:
        table = export_package(archive, runs, out, name, force=force)
    kernels = table.kernels
    typer.echo(f"Wrote {name} to {out}: {len(kernels)} kernel{'s' if len(kernels) != 1 else ''} "
               f"(programs {', '.join(str(k.program_id) for k in kernels)}) measured on {kernels[0].device}, "
               f"{len(table.rows)} dispatch rows over {len(table.buckets)} length buckets.")
    typer.echo(f"Install it with `pip install {out}`; test it with `python -m pytest {out}/tests` "
               f"(on a CPU: TRITON_INTERPRET=1).")


def register(app: typer.Typer) -> None:
    app.command()(export)
