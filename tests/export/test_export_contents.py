"""What ``evolve export`` writes: per shape the program measured surest there, a bucket running
it only when it is confirmed faster than torch's default SDPA, verbatim sources with their
provenance, a reference that means what the harness's does, and nothing beyond torch and triton.

These export with ``--no-retime`` (no GPU here): routing by the archived intervals.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from archive import Archive
from harness.tasks.mha_fwd import naive_attention
from tests.export.factories import BASELINE, BASELINE_TFLOPS, measured, measured_run, seed_variant


def _export(evolve, out: Path, *args: str | int) -> dict[str, Any]:
    result = evolve("export", *args, "--out", out, "--name", "attn", "--no-retime")
    assert result.code == 0, result
    return json.loads((out / "attn" / "dispatch.json").read_text())


def _rows(data: dict[str, Any], dtype: str = "bfloat16") -> dict[tuple[int, bool, int], dict[str, Any]]:
    return {(r["head_dim"], r["causal"], r["min_seq"]): r for r in data["table"] if r["dtype"] == dtype}


def test_each_row_names_the_program_measured_on_its_shape_with_its_interval(evolve, archive: Archive, db: str,
                                                                           seed_source: str, tmp_path: Path) -> None:
    run, seed, variant = measured_run(archive, seed_source)
    data = _export(evolve, tmp_path / "pkg", run, "--db", db)
    spans = [{"min_seq": 1, "max_seq": 2047, "measured_seq": 1024},
             {"min_seq": 2048, "max_seq": 8191, "measured_seq": 4096},
             {"min_seq": 8192, "max_seq": None, "measured_seq": 16384}]
    assert data["buckets"] == [{"direction": "forward", "group": 1, "head_dim": d, "causal": c, **b}
                               for d in (64, 128) for c in (False, True) for b in spans]
    rows = _rows(data)
    assert len(rows) == 2 * 2 * 3  # head_dim x causal x bucket
    for (d, _, min_seq), row in rows.items():
        short = min_seq == 1
        tflops = (450 if d == 64 else 404) if short else 500
        assert row["program"] == (seed if short else variant), row
        assert row["measured_seq"] == {1: 1024, 2048: 4096, 8192: 16384}[min_seq]
        assert row["tflops"] == tflops and row["baseline"] == BASELINE and row["retimed"] is False
        assert row["speedup"] == pytest.approx(tflops / BASELINE_TFLOPS, abs=1e-4)
        assert (row["speedup_low"], row["speedup_high"]) == pytest.approx((row["speedup"] * 0.98, row["speedup"] * 1.02),
                                                                          abs=1e-4)
        assert row["samples"] == 30 and row["archived"]["speedup"] == row["speedup"]
    assert data["retimed"] is None
    assert "Not re-timed" in (tmp_path / "pkg" / "README.md").read_text()


def test_bucket_not_confirmed_faster_calls_the_default(evolve, archive: Archive, db: str, seed_source: str,
                                                       tmp_path: Path) -> None:
    """The seed is the best measured at D128 N1024, but 1.01x [0.99, 1.03] is no confirmed gain."""
    run, seed, variant = measured_run(archive, seed_source)
    out = tmp_path / "pkg"
    data = _export(evolve, out, run, "--db", db)
    for dtype in ("bfloat16", "float16"):
        for (d, _, min_seq), row in _rows(data, dtype).items():
            default = d == 128 and min_seq == 1
            assert row["routed_to_default"] is default and (row["kernel"] is None) is default, row
            if default:
                assert row["program"] == seed and "not confirmed more than 1% faster" in row["why"]
            else:
                assert row["kernel"] == f"program_{row['program']}" and "confirmed faster" in row["why"]
    assert sorted(data["kernels"]) == sorted([f"program_{seed}", f"program_{variant}"])
    readme = (out / "README.md").read_text()
    assert "| 1 | 128 | no | bfloat16 | 1-2047 | **torch default** |" in readme
    assert "10 of the 12 benchmark shapes run an evolved kernel" in readme


def test_surest_interval_beats_a_faster_median(evolve, archive: Archive, db: str, seed_source: str,
                                               tmp_path: Path) -> None:
    """A lucky median with a wide interval loses to a slightly slower, sure one."""
    run, _, variant = measured_run(archive, seed_source)
    lucky, _ = archive.add_program(run, seed_variant(seed_source).replace('"num_stages": 3', '"num_stages": 2'),
                                   operator="mutate", generation=2)
    archive.add_evaluation(lucky, measured(lambda c: 540, spread=0.25), key="lucky", simulated=False)
    rows = _rows(_export(evolve, tmp_path / "pkg", run, "--db", db))
    for (_, _, min_seq), row in rows.items():
        if min_seq > 1:
            assert row["program"] == variant, row  # 1.25 [1.225, 1.275] beats 1.35 [1.01, 1.69]


def test_surest_across_runs_wins(evolve, archive: Archive, db: str, seed_source: str, tmp_path: Path) -> None:
    first, seed, variant = measured_run(archive, seed_source)
    second = archive.create_run("mha_fwd", {}, simulated=False)
    faster, _ = archive.add_program(second, seed_variant(seed_source).replace('"num_stages": 3', '"num_stages": 2'),
                                    operator="mutate")
    archive.add_evaluation(faster, measured(lambda c: 600 if c["head_dim"] == 128 and c["seq"] == 16384 else 100),
                           key="faster", simulated=False)
    data = _export(evolve, tmp_path / "pkg", first, second, "--db", db)
    kernels = {r["kernel"] for r in data["table"]} - {None}
    assert kernels == {f"program_{seed}", f"program_{variant}", f"program_{faster}"}
    for (d, _, min_seq), row in _rows(data).items():
        if d == 128 and min_seq == 8192:
            assert row["kernel"] == f"program_{faster}" and row["run"] == second
    assert data["runs"] == [first, second] and data["kernels"][f"program_{faster}"]["run"] == second


def test_float16_uses_the_bfloat16_choice_it_was_checked_for(evolve, archive: Archive, db: str, seed_source: str,
                                                            tmp_path: Path) -> None:
    run, _, _ = measured_run(archive, seed_source)
    data = _export(evolve, tmp_path / "pkg", run, "--db", db)
    bf16, fp16 = _rows(data, "bfloat16"), _rows(data, "float16")
    assert fp16.keys() == bf16.keys()
    for key, row in fp16.items():
        assert row["timed_as"] == "bfloat16"
        assert (row["kernel"], row["program"], row["speedup_low"]) == \
            (bf16[key]["kernel"], bf16[key]["program"], bf16[key]["speedup_low"])


def test_kernels_are_verbatim_with_provenance(evolve, archive: Archive, db: str, seed_source: str,
                                              tmp_path: Path) -> None:
    run, seed, variant = measured_run(archive, seed_source)
    out = tmp_path / "pkg"
    data = _export(evolve, out, run, "--db", db)
    assert data["device"] == {"name": "NVIDIA H100 80GB HBM3", "compute_capability": [9, 0]}
    for program in (seed, variant):
        info = archive.get_program(program)
        entry = data["kernels"][f"program_{program}"]
        assert (out / "attn" / entry["file"]).read_bytes() == info.source.encode()
        assert entry["sha256"] == info.content_hash
        assert (entry["run"], entry["program"], entry["device"], entry["torch"], entry["triton"]) == \
            (run, program, "NVIDIA H100 80GB HBM3", "2.11.0+cu130", "3.6.0")
        assert entry["measured_at"] == info.latest_evaluation.created_at.isoformat(timespec="seconds")
    readme = (out / "README.md").read_text()
    assert (f"| `program_{variant}` | mha_fwd | `forward(q, k, v, causal: bool, sm_scale: float) -> o` | {run} | "
            f"{variant} | mutate, generation 1 |") in readme
    assert "| 1 | 128 | yes | bfloat16 | 8192+ | `program_" in readme


def test_package_reference_agrees_with_the_harness(evolve, archive: Archive, db: str, seed_source: str,
                                                   tmp_path: Path) -> None:
    run, _, _ = measured_run(archive, seed_source)
    out = tmp_path / "pkg"
    _export(evolve, out, run, "--db", db)
    spec = importlib.util.spec_from_file_location("exported_naive", out / "attn" / "naive.py")
    assert spec is not None and spec.loader is not None
    naive = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(naive)
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 37, 16, generator=g, dtype=torch.float64) for _ in range(3))
    for causal in (False, True):
        torch.testing.assert_close(naive.naive_attention(q, k, v, causal, 0.3), naive_attention(q, k, v, causal, 0.3))


def test_package_imports_only_torch_triton_and_the_standard_library(evolve, archive: Archive, db: str,
                                                                    seed_source: str, tmp_path: Path) -> None:
    run, _, _ = measured_run(archive, seed_source)
    out = tmp_path / "pkg"
    _export(evolve, out, run, "--db", db)
    allowed = {"torch", "triton", "attn", "pytest", "helpers", *sys.stdlib_module_names}
    for path in out.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.relative_to(out)} imports {name}"
    pyproject = (out / "pyproject.toml").read_text()
    assert 'dependencies = ["torch>=2.5", "triton>=3.0"]' in pyproject
