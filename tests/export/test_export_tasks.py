"""Exports of several tasks: mha_fwd, gqa_fwd and attn_bwd runs build one table, keyed by the
direction (forward, backward) and the group size (query heads per key/value head) too; each
family of rows gets buckets from its own measured lengths; each run's kernels are re-timed by a
judge of its own task and shapes; attn_bwd alone is refused.

These export with ``--no-retime`` or a stand-in judge (no GPU here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from archive import Archive
from evolve.errors import UserError
from evolve.export import export
from harness.task import Task
from tests.export.factories import BWD, FakeJudge, bwd_run, gqa_run, measured, measured_run


def _export(evolve, out: Path, *args: str | int) -> dict[str, Any]:
    result = evolve("export", *args, "--out", out, "--name", "attn", "--no-retime")
    assert result.code == 0, result
    return json.loads((out / "attn" / "dispatch.json").read_text())


def _rows(data: dict[str, Any], direction: str, group: int, dtype: str = "bfloat16") -> dict[tuple, dict[str, Any]]:
    return {(r["head_dim"], r["causal"], r["min_seq"]): r for r in data["table"]
            if (r["direction"], r["group"], r["dtype"]) == (direction, group, dtype)}


def test_mixed_runs_build_one_table(evolve, archive: Archive, db: str, seed_source: str, tmp_path: Path) -> None:
    mha, seed, variant = measured_run(archive, seed_source)
    gqa, gqa_program = gqa_run(archive)
    bwd, bwd_program = bwd_run(archive)
    out = tmp_path / "pkg"
    data = _export(evolve, out, mha, gqa, bwd, "--db", db)
    assert data["format"] == 3 and data["runs"] == [mha, gqa, bwd]
    assert data["tasks"] == ["attn_bwd", "gqa_fwd", "mha_fwd"]
    assert {(r["direction"], r["group"]) for r in data["table"]} == {("forward", 1), ("forward", 4), ("backward", 1)}

    mha_rows = _rows(data, "forward", 1)
    assert len(mha_rows) == 12 and {r["program"] for r in mha_rows.values()} == {seed, variant}
    gqa_rows = _rows(data, "forward", 4)
    assert len(gqa_rows) == 12
    for (d, _, min_seq), row in gqa_rows.items():
        assert (row["program"], row["task"], row["heads"], row["kv_heads"]) == (gqa_program, "gqa_fwd", 32, 8)
        default = d == 128 and min_seq > 1  # 0.95x there
        assert (row["kernel"] is None) is default, row
    bwd_rows = _rows(data, "backward", 1)
    assert len(bwd_rows) == 12
    for (d, causal, _), row in bwd_rows.items():
        assert (row["program"], row["task"], row["baseline"]) == (bwd_program, "attn_bwd", "sdpa default (cudnn) backward")
        assert (row["kernel"] == f"program_{bwd_program}") is (d == 64 and not causal), row
    assert _rows(data, "backward", 1, "float16").keys() == bwd_rows.keys()  # fp16 checked, bf16 timed

    kernels = data["kernels"]
    assert kernels[f"program_{gqa_program}"]["task"] == "gqa_fwd"
    entry = kernels[f"program_{bwd_program}"]
    assert (entry["task"], entry["direction"]) == ("attn_bwd", "backward")
    assert entry["entry"] == "forward(q, k, v, o, do, lse, causal: bool, sm_scale: float) -> (dq, dk, dv)"
    assert (out / "attn" / entry["file"]).read_bytes() == BWD.seed_path().read_bytes()

    families = {(b["direction"], b["group"], b["head_dim"], b["causal"]) for b in data["buckets"]}
    assert families == {(direction, g, d, c) for direction, g in (("forward", 1), ("forward", 4), ("backward", 1))
                        for d in (64, 128) for c in (False, True)}
    readme = (out / "README.md").read_text()
    assert "**Forward:** 18 of the 24 benchmark shapes run an evolved kernel" in readme
    assert "**Backward:** 3 of the 12 benchmark shapes of the backward run an evolved kernel" in readme
    assert f"| 4 | 64 | yes | bfloat16 | 1-2047 | `program_{gqa_program}` | {gqa_program} | gqa_fwd | 16, 32/8, 1024 |" \
        in readme
    assert "| 1 | 128 | no | bfloat16 | 1-2047 | **recompute** |" in readme
    assert "torch's flash forward" in readme


def test_backward_runs_alone_are_refused(evolve, archive: Archive, db: str, tmp_path: Path) -> None:
    bwd, _ = bwd_run(archive)
    result = evolve("export", bwd, "--out", tmp_path / "pkg", "--db", db, "--no-retime")
    assert result.code == 2 and "export them together with an mha_fwd or gqa_fwd run" in result.err, result
    assert not (tmp_path / "pkg").exists()


def test_run_of_a_task_export_cannot_build_is_refused(evolve, archive: Archive, db: str, seed_source: str,
                                                      tmp_path: Path) -> None:
    run = archive.create_run("decode_paged", {}, simulated=False)
    result = evolve("export", run, "--out", tmp_path / "pkg", "--db", db, "--no-retime")
    assert result.code == 2 and "optimized task 'decode_paged'" in result.err and "gqa_fwd" in result.err, result


def test_gqa_run_on_its_own_shapes_gets_buckets_of_its_own_lengths(evolve, archive: Archive, db: str,
                                                                   seed_source: str, tmp_path: Path) -> None:
    """A model's shapes (group 2, lengths 2048 and 8192) make buckets for that family only; the
    mha families keep theirs, and every family covers every length."""
    mha, _, _ = measured_run(archive, seed_source)
    shapes = [{"batch": 1, "heads": 16, "kv_heads": 8, "seq": n, "head_dim": 64, "causal": True} for n in (2048, 8192)]
    gqa, _ = gqa_run(archive, shapes=shapes)
    data = _export(evolve, tmp_path / "pkg", mha, gqa, "--db", db)
    grouped = [b for b in data["buckets"] if b["group"] == 2]
    assert [(b["head_dim"], b["causal"], b["min_seq"], b["max_seq"], b["measured_seq"]) for b in grouped] == \
        [(64, True, 1, 4095, 2048), (64, True, 4096, None, 8192)]
    assert [b["measured_seq"] for b in data["buckets"] if b["group"] == 1 and b["head_dim"] == 64 and b["causal"]] == \
        [1024, 4096, 16384]
    assert {(r["measured_seq"], r["heads"], r["kv_heads"]) for r in data["table"] if r["group"] == 2} == \
        {(2048, 16, 8), (8192, 16, 8)}


def test_group_one_gqa_program_competes_with_mha_programs(evolve, archive: Archive, db: str, seed_source: str,
                                                          tmp_path: Path) -> None:
    """gqa_fwd measured with kv_heads = heads serves plain MHA calls: the surer kernel wins."""
    mha, seed, _ = measured_run(archive, seed_source)
    shapes = [{"batch": 16, "heads": 32, "kv_heads": 32, "seq": 1024, "head_dim": 64, "causal": False}]
    gqa, gqa_program = gqa_run(archive, shapes=shapes)  # 1.2x [1.176, 1.224] beats the seed's 1.125x
    rows = _rows(_export(evolve, tmp_path / "pkg", mha, gqa, "--db", db), "forward", 1)
    assert rows[(64, False, 1)]["program"] == gqa_program and rows[(64, False, 1)]["task"] == "gqa_fwd"
    assert rows[(64, True, 1)]["program"] == seed


def test_each_runs_kernels_are_retimed_by_a_judge_of_its_task(archive: Archive, seed_source: str,
                                                              tmp_path: Path) -> None:
    """Re-timed, the backward seed is 1.2x at D128 causal too: that bucket now runs it."""
    mha, _, _ = measured_run(archive, seed_source)
    gqa, _ = gqa_run(archive)
    bwd, bwd_program = bwd_run(archive)
    judges: dict[str, FakeJudge] = {}

    def judge_for(task: Task) -> FakeJudge:
        def verdict(source: str) -> Any:
            if task.name == "attn_bwd":
                return measured(lambda c: 480.0 if c["head_dim"] == 128 and c["causal"] else 300.0, task=task,
                                baseline="sdpa default (cudnn) backward")
            return measured(lambda c: 500.0, task=task)
        judges[task.name] = FakeJudge(verdict)
        return judges[task.name]

    out = tmp_path / "pkg"
    export(archive, [mha, gqa, bwd], out, "attn", judge_for=judge_for)
    assert sorted(judges) == ["attn_bwd", "gqa_fwd", "mha_fwd"]
    assert judges["attn_bwd"].checked == [BWD.seed_path().read_text()]
    assert len(judges["mha_fwd"].checked) == 2 and len(judges["gqa_fwd"].checked) == 1
    data = json.loads((out / "attn" / "dispatch.json").read_text())
    for (d, causal, _), row in _rows(data, "backward", 1).items():
        assert row["retimed"] is True
        assert (row["kernel"] == f"program_{bwd_program}") is (d == 128 and causal), row
    assert all(r["kernel"] for r in _rows(data, "forward", 4).values())  # 1.25x re-timed


def test_retiming_refuses_before_checking_when_a_judge_is_on_another_gpu(archive: Archive, seed_source: str,
                                                                         tmp_path: Path) -> None:
    mha, _, _ = measured_run(archive, seed_source)
    bwd, _ = bwd_run(archive)
    judges: list[FakeJudge] = []

    def judge_for(task: Task) -> FakeJudge:
        judges.append(FakeJudge(lambda source: measured(lambda c: 500.0, task=task),
                                device="NVIDIA H200" if task.name == "attn_bwd" else "NVIDIA H100 80GB HBM3"))
        return judges[-1]

    with pytest.raises(UserError, match="this machine has a NVIDIA H200"):
        export(archive, [mha, bwd], tmp_path / "pkg", "attn", judge_for=judge_for)
    assert all(not j.checked for j in judges)
