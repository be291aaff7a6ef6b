"""``evolve export``: the best measured kernels of one or more runs as a standalone attention
library (a pip-installable package depending only on torch and triton) that is never slower
than torch's default SDPA on the shapes it was measured on.

``winners`` reads what every program measured per shape from the archive, ``choice`` picks one
program per shape and decides whether its bucket runs it or the default, ``retime`` re-checks
the chosen programs on this GPU first, ``table`` builds the dispatch table and ``package``
writes the package from ``template/``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from archive import Archive
from evolve.errors import UserError
from evolve.export.choice import choose, surety
from evolve.export.package import check_name, check_out, write_package
from evolve.export.retime import Judge, require_gpu, retime
from evolve.export.table import DispatchTable, build_table
from evolve.export.winners import kernel, measurements


def export(archive: Archive, runs: list[int], out: Path, name: str, *, judge: Judge | None,
           force: bool = False, progress: Callable[[str], None] = lambda _: None) -> DispatchTable:
    """Write package ``name`` into ``out``; returns the table it holds. ``judge`` re-times the
    chosen kernels (None: route by the archived intervals). Raises ``UserError`` (or
    ``ArchiveError`` for an unknown run) before writing anything."""
    check_name(name)
    check_out(out, force)
    runs = list(dict.fromkeys(runs))
    chosen = choose(measurements(archive, runs))
    kernels = {p: kernel(archive, m) for p, m in {m.program_id: m for m in chosen}.items()}
    retiming = None
    if judge is not None:
        require_gpu(judge, chosen[0].device)
        retiming = retime([kernels[p] for p in sorted(kernels)], judge, progress)
    table = build_table(chosen, kernels, retiming)
    if not table.kernels:
        raise UserError(_nothing_faster(table))
    write_package(table, runs, out, name)
    return table


def _nothing_faster(table: DispatchTable) -> str:
    best = max(table.timed_rows, key=lambda r: surety(r.figures))
    hint = ""
    if all(r.figures.low is None for r in table.timed_rows):
        hint = ("; the archive keeps no intervals for these runs (their timed calls were not kept), so export "
                "them on a GPU, which re-times them")
    return (f"no chosen kernel is confirmed faster than torch's default SDPA on any benchmark shape, so the "
            f"package would only call torch's SDPA (best: {best.summary()}){hint}")
