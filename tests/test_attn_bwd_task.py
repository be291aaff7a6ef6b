"""``attn_bwd`` on the CPU: its reference is autograd's gradient, its derived inputs (o, lse) are
reproducible and refreshed in place, its seed passes the whole cascade in the interpreter for
any pair of tile sizes, and wrong gradients fail, each named."""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from evolve import feasibility, tunables
from harness.checker import Checker, CheckOptions
from harness.compare import compare_outputs, compare_returned
from harness.device import detect
from harness.static_gate import check_source
from harness.task import get_task
from harness.tasks.attn_bwd import naive_attention_backward, naive_forward
from harness.tasks.mha_fwd import case, sm_scale_of

ROOT = Path(__file__).resolve().parents[1]
BWD_SEED = ROOT / "seeds" / "attn_bwd.py"
TASK = get_task("attn_bwd")


def _seed() -> ModuleType:
    spec = importlib.util.spec_from_file_location("attn_bwd_seed_under_test", BWD_SEED)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bwd_checker() -> Checker:
    return Checker("attn_bwd", CheckOptions(total_timeout_s=240), platform=detect(force_interpreter=True))


@pytest.mark.parametrize("causal", [False, True])
def test_the_naive_backward_is_autograds_gradient(causal: bool) -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v, do = (torch.randn(2, 3, 37, 16, generator=g, dtype=torch.float64) for _ in range(4))
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = torch.nn.functional.scaled_dot_product_attention(*leaves, is_causal=causal, scale=0.3)
    expected = torch.autograd.grad(out, leaves, do)
    for got, want in zip(naive_attention_backward(q, k, v, do, causal, 0.3), expected):
        assert torch.allclose(got, want, atol=1e-12)
    o, lse = naive_forward(q, k, v, causal, 0.3)
    assert torch.allclose(o, out.detach(), atol=1e-12)
    s = (q @ k.transpose(-1, -2) * 0.3).masked_fill(torch.ones(37, 37).triu(1).bool() & causal, float("-inf"))
    assert torch.allclose(lse, torch.logsumexp(s, -1), atol=1e-12)


def test_o_and_lse_are_derived_from_q_k_v_and_refreshed_in_place() -> None:
    c = case(1, 2, 29, 32, True, "float16", sm_scale=0.2)
    inputs = TASK.make_inputs(c, 5, "cpu")
    assert [t.dtype for t in inputs] == [torch.float16] * 5 + [torch.float32]
    assert all(torch.equal(a, b) for a, b in zip(inputs, TASK.make_inputs(c, 5, "cpu")))

    def consistent(ts: list[torch.Tensor]) -> bool:
        o, lse = naive_forward(*(t.double() for t in ts[:3]), True, sm_scale_of(c))
        return torch.equal(ts[3], o.half()) and torch.equal(ts[5], lse.float())

    assert consistent(inputs)
    pointers = [t.data_ptr() for t in inputs]
    TASK.refill_inputs(inputs, c, 6)
    assert all(torch.equal(a, b) for a, b in zip(inputs, TASK.make_inputs(c, 6, "cpu")))
    before = [t.clone() for t in inputs]
    TASK.randomize(inputs, c, torch.Generator().manual_seed(1))
    assert [t.data_ptr() for t in inputs] == pointers
    assert not any(torch.equal(a, b) for a, b in zip(inputs, before)) and consistent(inputs)


def test_the_seed_passes_attn_bwd(bwd_checker: Checker) -> None:
    verdict = bwd_checker.check(BWD_SEED.read_text())
    assert verdict.passed, verdict.reason
    cases = [r.shape for r in verdict.shape_results]
    assert {c["head_dim"] for c in cases} == {32, 64, 128} and {c["dtype"] for c in cases} == {"float16", "float32"}
    assert {c["causal"] for c in cases} == {False, True} and max(c["seq"] for c in cases) > 128


PAIRS = [(16, 32), (32, 16), (16, 16)]  # (BLOCK_M, BLOCK_N)


def tile_failures() -> list[str]:
    """Each tile-size pair, causal and not, on strided inputs; run in a fresh process (see below)."""
    seed = _seed()
    failures = []
    for (block_m, block_n), causal in itertools.product(PAIRS, (False, True)):
        for key in seed.TUNABLES:
            seed.TUNABLES[key] = {**seed.TUNABLES[key], "BLOCK_M": block_m, "BLOCK_N": block_n}
        c = case(2, 2, 77, 48, causal, "float16")
        inputs = TASK.make_inputs(c, 3, "cpu")
        # (B, N, H, D) memory seen as (B, H, N, D): strides a kernel must not assume away.
        strided = [t.transpose(1, 2).contiguous().transpose(1, 2) for t in inputs]
        cmp = compare_returned(TASK, TASK.call(seed.forward, strided, c), TASK.reference(inputs, c), c)
        if not cmp.ok:
            failures.append(f"BLOCK_M {block_m} BLOCK_N {block_n}{' causal' if causal else ''}: {cmp.note}")
    return failures


def test_the_seed_is_right_for_any_pair_of_tile_sizes_and_strided_inputs() -> None:
    """Where the causal phases start and stop depends on both tile sizes, which the search moves
    apart. In a process of its own: Triton's interpreter fails nested ``@triton.jit`` calls in a
    pytest process that has run other tests (tests/test_seed_switches.py)."""
    code = "from tests.test_attn_bwd_task import tile_failures; print(tile_failures())"
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ, "TRITON_INTERPRET": "1"}, cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout[-3000:]


def test_zeros_for_dq_fail_even_where_every_gradient_is_small() -> None:
    c = case(1, 2, 40, 64, True, "float16", do_scale=1e-3)
    inputs = TASK.make_inputs(c, 2, "cpu")
    refs = TASK.reference(inputs, c)
    assert compare_outputs(refs, refs, TASK.outputs(c)).ok
    wrong = compare_returned(TASK, (torch.zeros_like(inputs[0]), refs[1], refs[2]), refs, c)
    assert not wrong.ok and wrong.note.startswith("dq: relative error")


def test_a_kernel_whose_dk_misses_the_scale_fails_the_cascade_by_name(bwd_checker: Checker) -> None:
    right = "(dk * sm_scale).to(DK.dtype.element_ty)"
    source = BWD_SEED.read_text()
    assert right in source
    verdict = bwd_checker.check(source.replace(right, "dk.to(DK.dtype.element_ty)"))
    assert not verdict.passed and verdict.reason.startswith("smoke test: dk: relative error"), verdict.reason


def test_the_gate_and_the_tuning_operators_take_the_seed() -> None:
    source = BWD_SEED.read_text()
    assert check_source(source, TASK.signature).ok
    assert not check_source((ROOT / "seeds" / "mha_fwd.py").read_text(), TASK.signature).ok  # forward's arity
    groups = tunables.entries(tunables.find(source))
    assert len(groups) == 12 and "128,causal,16384" in groups
    for name, entry in groups.items():
        assert set(entry) == {"BLOCK_M", "BLOCK_N", "num_warps", "num_stages"}
        assert feasibility.feasible({n: t.value for n, t in entry.items()}, feasibility.head_dim_of(name))


def test_work_is_counted_as_five_products_and_benchmarked_as_the_forward_is() -> None:
    fwd = get_task("mha_fwd")
    c = case(2, 4, 1000, 64, True, "bfloat16")
    assert TASK.flops(c) == 2.5 * fwd.flops(c)
    assert TASK.benchmark_cases() == fwd.benchmark_cases() and TASK.seed_path() == BWD_SEED
    assert TASK.label(case(1, 2, 40, 64, True, "float16", do_scale=1e-3)).endswith("causal do x0.001")
