"""Code run in separate processes by test_concurrency.py (spawned, so importable by name)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from archive import Archive
from harness.verdict import ShapeResult
from tests.archive.factories import kernel, passed

CELLS = 5


def fitness_of(k: int) -> float:
    return 1.0 + (k * 7 % 11) / 10


def open_and_start_a_run(url: str, worker: int, barrier: Any, results: Any) -> None:
    barrier.wait()
    with Archive.open(url) as archive:
        results.put(archive.create_run("mha_fwd", {"worker": worker}, simulated=True))


def write_overlapping(url: str, run: int, seed: int, worker: int, items: list[int], barrier: Any, results: Any) -> None:
    """Insert programs ``items`` (other workers insert some of the same ones, reformatted), each
    with an evaluation under a key shared with those workers, a cell update and some spend."""
    records = []
    with Archive.open(url) as archive:
        barrier.wait()
        for k in items:
            program, created = archive.add_program(
                run, kernel(k, comment=f" Proposed by worker {worker}."), parents=[seed], operator="mutate"
            )
            f = fitness_of(k)
            evaluation, evaluation_created = archive.add_evaluation(
                program, passed(f, f), key=f"eval-{k}", simulated=True
            )
            archive.update_cell(run, k % CELLS, [k % CELLS], program, f)
            archive.add_spend(run, candidates=1, dollars=0.5)
            records.append((k, program, created, evaluation, evaluation_created))
    results.put(records)


def hang_inside_an_evaluation(url: str, program: int, rows: int, ready: str) -> None:
    """Start storing an evaluation with ``rows`` shape results, say so once they are written but
    before the transaction commits, then wait to be killed."""

    def stall(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO SHAPE_RESULTS"):
            Path(ready).write_text("begun")
            time.sleep(600)

    with Archive.open(url) as archive:
        event.listen(Engine, "after_cursor_execute", stall)
        verdict = passed(2.0, 2.0, log="y" * 100_000)
        verdict.shape_results = [
            ShapeResult(label=f"trial {i}", shape={"seq": i}, rel_err=0.0, max_abs_err=0.0, passed=True)
            for i in range(rows)
        ]
        archive.add_evaluation(program, verdict, key="interrupted", simulated=False)
