"""``evolve export``: the best measured kernels of one or more runs as a standalone attention
library (a pip-installable package depending only on torch and triton).

``winners`` picks and vets the kernels from the archive, ``table`` builds the dispatch table,
``package`` writes the package from ``template/``.
"""

from __future__ import annotations

from pathlib import Path

from archive import Archive
from evolve.export.package import check_name, check_out, write_package
from evolve.export.table import DispatchTable, build_table
from evolve.export.winners import measured_winners


def export(archive: Archive, runs: list[int], out: Path, name: str, *, force: bool = False) -> DispatchTable:
    """Write package ``name`` into ``out``; returns the table it holds. Raises ``UserError``
    (or ``ArchiveError`` for an unknown run) before writing anything."""
    check_name(name)
    check_out(out, force)
    table = build_table(measured_winners(archive, list(dict.fromkeys(runs))))
    write_package(table, list(dict.fromkeys(runs)), out, name)
    return table
