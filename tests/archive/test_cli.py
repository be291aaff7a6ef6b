"""``evolve archive ...`` through the real entry point: every browse command on a populated
archive, ``--json`` everywhere, and one-sentence errors (exit 2, no traceback) for mistakes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from archive import Archive
from archive.schema import head_revision
from tests.archive.factories import Populated, kernel, populate
from tests.conftest import Evolve


@pytest.fixture
def pop(archive: Archive) -> Populated:
    return populate(archive)


def test_runs_lists_status_counts_and_best_speedup(evolve: Evolve, archive_url: str, pop: Populated) -> None:
    result = evolve("archive", "runs", "--db", archive_url)
    assert result.code == 0
    row = next(line for line in result.out.splitlines() if "mha_fwd (demo)" in line)
    assert "running" in row and "2.000x" in row
    [summary] = json.loads(evolve("archive", "runs", "--db", archive_url, "--json").out)
    assert (summary["programs"], summary["passed"], summary["failed"]) == (6, 4, 1)


def test_top_lists_the_best_correct_kernels_first(evolve: Evolve, archive_url: str, pop: Populated) -> None:
    result = evolve("archive", "top", pop.run, "-n", 2, "--db", archive_url)
    assert result.code == 0
    assert "2.000x" in result.out and "200.0" in result.out and "1.500x" in result.out
    entries = json.loads(evolve("archive", "top", pop.run, "--db", archive_url, "--json", "--measured").out)
    assert [e["program_id"] for e in entries] == [pop.best, pop.child, pop.seed]


def test_show_prints_source_verdict_shapes_timings_and_parents(
    evolve: Evolve, archive_url: str, pop: Populated
) -> None:
    result = evolve("archive", "show", pop.best, "--db", archive_url)
    assert result.code == 0
    for expected in ("def forward(q, k, v, causal, sm_scale)", "passed", "Per-shape results", "trial 1",
                     "Timings", "2.000x", "NVIDIA H100"):
        assert expected in result.out
    assert re.search(rf"^parents\s+{pop.child}\s*$", result.out, re.MULTILINE)
    data = json.loads(evolve("archive", "show", pop.best, "--db", archive_url, "--json").out)
    assert data["program"]["parents"] == [pop.child]
    assert data["evaluations"][0]["timings"][0]["speedup"] == pytest.approx(2.0)


def test_show_says_when_a_program_is_not_evaluated_yet(evolve: Evolve, archive_url: str, pop: Populated) -> None:
    result = evolve("archive", "show", pop.pending, "--db", archive_url)
    assert result.code == 0 and "Not evaluated yet." in result.out


def test_diff_prints_a_unified_diff(evolve: Evolve, archive_url: str, pop: Populated) -> None:
    result = evolve("archive", "diff", pop.seed, pop.best, "--db", archive_url)
    assert result.code == 0
    assert f"--- program {pop.seed}" in result.out and "+    return q * 2 + k" in result.out
    assert "same source" in evolve("archive", "diff", pop.seed, pop.seed, "--db", archive_url).out
    data = json.loads(evolve("archive", "diff", pop.seed, pop.best, "--db", archive_url, "--json").out)
    assert data["diff"].startswith(f"--- program {pop.seed}")


def test_lineage_draws_the_ancestry_with_operators_and_speedups(
    evolve: Evolve, archive_url: str, pop: Populated
) -> None:
    result = evolve("archive", "lineage", pop.crossover, "--db", archive_url)
    assert result.code == 0
    lines = [line for line in result.out.splitlines() if "program" in line]
    assert [line.split("program ")[1].split()[0] for line in lines] == [
        str(p) for p in (pop.seed, pop.child, pop.best, pop.crossover)
    ]
    assert "seed" in lines[0] and "1.000x" in lines[0]
    assert "crossover" in lines[-1] and f"also from {pop.seed}" in lines[-1]
    steps = json.loads(evolve("archive", "lineage", pop.crossover, "--db", archive_url, "--json").out)
    assert [s["operator"] for s in steps] == ["crossover", "mutate", "mutate", "seed"]


def test_grid_draws_a_heatmap_with_the_configured_labels(evolve: Evolve, archive_url: str, pop: Populated) -> None:
    result = evolve("archive", "grid", pop.run, "--db", archive_url)
    assert result.code == 0
    assert "warps \\ block_m" in result.out and "3/12 cells filled" in result.out
    row = next(line for line in result.out.splitlines() if line.startswith("│ 4 "))
    assert ["1.00", "1.50", "2.00"] == [c for c in row.replace("│", " ").split() if "." in c]
    swapped = evolve("archive", "grid", pop.run, "--x", "stages", "--y", "block_m", "--db", archive_url)
    assert "block_m \\ stages" in swapped.out
    view = json.loads(evolve("archive", "grid", pop.run, "--db", archive_url, "--json").out)
    assert view["fitness"] == [[1.0, 1.5, 2.0], [None, None, None]]


def test_failures_groups_rejections_by_stage_and_reason(evolve: Evolve, archive_url: str, pop: Populated) -> None:
    result = evolve("archive", "failures", pop.run, "--db", archive_url)
    assert result.code == 0 and "rel err 0.31 > 0.01 on trial 2" in result.out and "sweep" in result.out
    [group] = json.loads(evolve("archive", "failures", pop.run, "--db", archive_url, "--json").out)
    assert (group["count"], group["example_program_id"]) == (1, pop.failed)


def test_import_adds_a_pending_program_to_a_run(evolve: Evolve, archive: Archive, archive_url: str, pop: Populated,
                                                tmp_path: Path) -> None:
    file = tmp_path / "my_kernel.py"
    file.write_text(kernel(42))
    result = evolve("archive", "import", file, "--run", pop.run, "--db", archive_url, "--json")
    assert result.code == 0
    data = json.loads(result.out)
    assert (data["run_id"], data["created"], data["run_created"]) == (pop.run, True, False)
    program = archive.get_program(data["program_id"])
    assert (program.operator, program.state.value) == ("import", "pending")
    assert data["program_id"] in archive.pending_programs(pop.run)
    again = evolve("archive", "import", file, "--run", pop.run, "--db", archive_url)
    assert again.code == 0 and "already program" in again.out


def test_import_without_a_run_starts_one_and_prints_its_id(evolve: Evolve, tmp_path: Path) -> None:
    file = tmp_path / "seed.py"
    file.write_text(kernel(1))
    db = tmp_path / "fresh.db"
    result = evolve("archive", "import", file, "--db", db)
    assert result.code == 0
    assert "Created run 1 for task mha_fwd." in result.out
    with Archive.open(str(db), create=False) as archive:
        assert archive.get_run(1).task == "mha_fwd" and archive.pending_programs(1) == [1]


def test_upgrade_says_which_revision_the_archive_is_at(evolve: Evolve, archive_url: str, pop: Populated) -> None:
    result = evolve("archive", "upgrade", "--db", archive_url)
    assert result.code == 0 and f"already at schema {head_revision()}" in result.out
    assert json.loads(evolve("archive", "upgrade", "--db", archive_url, "--json").out)["to"] == head_revision()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("top", "99"), "no run 99"),
        (("grid", "99"), "no run 99"),
        (("failures", "99"), "no run 99"),
        (("show", "999"), "no program 999"),
        (("lineage", "999"), "no program 999"),
        (("diff", "1", "999"), "no program 999"),
        (("grid", "1", "--x", "tile"), "no grid dimension 'tile'"),
        (("import", "missing.py", "--run", "1"), "no file missing.py"),
        (("import", "missing.py", "--run", "99"), "no file missing.py"),
    ],
)
def test_bad_ids_and_files_fail_in_one_sentence(evolve: Evolve, archive_url: str, pop: Populated, args: tuple[str, ...],
                                                message: str) -> None:
    result = evolve("archive", *args, "--db", archive_url)
    assert result.code == 2
    assert result.err.startswith("Error: ") and message in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert result.out == ""


@pytest.mark.parametrize(
    "args", [("runs",), ("top", "1"), ("show", "1"), ("diff", "1", "2"), ("lineage", "1"), ("grid", "1"),
             ("failures", "1"), ("upgrade",)]
)
def test_every_browse_command_refuses_a_missing_archive(evolve: Evolve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        args: tuple[str, ...]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVOLVE_DB", raising=False)
    result = evolve("archive", *args)
    assert result.code == 2
    assert result.err.strip() == "Error: no archive at evolve.db; start a run or pass --db"
    assert not (tmp_path / "evolve.db").exists()


def test_an_archive_from_a_newer_evolve_is_refused(evolve: Evolve, archive_url: str, pop: Populated) -> None:
    engine = create_engine(archive_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    engine.dispose()
    result = evolve("archive", "runs", "--db", archive_url)
    assert result.code == 2
    assert "schema revision f00d, newer than this version of evolve knows" in result.err
    assert len(result.err.strip().splitlines()) == 1
