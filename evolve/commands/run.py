"""``evolve run`` (the main job: a MAP-Elites search) and ``evolve status``."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from evolve.errors import UserError

console = Console(stderr=True)


def run(
    task: Annotated[str | None, typer.Option(help="What to optimize (default: mha_fwd).")] = None,
    budget: Annotated[str | None, typer.Option(help="When to stop: candidates (200), wall time (30m, 2h) or both (200,2h). Required for a new run.")] = None,
    db: Annotated[str | None, typer.Option(help="Archive database URL or SQLite file (default: $EVOLVE_DB or ./evolve.db).")] = None,
    ray_address: Annotated[str | None, typer.Option("--ray-address", envvar="RAY_ADDRESS", help="Join this Ray cluster instead of starting a local one.")] = None,
    workers: Annotated[int | None, typer.Option(help="Evaluation workers (default: one per GPU; simulated: one per CPU).")] = None,
    seed_kernel: Annotated[list[Path] | None, typer.Option(help="A kernel to start from (default: the task's seed); repeat for several lineages, each starting its own islands.")] = None,
    shapes: Annotated[Path | None, typer.Option(help="A TOML file of [[shapes]] tables (batch, heads, seq, head_dim, causal; kv_heads for gqa_fwd): fitness is measured on these instead of the task's benchmark.")] = None,
    resume: Annotated[int | None, typer.Option(help="Continue run RUN_ID where it stopped, with its configuration.")] = None,
    config: Annotated[Path | None, typer.Option(help="A TOML file with any RunConfig field (see README).")] = None,
    simulate: Annotated[bool, typer.Option("--simulate", help="No GPU: interpreter correctness checks and a cost model instead of timing; marked simulated in the archive. With evaluation.fixed_eval_s in --config, no interpreter either: each check or duel takes that many seconds.")] = False,
    random_seed: Annotated[int | None, typer.Option(help="Seed of the search's own random choices.")] = None,
    model: Annotated[list[str] | None, typer.Option("--model", help="An LLM for the LLM operators, NAME or NAME=WEIGHT; repeat for an ensemble. Endpoint and key: $OPENAI_BASE_URL, $OPENAI_API_KEY.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live display: a summary line every 30 s.")] = False,
    log_file: Annotated[Path | None, typer.Option(help="Also write progress lines and events to this file.")] = None,
) -> None:
    """Search for faster kernels: MAP-Elites over Triton kernels, judged by the harness on
    GPU workers through Ray, everything stored in the archive.

    Ctrl-C stops cleanly (a second Ctrl-C at once); a killed run continues with --resume.
    """
    from archive import Archive
    from evolve import config as cfgmod
    from evolve.executor import RayExecutor
    from evolve.llm.runtime import build_operators
    from evolve.progress_view import ProgressView, summary_line
    from evolve.search import Search, SearchFailed

    _setup_logging(log_file, quiet)
    overrides: dict[str, Any] = {k: v for k, v in {
        "task": task, "db": db, "ray_address": ray_address, "seed_kernel": seed_kernel or None,
        "random_seed": random_seed}.items() if v is not None}
    if simulate:
        overrides["simulate"] = True
    if budget is not None:
        overrides["budget"] = cfgmod.parse_budget(budget)
    if workers is not None:
        overrides["evaluation"] = {"workers": workers}
    if model:
        overrides["llm"] = {"models": model}
    if shapes is not None:
        if resume is not None:
            raise UserError("--shapes starts a new run: a resumed run keeps the shapes it measured")
        overrides["shapes"] = cfgmod.load_shapes(shapes)
    if seed_kernel and resume is not None:
        raise UserError("--seed-kernel starts a new run: a resumed run keeps the seeds it started from")

    url = overrides.get("db")
    if resume is not None:
        with Archive.open(url, create=False) as archive:
            stored = archive.get_run(resume).config
        stored = {k: v for k, v in stored.items() if k != "grid"}
        cfg = cfgmod.load(config, overrides, base=stored, source=f"run {resume}")
    else:
        if "budget" not in overrides and config is None:
            raise UserError("a new run needs a budget: --budget 200, --budget 2h or --budget 200,2h")
        cfg = cfgmod.load(config, overrides)
        for path in cfg.seed_kernel:
            if not path.is_file():
                raise UserError(f"seed kernel {path} does not exist")
    from harness.task import unknown_task

    if (problem := unknown_task(cfg.task)) is not None:
        raise UserError(problem)

    archive = Archive.open(cfg.db)
    executor = None
    try:
        console.print("starting Ray and the evaluation workers ...")
        executor = RayExecutor(
            cfg.task, simulate=cfg.simulate, workers=cfg.evaluation.workers, per_worker=cfg.evaluation.per_worker,
            ray_address=cfg.ray_address, job_timeout_s=cfg.evaluation.check_timeout_s + 120,
            check_options={"total_timeout_s": cfg.evaluation.check_timeout_s, "rep_ms": cfg.evaluation.rep_ms,
                           "shapes": cfg.shapes or None},
            gpu_model=cfg.evaluation.gpu_model, fixed_eval_s=cfg.evaluation.fixed_eval_s)
        cfg.evaluation.gpu_model = executor.gpu_model  # stored with the run: a resume keeps to it
        operators, cfg, llm = build_operators(cfg, archive, lambda m: console.print(m, markup=False))
        search = Search(cfg, archive, executor, operators, resume=resume)
        run_id = search.open()
        if llm is not None:
            llm.start(run_id)
        db_opt = f" --db {cfg.db}" if cfg.db else ""
        console.print(f"run [bold]{run_id}[/] ({'simulated' if cfg.simulate else 'measured'}) on "
                      f"{executor.describe()}; resume with: evolve run --resume {run_id}{db_opt}")
        _install_stop(search)
        with ProgressView(console, quiet) as view:
            search.on_progress = view.update
            progress = asyncio.run(search.run())
        logging.getLogger("evolve.run").info(summary_line(progress))
        console.print(f"run {run_id} {progress.status}: {summary_line(progress)}")
        if progress.status == "stopped":
            console.print(f"continue with: evolve run --resume {run_id}{db_opt}")
    except SearchFailed as e:
        raise UserError(str(e)) from None
    finally:
        if executor is not None:
            executor.close()
        archive.close()


def _install_stop(search: Any) -> None:
    def handler(signum: int, frame: Any) -> None:
        if search._stop:
            console.print("[red]stopping now; candidates in flight stay pending for --resume[/red]")
        else:
            console.print("[yellow]stopping: waiting for the candidates in flight (Ctrl-C again to stop at once)[/yellow]")
        search.request_stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _setup_logging(log_file: Path | None, quiet: bool) -> None:
    """Progress lines and events go to stderr when quiet and to the log file if given."""
    logger = logging.getLogger("evolve")
    logger.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(message)s")
    handlers: list[logging.Handler] = []
    if quiet:
        handlers.append(logging.StreamHandler(sys.stderr))
    if log_file is not None:
        handlers.append(logging.FileHandler(log_file))
    for h in handlers:
        h.setFormatter(fmt)
        logger.addHandler(h)


def status(
    run_id: Annotated[int | None, typer.Argument(help="A run id (default: the latest run).")] = None,
    db: Annotated[str | None, typer.Option(help="Archive database URL or SQLite file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show a running or finished run: progress, best kernel, grid coverage, recent events."""
    from archive import Archive

    with Archive.open(db, create=False) as archive:
        if run_id is None:
            runs = archive.list_runs()
            if not runs:
                raise UserError("the archive holds no run yet: start one with evolve run")
            run_id = max(r.id for r in runs)
        run = archive.get_run(run_id)
        stats = archive.stats(run_id)
        top = archive.top(run_id, 1)
        events = archive.events(run_id)[-5:]
    budget = run.budget or {}
    data = {"run": run_id, "task": run.task, "status": str(run.status.value if hasattr(run.status, "value") else run.status),
            "simulated": run.simulated, "started_at": run.started_at.isoformat(),
            "ended_at": run.ended_at.isoformat() if run.ended_at else None, "elapsed_s": run.spend.seconds,
            "budget": budget, "evaluations": stats.evaluations, "by_outcome": stats.by_outcome,
            "pending": stats.pending, "coverage": stats.coverage, "best_fitness": stats.best_fitness,
            "best_program": top[0].program_id if top else None, "best_tflops": top[0].tflops if top else None,
            "evaluations_per_hour": stats.evaluations_per_hour,
            "events": [{"at": e.created_at.isoformat(), "kind": e.kind, "message": e.message} for e in events]}
    if as_json:
        print(json.dumps(data))
        return
    out = Console()
    t = Table(title=f"run {run_id}: {run.task} ({'simulated' if run.simulated else 'measured'})", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("status", data["status"])
    t.add_row("elapsed", f"{run.spend.seconds / 60:.1f} min" + (f" of {budget['seconds'] / 60:.0f}" if budget.get("seconds") else ""))
    t.add_row("evaluated", f"{stats.evaluations}" + (f" of {budget['candidates']}" if budget.get("candidates") else "")
              + f" ({', '.join(f'{k} {v}' for k, v in sorted(stats.by_outcome.items()))}); {stats.pending} pending")
    if stats.evaluations_per_hour:
        t.add_row("rate", f"{stats.evaluations_per_hour:.0f} per hour")
    if top:
        modelled = " modelled" if run.simulated else ""
        tf = f", {top[0].tflops:.0f} TFLOP/s{modelled} mean" if top[0].tflops else ""
        t.add_row("best", f"program {top[0].program_id}: {top[0].fitness:.3f}x{modelled} vs baseline{tf}")
    if stats.coverage is not None:
        t.add_row("grid coverage", f"{100 * stats.coverage:.1f}%")
    for e in events:
        t.add_row(e.kind, f"{e.created_at:%Y-%m-%d %H:%M:%S} {e.message}")
    out.print(t)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("status")(status)
