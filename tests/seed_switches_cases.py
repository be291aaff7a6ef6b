"""The seed under each of its constexpr switches, in Triton's CPU interpreter, against the naive
reference: small tiles so that short ragged sequences still cross several key tiles, both
phases and, for the persistent grid, several tiles per program; fp32 and fp16, causal and not.
Also how a call picks its TUNABLES entry. Run by tests/test_seed_switches.py in a fresh process."""

from __future__ import annotations

import importlib.util
import itertools
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
import torch

from evolve import tunables
from evolve.buckets import length_buckets
from harness.tasks.mha_fwd import TOLERANCES, naive_attention

from .conftest import SEED

SMALL = {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_N_MASKED": 32, "num_warps": 4, "num_stages": 2,
         "WARP_SPEC": 0, "TMA": 0, "ORDER": 0, "LAZY_RESCALE": 0, "EXP2": 1}
# (batch, heads, seq, head_dim, causal, dtype): ragged lengths, a head_dim below its block's
SHAPES = [(1, 2, 77, 64, True, torch.float32), (2, 1, 45, 32, False, torch.float16),
          (1, 1, 70, 48, True, torch.float16), (1, 2, 33, 64, False, torch.float32)]
ALONE = [{"WARP_SPEC": 1}, {"TMA": 1}, {"ORDER": 1}, {"ORDER": 2}, {"LAZY_RESCALE": 1}, {"EXP2": 0},
         {"BLOCK_N_MASKED": 16}, {"BLOCK_N_MASKED": 64}, {"BLOCK_N": 16, "BLOCK_N_MASKED": 64}]
TOLERANCE = {torch.float32: TOLERANCES["float32"], torch.float16: TOLERANCES["float16"]}


@pytest.fixture(scope="module")
def seed() -> Iterator[ModuleType]:
    """The seed in Triton's interpreter: ``triton.jit`` reads the switch when it decorates, and
    Triton's own modules again while kernels run, so it stays on for this module's tests."""
    saved = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        spec = importlib.util.spec_from_file_location("seed_under_test", SEED)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        if saved is None:
            os.environ.pop("TRITON_INTERPRET")
        else:
            os.environ["TRITON_INTERPRET"] = saved


def inputs(shape: tuple[Any, ...], scale: float = 1.0, seed: int = 0) -> list[torch.Tensor]:
    b, h, n, d, _, dtype = shape
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(b, h, n, d, generator=g) * s).to(dtype) for s in (scale, scale, 1.0)]


def attend(seed: ModuleType, cfg: dict[str, int], q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
           causal: bool, sm_scale: float = 0.3) -> torch.Tensor:
    """The seed's launch under ``cfg`` into a NaN-filled output: a row left unwritten shows."""
    out = torch.full_like(q, float("nan"))
    seed._launch(q, k, v, out, causal, sm_scale, cfg, seed._programs(q, cfg))
    return out


def assert_matches_reference(out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool,
                             sm_scale: float = 0.3) -> None:
    ref = naive_attention(q.double(), k.double(), v.double(), causal, sm_scale)
    tol = TOLERANCE[q.dtype]
    torch.testing.assert_close(out.double(), ref, atol=tol.atol, rtol=tol.rtol)


@pytest.mark.parametrize("change", ALONE, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_each_switch_alone_matches_the_reference(seed: ModuleType, change: dict[str, int]) -> None:
    cfg = {**SMALL, **change}
    for shape in SHAPES:
        q, k, v = inputs(shape)
        assert_matches_reference(attend(seed, cfg, q, k, v, shape[4]), q, k, v, shape[4])


@pytest.mark.slow
def test_every_combination_of_switches_matches_the_reference(seed: ModuleType) -> None:
    names = sorted(n for n in tunables.SWITCHES if n in SMALL)
    for combo in itertools.product(*(tunables.LADDERS[n] for n in names)):
        cfg = {**SMALL, **dict(zip(names, combo)), "BLOCK_N_MASKED": 16}
        shape = SHAPES[sum(combo) % len(SHAPES)]
        q, k, v = inputs(shape)
        assert_matches_reference(attend(seed, cfg, q, k, v, shape[4]), q, k, v, shape[4])


@pytest.mark.parametrize("exp2", [1, 0])
def test_lazy_rescaling_stays_exact_whether_the_max_creeps_or_jumps(seed: ModuleType, exp2: int) -> None:
    """Scores rising slowly along the keys keep the stale max for several tiles (p grows up to
    2**8 before a rescale); large logits (spread ~150) rescale on almost every tile."""
    cfg = {**SMALL, "LAZY_RESCALE": 1, "EXP2": exp2}
    n, d = 96, 32
    q = torch.zeros(1, 1, n, d)
    q[..., 0] = 1.0
    k = torch.randn(1, 1, n, d) * 0.1
    k[..., 0] = torch.linspace(0.0, 40.0, n)  # scores rise ~5.8 (log2 units) per 32-key tile: below 8
    v = torch.randn(1, 1, n, d)
    for dtype in (torch.float32, torch.float16):
        for causal in (False, True):
            args = [t.to(dtype) for t in (q, k, v)]
            assert_matches_reference(attend(seed, cfg, *args, causal), *args, causal)
    q, k, v = inputs((1, 2, 70, 64, True, torch.float16), scale=12.0)
    for causal in (False, True):
        assert_matches_reference(attend(seed, cfg, q, k, v, causal, 0.125), q, k, v, causal, 0.125)


def test_tma_reads_strided_views_and_other_layouts_fall_back_to_pointer_loads(
        seed: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in seed.TUNABLES:
        monkeypatch.setitem(seed.TUNABLES, key, {**SMALL, "TMA": 1})
    q, v = inputs((1, 2, 40, 64, True, torch.float16))[::2]
    k = torch.randn(1, 40, 2, 64).to(torch.float16).transpose(1, 2)  # heads interleaved, rows 256 B apart
    assert not k.is_contiguous() and seed._tma_ready(k, v)
    v_columns = torch.randn(1, 2, 64, 40).to(torch.float16).transpose(2, 3)  # head_dim not unit-stride
    odd = inputs((1, 1, 37, 20, False, torch.float16))  # 40-byte rows
    assert not seed._tma_ready(v_columns) and not seed._tma_ready(odd[1])
    for args, causal in (((q, k, v), True), ((q, k, v_columns), True), (odd, False)):
        assert_matches_reference(seed.forward(*args, causal, 0.3), *args, causal)


def test_a_call_takes_its_shapes_entry_and_the_exports_length_bucket(seed: ModuleType) -> None:
    lengths = sorted({n for _, _, n in seed.TUNABLES})
    for bucket in length_buckets(lengths):
        for n in (bucket.min_seq, bucket.max_seq or 10 * bucket.min_seq):
            for head_dim, served in ((16, 64), (64, 64), (65, 128), (100, 128), (128, 128)):
                for causal in (False, True):
                    want = seed.TUNABLES[(served, "causal" if causal else "full", bucket.measured_seq)]
                    assert seed._config(head_dim, causal, n) is want
    with pytest.raises(ValueError, match="head_dim 160"):
        seed._config(160, True, 1024)


def test_forward_serves_any_length(seed: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in seed.TUNABLES:
        monkeypatch.setitem(seed.TUNABLES, key, {**SMALL, "ORDER": 2, "LAZY_RESCALE": 1})
    for n in (1, 5, 31, 160):
        q, k, v = inputs((1, 1, n, 16, True, torch.float32))
        assert_matches_reference(seed.forward(q, k, v, True, 0.3), q, k, v, True)
