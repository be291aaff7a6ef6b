"""Evaluations: idempotent by key, stored as columns and child rows, logs capped."""

from __future__ import annotations

import pytest

from archive import Archive, ArchiveError, ProgramState
from archive.writes import LOG_CAP_BYTES
from harness.verdict import Outcome, Stage
from tests.archive.factories import kernel, passed, rejected


@pytest.fixture
def program(archive: Archive) -> int:
    run = archive.create_run("mha_fwd", {}, simulated=False)
    return archive.add_program(run, kernel(1), operator="seed")[0]


def test_a_redelivered_evaluation_returns_the_first_and_writes_nothing(archive: Archive, program: int) -> None:
    first, created = archive.add_evaluation(program, passed(2.0, 2.0), key="worker-3/attempt-1", simulated=False)
    again, created_again = archive.add_evaluation(program, rejected(), key="worker-3/attempt-1", simulated=False)
    assert created and not created_again and again == first
    [stored] = archive.evaluations(program)
    assert stored.outcome is Outcome.PASSED and len(stored.shape_results) == 2 and len(stored.timings) == 2


def test_a_key_reused_for_another_program_is_a_bug_not_a_retry(archive: Archive, program: int) -> None:
    other, _ = archive.add_program(archive.get_program(program).run_id, kernel(2), operator="seed")
    archive.add_evaluation(program, passed(1.0, 1.0), key="k", simulated=False)
    with pytest.raises(ValueError, match="already belongs to program"):
        archive.add_evaluation(other, passed(1.0, 1.0), key="k", simulated=False)


def test_a_passed_verdict_is_stored_with_fitness_tflops_and_per_shape_rows(archive: Archive, program: int) -> None:
    verdict = passed(2.0, 8.0)
    archive.add_evaluation(program, verdict, key="k", simulated=False)
    [e] = archive.evaluations(program)
    assert e.passed and e.stage is Stage.DONE
    assert e.fitness == pytest.approx(4.0)  # geometric mean of 2 and 8
    assert e.tflops == pytest.approx(500.0)  # mean of 200 and 800
    assert (e.device, e.torch_version, e.triton_version, e.mode) == (
        "NVIDIA H100 80GB HBM3", "2.5.1", "3.2.0", "gpu")
    assert [t.speedup for t in e.timings] == [pytest.approx(2.0), pytest.approx(8.0)]
    assert e.timings[0].shape == verdict.timings[0].shape
    assert [s.label for s in e.shape_results] == ["trial 0", "trial 1"]
    assert archive.get_program(program).state is ProgramState.EVALUATED


def test_a_rejected_verdict_has_no_fitness(archive: Archive, program: int) -> None:
    archive.add_evaluation(program, rejected(Stage.ANTICHEAT, "output reused"), key="k", simulated=True)
    e = archive.get_program(program).latest_evaluation
    assert e is not None
    assert (e.outcome, e.stage, e.reason, e.passed, e.fitness, e.simulated) == (
        Outcome.REJECTED, Stage.ANTICHEAT, "output reused", False, None, True)
    assert e.shape_results[0].rel_err == pytest.approx(0.31)


def test_a_long_log_keeps_its_head_and_tail_within_64_kib(archive: Archive, program: int) -> None:
    log = "first line\n" + "x" * 200_000 + "\nlast line"
    archive.add_evaluation(program, passed(1.0, 1.0, log=log), key="k", simulated=False)
    [e] = archive.evaluations(program)
    assert len(e.log.encode()) <= LOG_CAP_BYTES
    assert e.log.startswith("first line") and e.log.endswith("last line")
    assert "bytes cut" in e.log


def test_the_latest_evaluation_is_the_one_a_program_shows(archive: Archive, program: int) -> None:
    archive.add_evaluation(program, rejected(), key="first", simulated=True)
    archive.add_evaluation(program, passed(3.0, 3.0), key="second", simulated=False)
    latest = archive.get_program(program).latest_evaluation
    assert latest is not None and latest.key == "second"
    assert [e.key for e in archive.evaluations(program)] == ["first", "second"]


def test_evaluating_an_unknown_program_is_named_in_the_error(archive: Archive) -> None:
    with pytest.raises(ArchiveError, match="^no program 9$"):
        archive.add_evaluation(9, passed(1.0, 1.0), key="k", simulated=False)
