"""``evolve export``: the best measured kernels of one or more runs as a standalone attention
library (a pip-installable package depending only on torch and triton) that is never slower
than torch's default SDPA on the shapes it was measured on.

Runs of the forward tasks (``mha_fwd``, ``gqa_fwd``: the forward table, keyed by the group
size too) and of ``attn_bwd`` (the backward table) go into one package; backward kernels serve
the gradients of calls the forward table covers, so an export needs at least one forward run.

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
from evolve.export.retime import Judge, merged, require_gpu, retime
from evolve.export.table import DispatchTable, build_table
from evolve.export.winners import DIRECTIONS, Kernel, kernel, measurements, run_task
from harness.task import Task


def export(archive: Archive, runs: list[int], out: Path, name: str, *, judge_for: Callable[[Task], Judge] | None,
           force: bool = False, progress: Callable[[str], None] = lambda _: None) -> DispatchTable:
    """Write package ``name`` into ``out``; returns the table it holds. ``judge_for(task)`` makes
    the judge that re-times the chosen kernels of runs of ``task`` (with the run's own shapes;
    ``harness.checker.Checker`` itself); None: route by the archived intervals. Raises
    ``UserError`` (or ``ArchiveError`` for an unknown run) before writing anything."""
    check_name(name)
    check_out(out, force)
    runs = list(dict.fromkeys(runs))
    found = measurements(archive, runs)
    if all(DIRECTIONS[m.task] == "backward" for m in found):
        raise UserError(f"run {', '.join(map(str, runs))} measured backward kernels only (attn_bwd): they serve the "
                        "gradients of calls the package's forward covers, so export them together with an mha_fwd "
                        "or gqa_fwd run")
    chosen = choose(found)
    kernels = {p: kernel(archive, m) for p, m in {m.program_id: m for m in chosen}.items()}
    retiming = None
    if judge_for is not None:
        retiming = merged([retime(group, judge, progress)
                           for group, judge in _judges(archive, [kernels[p] for p in sorted(kernels)], judge_for,
                                                       chosen[0].device)])
    table = build_table(chosen, kernels, retiming)
    if not table.kernels:
        raise UserError(_nothing_faster(table))
    write_package(table, runs, out, name)
    return table


def _judges(archive: Archive, kernels: list[Kernel], judge_for: Callable[[Task], Judge],
            measured_on: str) -> list[tuple[list[Kernel], Judge]]:
    """The kernels grouped by what measured them (a task, with a run's own shapes where it had
    them), each group with its judge; every judge must time on the measured GPU model."""
    groups: dict[tuple[str, str], tuple[Task, list[Kernel]]] = {}
    for k in kernels:
        task = run_task(archive, k.run_id)
        groups.setdefault((task.name, repr(task.benchmark_cases())), (task, []))[1].append(k)
    out = []
    for task, members in groups.values():
        judge = judge_for(task)
        require_gpu(judge, measured_on)
        out.append((members, judge))
    return out


def _nothing_faster(table: DispatchTable) -> str:
    best = max(table.timed_rows, key=lambda r: surety(r.figures))
    hint = ""
    if all(r.figures.low is None for r in table.timed_rows):
        hint = ("; the archive keeps no intervals for these runs (their timed calls were not kept), so export "
                "them on a GPU, which re-times them")
    return (f"no chosen kernel is confirmed faster than torch's default SDPA on any benchmark shape, so the "
            f"package would only call torch's SDPA (best: {best.summary()}){hint}")
