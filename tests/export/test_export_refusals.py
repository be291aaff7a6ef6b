"""``evolve export`` refuses what is not a measured, fully passed kernel, a package that would
only call torch's SDPA, exporting without a GPU to re-time on unless told, and user mistakes,
with one sentence (exit 2, no traceback) and without writing anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from archive import Archive
from harness.device import detect
from tests.export.factories import DEVICE, measured, measured_run, rejected, short_vs_long, untimed


def _refused(evolve, out: Path, *args: str | int, match: str) -> None:
    result = evolve("export", *args, "--out", out)
    assert result.code == 2, result
    assert match in result.err and result.err.startswith("Error: ") and result.err.count("\n") == 1, result.err
    assert not out.exists() or not any(out.iterdir())


def test_simulated_run_is_refused(evolve, archive: Archive, db: str, seed_source: str, tmp_path: Path) -> None:
    run, _, _ = measured_run(archive, seed_source, simulated=True)
    _refused(evolve, tmp_path / "pkg", run, "--db", db, match=f"run {run} is simulated")


def test_run_whose_candidates_failed_a_stage_is_refused(evolve, archive: Archive, db: str, seed_source: str,
                                                        tmp_path: Path) -> None:
    run = archive.create_run("mha_fwd", {}, simulated=False)
    program, _ = archive.add_program(run, seed_source, operator="seed")
    archive.add_evaluation(program, rejected(), key="e1", simulated=False)
    _refused(evolve, tmp_path / "pkg", run, "--db", db,
             match=f"no program of run {run} passed every harness stage (1 rejected)")


def test_run_without_measured_timings_is_refused(evolve, archive: Archive, db: str, seed_source: str,
                                                 tmp_path: Path) -> None:
    run = archive.create_run("mha_fwd", {}, simulated=False)
    program, _ = archive.add_program(run, seed_source, operator="seed")
    archive.add_evaluation(program, untimed(), key="e1", simulated=False)
    _refused(evolve, tmp_path / "pkg", run, "--db", db, match="none with GPU-measured timings")


def test_winner_that_failed_another_evaluation_is_refused(evolve, archive: Archive, db: str, seed_source: str,
                                                          tmp_path: Path) -> None:
    run, seed, _ = measured_run(archive, seed_source)
    archive.add_evaluation(seed, rejected(), key="recheck", simulated=False)
    _refused(evolve, tmp_path / "pkg", run, "--db", db,
             match=f"program {seed} (run {run}) is the best on some shape but its evaluation")


def test_export_without_a_gpu_is_refused_unless_told_not_to_retime(evolve, archive: Archive, db: str,
                                                                     seed_source: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.checker.detect", lambda: detect(force_interpreter=True))  # even on a GPU machine
    run, _, _ = measured_run(archive, seed_source)
    _refused(evolve, tmp_path / "pkg", run, "--db", db,
             match="this machine does not time on a GPU (cpu (triton interpreter)), and export re-times every "
                   f"chosen kernel against torch's default SDPA before writing: run it on a {DEVICE}, or pass "
                   "--no-retime")
    result = evolve("export", run, "--out", tmp_path / "pkg", "--db", db, "--no-retime")
    assert result.code == 0 and "not re-timed (--no-retime)" in result.out, result


def test_nothing_confirmed_faster_than_the_default_is_refused(evolve, archive: Archive, db: str, seed_source: str,
                                                              tmp_path: Path) -> None:
    run = archive.create_run("mha_fwd", {}, simulated=False)
    program, _ = archive.add_program(run, seed_source, operator="seed")
    archive.add_evaluation(program, measured(short_vs_long(404, 390)), key="e1", simulated=False)
    _refused(evolve, tmp_path / "pkg", run, "--db", db, "--no-retime",
             match="no chosen kernel is confirmed faster than torch's default SDPA on any benchmark shape")


def test_archive_without_intervals_is_refused_with_a_hint_to_retime(evolve, archive: Archive, db: str,
                                                                    seed_source: str, tmp_path: Path) -> None:
    """Timings from before intervals were archived: a median alone confirms nothing."""
    run = archive.create_run("mha_fwd", {}, simulated=False)
    program, _ = archive.add_program(run, seed_source, operator="seed")
    archive.add_evaluation(program, measured(short_vs_long(500, 500), intervals=False), key="e1", simulated=False)
    _refused(evolve, tmp_path / "pkg", run, "--db", db, "--no-retime",
             match="the archive keeps no intervals for these runs")


def test_timings_against_a_forced_backend_confirm_nothing(evolve, archive: Archive, db: str, seed_source: str,
                                                          tmp_path: Path) -> None:
    """A search that timed against one SDPA backend says nothing about torch's default."""
    run = archive.create_run("mha_fwd", {}, simulated=False)
    program, _ = archive.add_program(run, seed_source, operator="seed")
    archive.add_evaluation(program, measured(short_vs_long(500, 500), baseline="sdpa_flash"), key="e1",
                           simulated=False)
    _refused(evolve, tmp_path / "pkg", run, "--db", db, "--no-retime",
             match="timed against sdpa_flash, not torch's default SDPA")


def test_runs_measured_on_different_gpus_are_refused(evolve, archive: Archive, db: str, seed_source: str,
                                                     tmp_path: Path) -> None:
    first, _, _ = measured_run(archive, seed_source)
    other = archive.create_run("mha_fwd", {}, simulated=False)
    program, _ = archive.add_program(other, seed_source, operator="seed")
    archive.add_evaluation(program, measured(short_vs_long(1, 1), device="NVIDIA A100-SXM4-80GB"), key="a100",
                           simulated=False)
    _refused(evolve, tmp_path / "pkg", first, other, "--db", db, match=f"different GPUs (NVIDIA A100-SXM4-80GB, {DEVICE})")


def test_unknown_run_is_a_clean_error(evolve, archive: Archive, db: str, tmp_path: Path) -> None:
    _refused(evolve, tmp_path / "pkg", 42, "--db", db, match="no run 42")


def test_missing_archive_is_a_clean_error(evolve, tmp_path: Path) -> None:
    _refused(evolve, tmp_path / "pkg", 1, "--db", tmp_path / "nowhere.db", match="no archive at")


def test_non_empty_output_directory_is_refused_without_force(evolve, archive: Archive, db: str, seed_source: str,
                                                              tmp_path: Path) -> None:
    run, _, _ = measured_run(archive, seed_source)
    out = tmp_path / "pkg"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = evolve("export", run, "--out", out, "--db", db)
    assert result.code == 2 and "is not empty" in result.err
    result = evolve("export", run, "--out", out, "--db", db, "--force", "--no-retime")
    assert result.code == 2 and "holds no earlier export" in result.err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_force_replaces_an_earlier_export(evolve, archive: Archive, db: str, seed_source: str, tmp_path: Path) -> None:
    run, _, _ = measured_run(archive, seed_source)
    out = tmp_path / "pkg"
    assert evolve("export", run, "--out", out, "--db", db, "--name", "first", "--no-retime").code == 0
    assert evolve("export", run, "--out", out, "--db", db, "--name", "second", "--no-retime").code == 2
    assert evolve("export", run, "--out", out, "--db", db, "--name", "second", "--force", "--no-retime").code == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["second", "tests"]


def test_unusable_package_name_is_refused(evolve, archive: Archive, db: str, seed_source: str, tmp_path: Path) -> None:
    run, _, _ = measured_run(archive, seed_source)
    _refused(evolve, tmp_path / "pkg", run, "--db", db, "--name", "My-Attention", match="not a usable package name")
