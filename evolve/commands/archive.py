"""``evolve archive ...``: browse what searches found, import a hand-written kernel, upgrade.

Every command takes ``--db`` (default: ``$EVOLVE_DB``, else ``./evolve.db``) and ``--json``
(the records as JSON on stdout, for scripts). Browsing never creates an archive: a wrong
path is reported instead of leaving an empty database behind.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, RenderableType

from archive import Archive, ArchiveError, upgrade_archive
from archive.engine import display_url, resolve_url
from archive.records import plain
from evolve.commands import archive_views as views

archive_app = typer.Typer(
    name="archive",
    help="Browse the archive: runs, best kernels, programs, lineage, the MAP-Elites grid, failures.",
    no_args_is_help=True,
)

Db = Annotated[
    str | None,
    typer.Option("--db", metavar="URL", help="Archive URL or SQLite file [default: $EVOLVE_DB, else ./evolve.db]."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout.")]
RunId = Annotated[int, typer.Argument(metavar="RUN", help="Run id (see `evolve archive runs`).", show_default=False)]
ProgramId = Annotated[int, typer.Argument(metavar="PROGRAM", help="Program id.", show_default=False)]


def _emit(as_json: bool, data: Any, renderable: RenderableType | None = None) -> None:
    """Print ``data`` as JSON, or the rich ``renderable`` made for people."""
    if as_json:
        typer.echo(json.dumps(plain(data), indent=2))
    elif renderable is not None:
        Console().print(renderable)


def _open(db: str | None) -> Archive:
    return Archive.open(db, create=False)


@archive_app.command()
def runs(db: Db = None, as_json: AsJson = False) -> None:
    """List runs with their status, counts and best speedup."""
    with _open(db) as archive:
        summaries = archive.list_runs()
    if not summaries and not as_json:
        typer.echo("No runs yet.")
        return
    _emit(as_json, summaries, views.runs_table(summaries))


@archive_app.command()
def top(
    run: RunId,
    n: Annotated[int, typer.Option("-n", "--count", min=1, help="How many kernels.")] = 10,
    measured: Annotated[bool, typer.Option("--measured", help="Only evaluations timed on a GPU.")] = False,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """The best correct kernels of a run: speedup over the baseline with its 95% interval, the
    latest side-by-side re-timing against the elite each would displace, and TFLOP/s."""
    with _open(db) as archive:
        entries = archive.top(run, n, measured_only=measured)
        confirmed = {c.candidate_id: c for c in archive.confirmations(run)}  # oldest first: the latest wins
    if not entries and not as_json:
        typer.echo(f"Run {run} has no passed program yet.")
        return
    _emit(as_json, entries, views.top_table(run, entries, confirmed))


@archive_app.command()
def show(program: ProgramId, db: Db = None, as_json: AsJson = False) -> None:
    """A program: source, latest verdict, per-shape results and timings with their 95% intervals,
    parents, and the side-by-side re-timings it took part in."""
    with _open(db) as archive:
        info = archive.get_program(program)
        evaluations = archive.evaluations(program)
        confirmations = archive.confirmations(program_id=program)
    data = {"program": dataclasses.replace(info, latest_evaluation=None), "evaluations": evaluations,
            "confirmations": confirmations}
    _emit(as_json, data, views.program_view(info, len(evaluations), confirmations))


@archive_app.command()
def diff(
    a: Annotated[int, typer.Argument(metavar="A", help="Program id.", show_default=False)],
    b: Annotated[int, typer.Argument(metavar="B", help="Program id.", show_default=False)],
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """Unified diff of two programs' sources."""
    with _open(db) as archive:
        text = archive.diff(a, b)
    if not text and not as_json:
        typer.echo(f"Programs {a} and {b} have the same source.")
        return
    _emit(as_json, {"a": a, "b": b, "diff": text}, views.diff_view(text))


@archive_app.command()
def lineage(program: ProgramId, db: Db = None, as_json: AsJson = False) -> None:
    """A program's ancestry along first parents, with the operator and speedup at each step."""
    with _open(db) as archive:
        steps = archive.lineage(program)
    _emit(as_json, steps, views.lineage_tree(steps))


@archive_app.command()
def grid(
    run: RunId,
    x: Annotated[str | None, typer.Option("--x", metavar="DIM", help="Dimension across [default: the first].")] = None,
    y: Annotated[str | None, typer.Option("--y", metavar="DIM", help="Dimension down [default: the next].")] = None,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """The MAP-Elites grid as a heatmap: best speedup per (x, y) over the other dimensions."""
    with _open(db) as archive:
        view = archive.grid(run, x=x, y=y)
    _emit(as_json, view, views.grid_table(view))


@archive_app.command()
def failures(run: RunId, db: Db = None, as_json: AsJson = False) -> None:
    """Evaluations that did not pass, grouped by outcome, stage and reason."""
    with _open(db) as archive:
        groups = archive.failures(run)
    if not groups and not as_json:
        typer.echo(f"Run {run} has no failed evaluation.")
        return
    _emit(as_json, groups, views.failures_table(run, groups))


@archive_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A kernel source file.", show_default=False)],
    run: Annotated[
        int | None, typer.Option("--run", metavar="RUN", help="Add to this run [default: a new one].")
    ] = None,
    task: Annotated[str, typer.Option("--task", help="Task of the new run, when no --run is given.")] = "mha_fwd",
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """Add a hand-written kernel (a seed, say) as a pending program, to be evaluated later."""
    try:
        source = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArchiveError(f"no file {file}") from None
    except (IsADirectoryError, UnicodeDecodeError):
        raise ArchiveError(f"{file} is not a text file") from None
    if run is None:
        from harness.task import unknown_task

        if (problem := unknown_task(task)) is not None:
            raise ArchiveError(problem)
    # Importing into a new run is how a new archive may start; no other command creates one.
    with Archive.open(db, create=run is None) as archive:
        run_created = run is None
        if run is None:
            run = archive.create_run(task, {}, simulated=False, name=f"import {file.name}")
            archive.set_run_status(run, "stopped")
        program, created = archive.add_program(run, source, operator="import", meta={"file": str(file)})
        if created:
            archive.add_event(run, "import", f"imported {file} as program {program}", {"program_id": program})
    data = {"run_id": run, "program_id": program, "created": created, "run_created": run_created}
    if as_json:
        _emit(True, data)
        return
    if run_created:
        typer.echo(f"Created run {run} for task {task}.")
    if created:
        typer.echo(f"Imported {file} as program {program} of run {run}; it will be evaluated when the run resumes.")
    else:
        typer.echo(f"{file} is already program {program} of run {run} (same code); nothing added.")


@archive_app.command()
def upgrade(db: Db = None, as_json: AsJson = False) -> None:
    """Migrate an existing archive to this version's schema (opening one also does it)."""
    change = upgrade_archive(db)
    where = display_url(resolve_url(db))
    if as_json:
        _emit(True, {"archive": where, "from": change.before, "to": change.after})
    elif change.before == change.after:
        typer.echo(f"The archive at {where} is already at schema {change.after}.")
    else:
        typer.echo(f"Upgraded the archive at {where} from schema {change.before} to {change.after}.")


def register(app: typer.Typer) -> None:
    app.add_typer(archive_app, name="archive")
