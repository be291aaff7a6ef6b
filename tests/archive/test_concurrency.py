"""Several processes writing at once lose nothing and duplicate nothing; a writer killed in the
middle of a transaction leaves the archive consistent, with none of that transaction visible."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import time
from collections import defaultdict
from contextlib import closing
from pathlib import Path

from sqlalchemy.engine import make_url

from archive import Archive, ProgramState
from tests.archive import workers
from tests.archive.factories import kernel, passed

WORKERS = 4
PER_WORKER = 24
SPAWN = multiprocessing.get_context("spawn")


def test_workers_opening_a_fresh_archive_together_create_it_once(archive_url: str) -> None:
    barrier, results = SPAWN.Barrier(WORKERS), SPAWN.Queue()
    processes = [
        SPAWN.Process(target=workers.open_and_start_a_run, args=(archive_url, w, barrier, results))
        for w in range(WORKERS)
    ]
    for p in processes:
        p.start()
    runs = sorted(results.get(timeout=120) for _ in processes)
    for p in processes:
        p.join(timeout=60)
        assert p.exitcode == 0
    with Archive.open(archive_url, create=False) as archive:
        assert sorted(r.id for r in archive.list_runs()) == runs
        assert sorted(archive.config(r)["worker"] for r in runs) == list(range(WORKERS))


def test_concurrent_writers_lose_nothing_and_duplicate_nothing(archive: Archive, archive_url: str) -> None:
    run = archive.create_run("mha_fwd", {}, simulated=True)
    seed, _ = archive.add_program(run, kernel(-1), operator="seed")
    # Worker w writes items [w*12, w*12 + 24): each half overlaps a neighbour's.
    items = {w: list(range(w * PER_WORKER // 2, w * PER_WORKER // 2 + PER_WORKER)) for w in range(WORKERS)}
    barrier, results = SPAWN.Barrier(WORKERS), SPAWN.Queue()
    processes = [
        SPAWN.Process(target=workers.write_overlapping, args=(archive_url, run, seed, w, items[w], barrier, results))
        for w in range(WORKERS)
    ]
    for p in processes:
        p.start()
    records = [r for _ in processes for r in results.get(timeout=120)]
    for p in processes:
        p.join(timeout=60)
        assert p.exitcode == 0

    distinct = {k for ks in items.values() for k in ks}
    assert len(records) == WORKERS * PER_WORKER > len(distinct)  # some items were written twice
    by_item: dict[int, list[tuple[int, bool, int, bool]]] = defaultdict(list)
    for k, program, created, evaluation, evaluation_created in records:
        by_item[k].append((program, created, evaluation, evaluation_created))
    for k, seen in by_item.items():
        assert len({program for program, *_ in seen}) == 1, f"item {k} stored as several programs"
        assert len({evaluation for _, _, evaluation, _ in seen}) == 1, f"item {k} evaluated twice"
        assert sum(created for _, created, _, _ in seen) == 1
        assert sum(e_created for *_, e_created in seen) == 1

    assert archive.stats(run).programs == len(distinct) + 1
    assert archive.pending_programs(run) == [seed]
    for k, seen in by_item.items():
        program = seen[0][0]
        [evaluation] = archive.evaluations(program)
        assert evaluation.key == f"eval-{k}"
        assert len(evaluation.shape_results) == 2 and len(evaluation.timings) == 2
        assert archive.get_program(program).state is ProgramState.EVALUATED
    for cell in archive.cells(run):
        assert cell.fitness == max(workers.fitness_of(k) for k in distinct if k % workers.CELLS == cell.index)
    spend = archive.get_run(run).spend
    assert (spend.candidates, spend.dollars) == (WORKERS * PER_WORKER, WORKERS * PER_WORKER * 0.5)


def test_a_writer_killed_mid_transaction_leaves_the_archive_consistent(
    archive: Archive, archive_url: str, tmp_path: Path
) -> None:
    run = archive.create_run("mha_fwd", {}, simulated=False)
    committed, _ = archive.add_program(run, kernel(1), operator="seed")
    archive.add_evaluation(committed, passed(1.5, 1.5), key="committed", simulated=False)
    victim_program, _ = archive.add_program(run, kernel(2), operator="mutate", parents=[committed])

    ready = tmp_path / "ready"
    victim = SPAWN.Process(
        target=workers.hang_inside_an_evaluation, args=(archive_url, victim_program, 5000, str(ready))
    )
    victim.start()
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert victim.is_alive() and time.monotonic() < deadline, "the writer never began its transaction"
        time.sleep(0.05)
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(timeout=30)
    assert victim.exitcode == -signal.SIGKILL

    with Archive.open(archive_url) as reopened:
        assert reopened.evaluations(victim_program) == []
        assert reopened.get_program(victim_program).state is ProgramState.PENDING
        assert [e.key for e in reopened.evaluations(committed)] == ["committed"]
        # The lock died with the writer: the same evaluation can now be stored, exactly once.
        evaluation, created = reopened.add_evaluation(victim_program, passed(2.0, 2.0), key="interrupted",
                                                      simulated=False)
        assert created
        assert [e.id for e in reopened.evaluations(victim_program)] == [evaluation]
    database = make_url(archive_url).database
    if archive_url.startswith("sqlite") and database:
        with closing(sqlite3.connect(database)) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
