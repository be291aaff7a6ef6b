"""Runs, their spend, statistics per generation, LLM calls and events."""

from __future__ import annotations

import pytest

from archive import Archive, ArchiveError, RunStatus
from tests.archive.factories import GRID


def test_a_run_keeps_its_task_configuration_and_budget(archive: Archive) -> None:
    run = archive.create_run("mha_fwd", {"grid": GRID, "seed": 7}, simulated=True, budget={"dollars": 5}, name="x")
    info = archive.get_run(run)
    assert (info.task, info.simulated, info.name, info.status) == ("mha_fwd", True, "x", RunStatus.RUNNING)
    assert info.budget == {"dollars": 5}
    assert archive.config(run) == {"grid": GRID, "seed": 7}
    assert info.ended_at is None and info.started_at.tzinfo is not None


def test_an_unknown_run_is_named_in_the_error(archive: Archive) -> None:
    with pytest.raises(ArchiveError, match="^no run 42$") as e:
        archive.get_run(42)
    assert e.value.exit_code == 2


def test_a_grid_the_archive_could_not_render_is_refused_up_front(archive: Archive) -> None:
    with pytest.raises(ArchiveError, match="grid is invalid: dims.0.labels"):
        archive.create_run("mha_fwd", {"grid": {"dims": [{"name": "a", "labels": []}]}}, simulated=True)
    assert archive.list_runs() == []


def test_final_statuses_stamp_the_end_and_resuming_clears_it(archive: Archive) -> None:
    run = archive.create_run("mha_fwd", {}, simulated=False)
    archive.set_run_status(run, "stopped")
    stopped = archive.get_run(run)
    assert stopped.status is RunStatus.STOPPED and stopped.ended_at is not None
    archive.set_run_status(run, "running")
    assert archive.get_run(run).ended_at is None
    with pytest.raises(ValueError):
        archive.set_run_status(run, "paused")


def test_spend_accumulates(archive: Archive) -> None:
    run = archive.create_run("mha_fwd", {}, simulated=False)
    archive.add_spend(run, candidates=2, seconds=1.5, dollars=0.25, tokens=1000)
    archive.add_spend(run, candidates=1, dollars=0.5)
    spend = archive.get_run(run).spend
    assert (spend.candidates, spend.seconds, spend.dollars, spend.tokens) == (3, 1.5, 0.75, 1000)
    with pytest.raises(ArchiveError, match="no run 99"):
        archive.add_spend(99, candidates=1)


def test_generation_stats_are_replaced_when_a_generation_is_recorded_again(archive: Archive) -> None:
    run = archive.create_run("mha_fwd", {}, simulated=True)
    archive.add_generation_stats(run, 0, evaluated=4, coverage=0.1, qd_score=3.0, best_fitness=None)
    archive.add_generation_stats(run, 1, evaluated=8, coverage=0.2, qd_score=5.0, best_fitness=1.2)
    archive.add_generation_stats(run, 1, evaluated=9, coverage=0.25, qd_score=6.0, best_fitness=1.3, extra={"k": 1})
    stats = archive.generation_stats(run)
    assert [(s.generation, s.evaluated, s.best_fitness, s.extra) for s in stats] == [
        (0, 4, None, None),
        (1, 9, 1.3, {"k": 1}),
    ]


def test_llm_calls_are_kept_with_their_cost_and_summed_per_run(archive: Archive) -> None:
    run = archive.create_run("mha_fwd", {}, simulated=True)

    def call(run_id: int | None, response: str | None, tokens: tuple[int, int], cost: float, error: str | None) -> int:
        return archive.add_llm_call(
            run_id, model="m", purpose="mutate", prompt="p", response=response, prompt_tokens=tokens[0],
            completion_tokens=tokens[1], cost_usd=cost, latency_s=1.0, error=error,
        )

    call(run, "r", (100, 20), 0.01, None)
    call(run, None, (50, 0), 0.0, "rate limited")
    call(None, "r", (1, 1), 9.0, None)
    assert [c.error for c in archive.llm_calls(run)] == [None, "rate limited"]
    assert archive.llm_spend(run) == (pytest.approx(0.01), 170)
    assert len(archive.llm_calls(None)) == 1


def test_events_are_kept_in_order_per_run(archive: Archive) -> None:
    run = archive.create_run("mha_fwd", {}, simulated=True)
    archive.add_event(run, "started", "run started")
    archive.add_event(run, "resumed", "run resumed", {"pending": 3})
    archive.add_event(None, "upgrade", "archive upgraded")
    assert [(e.kind, e.data) for e in archive.events(run)] == [("started", None), ("resumed", {"pending": 3})]
    assert [e.kind for e in archive.events(None)] == ["upgrade"]
