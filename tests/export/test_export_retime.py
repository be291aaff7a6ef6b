"""Re-timing before writing: each chosen program is checked once more by the judge, and the fresh
intervals against torch's default SDPA decide the routes. A stand-in judge answers on the CPU."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from archive import Archive
from evolve.errors import UserError
from evolve.export import export
from tests.export.factories import DEVICE, FakeJudge, measured, measured_run, rejected, seed_variant


def _dispatch(out: Path) -> dict[str, Any]:
    return json.loads((out / "attn" / "dispatch.json").read_text())


def test_retimed_intervals_decide_the_routes(archive: Archive, seed_source: str, tmp_path: Path) -> None:
    """Archived, the variant is confirmed at 1.25x on the long shapes; re-timed at D64 N16384 it
    is 0.98x, so that bucket calls the default, and the seed, 1.01x archived at D128 N1024, now
    confirmed at 1.2x, runs its kernel there."""
    run, seed, variant = measured_run(archive, seed_source)

    def recheck(source: str) -> Any:
        if source == seed_source:
            return measured(lambda c: 480)
        return measured(lambda c: 392 if c["head_dim"] == 64 and c["seq"] == 16384 else 500)

    judge = FakeJudge(recheck)
    lines: list[str] = []
    out = tmp_path / "pkg"
    export(archive, [run], out, "attn", judge_for=lambda task: judge, progress=lines.append)
    assert sorted(judge.checked) == sorted([seed_source, seed_variant(seed_source)])  # one check per chosen program
    assert sum(": passed in" in line for line in lines) == 2
    data = _dispatch(out)
    assert data["retimed"]["device"] == DEVICE
    for row in data["table"]:
        assert row["retimed"] is True
        key = (row["head_dim"], row["measured_seq"])
        if key == (64, 16384):
            assert row["kernel"] is None and row["program"] == variant and row["archived"]["speedup"] == 1.25
            assert row["speedup"] == pytest.approx(0.98) and "re-timed at export" in row["why"]
        elif key == (128, 1024):
            assert row["kernel"] == f"program_{seed}" and row["speedup"] == pytest.approx(1.2)
        else:
            assert row["kernel"] is not None
    assert "Every chosen kernel was checked again and re-timed" in (out / "README.md").read_text()


def test_kernel_failing_its_recheck_is_refused(archive: Archive, seed_source: str, tmp_path: Path) -> None:
    run, seed, _ = measured_run(archive, seed_source)
    judge = FakeJudge(lambda source: rejected() if source == seed_source else measured(lambda c: 500))
    with pytest.raises(UserError, match=f"program {seed} \\(run {run}\\) failed its re-check: rejected at stage sweep"):
        export(archive, [run], tmp_path / "pkg", "attn", judge_for=lambda task: judge)
    assert not (tmp_path / "pkg").exists()


def test_retiming_on_another_gpu_model_is_refused(archive: Archive, seed_source: str, tmp_path: Path) -> None:
    run, _, _ = measured_run(archive, seed_source)
    judge = FakeJudge(lambda source: measured(lambda c: 500), device="NVIDIA H200")
    with pytest.raises(UserError, match="measured on a NVIDIA H100 80GB HBM3 but this machine has a NVIDIA H200"):
        export(archive, [run], tmp_path / "pkg", "attn", judge_for=lambda task: judge)
    assert judge.checked == []
