"""``evolve llm check``: one small request to each configured model; ``evolve llm prompt``:
the exact messages a model would receive for a program of the archive."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from evolve.errors import UserError

app = typer.Typer(help="LLM operators: check the configured models, show the prompts they get.",
                  no_args_is_help=True)

ModelOpt = Annotated[list[str] | None, typer.Option(
    "--model", help="NAME or NAME=WEIGHT; repeatable (default: the config's models).")]
ConfigOpt = Annotated[Path | None, typer.Option(help="A TOML run configuration whose [llm] section to use.")]
DbOpt = Annotated[str | None, typer.Option(
    help="Archive database URL or SQLite file (default: $EVOLVE_DB or ./evolve.db).")]


def _settings(config: Path | None, model: list[str] | None) -> Any:
    from evolve import config as cfgmod

    overrides: dict[str, Any] = {"budget": {"candidates": 1}}
    if model:
        overrides["llm"] = {"models": model}
    return cfgmod.load(config, overrides)


@app.command("check")
def check(
    model: ModelOpt = None,
    config: ConfigOpt = None,
    db: DbOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per model.")] = False,
) -> None:
    """Send one small request to each configured model and report its latency and whether its
    answer parsed. The calls are recorded in the archive (outside any run). Exit status 1 when a
    model fails."""
    from archive import Archive
    from evolve.llm import edits
    from evolve.llm.client import LlmClient, NotConfigured, resolve_endpoint
    from evolve.llm.ledger import Ledger, PriceTable
    from evolve.llm.prompts import Prompts
    from harness.task import get_task

    cfg = _settings(config, model)
    endpoint = resolve_endpoint(cfg.llm)
    if isinstance(endpoint, NotConfigured):
        raise UserError(f"no LLM is configured: {endpoint.reason}. Set $OPENAI_BASE_URL (an OpenAI-compatible "
                        f"server) and/or ${cfg.llm.api_key_env}, and name a model with --model NAME")
    console = Console(stderr=as_json)
    console.print(f"endpoint: {endpoint.describe()}", markup=False)
    messages = Prompts(get_task(cfg.task), [], peak_tflops=cfg.llm.peak_tflops).check()
    rows = []
    with Archive.open(db or cfg.db) as archive:
        def record(**fields: Any) -> int:
            return archive.add_llm_call(None, **fields)

        client = LlmClient(cfg.llm, endpoint, prices=PriceTable(cfg.llm.prices), ledger=Ledger(cfg.llm.budget),
                           record=record)

        async def ask_all() -> list[Any]:
            return await asyncio.gather(*(client.complete(m.name, messages, purpose="check", max_tokens=256)
                                          for m in cfg.llm.models))

        for m, answer in zip(cfg.llm.models, asyncio.run(ask_all())):
            parsed, note = False, answer.detail
            if answer.ok and answer.text is not None:
                try:
                    parsed = "42" in edits.extract_code(answer.text)
                    note = "" if parsed else "the code block does not hold `answer = 42`"
                except edits.EditError as e:
                    note = str(e)
            rows.append({"model": m.name, "ok": answer.ok, "parsed": parsed, "latency_s": round(answer.latency_s, 3),
                         "tokens": answer.tokens, "cost_usd": answer.cost_usd, "error": note or None,
                         "llm_call": answer.call_id})
    if as_json:
        for r in rows:
            print(json.dumps(r))
    else:
        t = Table("model", "answered", "parsed", "latency", "tokens", "note", title="LLM check")
        for r in rows:
            t.add_row(r["model"], "yes" if r["ok"] else "[red]no[/]", "yes" if r["parsed"] else "[red]no[/]",
                      f"{r['latency_s']:.2f} s", str(r["tokens"]), r["error"] or "")
        Console().print(t)
    if not all(r["ok"] and r["parsed"] for r in rows):
        raise typer.Exit(1)


@app.command("prompt")
def prompt(
    program: Annotated[int, typer.Argument(help="The parent program (its id in the archive).")],
    operator: Annotated[str, typer.Option(help="llm_diff, llm_rewrite or llm_crossover.")] = "llm_diff",
    other: Annotated[int | None, typer.Option(help="The second parent of llm_crossover.")] = None,
    inspiration: Annotated[list[int] | None, typer.Option(help="Programs shown as inspirations; repeatable.")] = None,
    strategy: Annotated[str, typer.Option(help="A strategy hint of prompts/strategies/.")] = "weakest-shape",
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Print the messages a model receives to propose from PROGRAM, exactly as sent (the run's
    scratchpad, if any, is left out)."""
    from archive import Archive
    from evolve.llm.client import render_messages
    from evolve.llm.prompts import EditFormat, Prompts, load_strategies
    from evolve.llm.views import Views
    from harness.task import get_task

    kinds: dict[str, EditFormat] = {"llm_diff": "diff", "llm_rewrite": "rewrite", "llm_crossover": "crossover"}
    if operator not in kinds:
        raise UserError(f"unknown LLM operator {operator!r}; known: {', '.join(kinds)}")
    if (operator == "llm_crossover") != (other is not None):
        raise UserError("--other is the second parent of llm_crossover, and only of it")
    hints = load_strategies()
    if strategy not in hints:
        raise UserError(f"unknown strategy {strategy!r}; known: {', '.join(hints)}")
    cfg = _settings(config, None)
    with Archive.open(db or cfg.db, create=False) as archive:
        task = get_task(archive.get_run(archive.get_program(program).run_id).task)
        views = Views(archive, task, peak_tflops=cfg.llm.peak_tflops)
        parents = [views.program(program)] + ([views.program(other)] if other is not None else [])
        messages = Prompts(task, cfg.llm.knowledge, peak_tflops=cfg.llm.peak_tflops).propose(
            kinds[operator], parents=parents,
            inspirations=[views.inspiration(i, parents[0].source) for i in inspiration or []],
            lineage=views.lineage(program, cfg.llm.lineage_depth), scratchpad=None, strategy=hints[strategy])
    print(render_messages(messages))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="llm")

