"""``gqa_fwd`` through the interpreter path: its reference is SDPA's ``enable_gqa``, the seed (which
serves both tasks) passes it, and a kernel that pairs query heads with the wrong k/v head fails."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from harness.checker import Checker, CheckOptions
from harness.device import detect
from harness.task import get_task, task_names

from .conftest import SEED


@pytest.fixture(scope="module")
def gqa_checker() -> Checker:
    return Checker("gqa_fwd", CheckOptions(total_timeout_s=240), platform=detect(force_interpreter=True))


def test_gqa_fwd_is_a_task_whose_reference_is_sdpa_with_grouped_heads() -> None:
    assert {"mha_fwd", "gqa_fwd"} <= set(task_names())
    task = get_task("gqa_fwd")
    for trial in task.sweep("interpreter")[:3] + task.stability_trials("interpreter"):
        inputs = task.make_inputs(trial.case, 7, "cpu")
        assert [t.shape[1] for t in inputs] == [trial.case["heads"], trial.case["kv_heads"], trial.case["kv_heads"]]
        q, k, v = (t.double() for t in inputs)
        expected = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, is_causal=trial.case["causal"], scale=trial.case["sm_scale"], enable_gqa=True)
        assert torch.allclose(task.reference(inputs, trial.case)[0], expected, atol=1e-10), trial.label
    assert {(c["heads"], c["kv_heads"]) for c in task.benchmark_cases()} == {(32, 8)}


def test_the_seed_passes_gqa_fwd(gqa_checker: Checker) -> None:
    verdict = gqa_checker.check(SEED.read_text())
    assert verdict.passed, verdict.reason
    assert {r.shape["heads"] // r.shape["kv_heads"] for r in verdict.shape_results} >= {1, 2, 4, 8}


def test_a_kernel_pairing_query_heads_with_the_wrong_kv_head_fails(gqa_checker: Checker) -> None:
    right = "    off_kh = off_h // GROUP  # the k/v head its group of query heads shares"
    source = SEED.read_text()
    assert right in source
    verdict = gqa_checker.check(source.replace(right, "    off_kh = off_h % (H // GROUP)"))
    assert not verdict.passed and "relative error" in verdict.reason


def test_the_seed_refuses_kv_heads_that_do_not_divide_the_query_heads(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("seed_under_test", SEED)
    assert spec is not None and spec.loader is not None
    seed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seed)
    q, kv = torch.zeros(1, 6, 8, 64), torch.zeros(1, 4, 8, 64)
    with pytest.raises(ValueError, match="Hq a multiple of Hkv"):
        seed.forward(q, kv, kv, False, 0.125)
