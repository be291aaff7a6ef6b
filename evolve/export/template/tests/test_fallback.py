"""Calls the kernels do not cover run torch's SDPA after one warning per reason; strict mode
(argument or environment variable) raises instead."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from helpers import qkv

Call = tuple[list[torch.Tensor], dict[str, Any]]


def _covered(attention) -> tuple[int, bool]:
    row = next(r for r in attention.TABLE.data["table"] if r["direction"] == "forward")
    return row["head_dim"], row["causal"]


def _unmeasured_group(attention, dtype: torch.dtype) -> int:
    return next(g for g in range(2, 9) if not attention.TABLE.covers(*_covered(attention), dtype, g))


def _uncovered_dtype(attention) -> torch.dtype:
    return next(d for d in (torch.float32, torch.float64) if not attention.TABLE.covers(*_covered(attention), d))


def _cases(attention, device: str, dtype: torch.dtype) -> dict[str, Callable[[], Call]]:
    d, causal = _covered(attention)
    base = {"is_causal": causal}
    cases: dict[str, Callable[[], Call]] = {
        "attn_mask": lambda: (qkv((1, 2, 9, d), dtype, device),
                              {"attn_mask": torch.zeros(9, 9, dtype=dtype, device=device)}),
        "dropout_p": lambda: (qkv((1, 2, 9, d), dtype, device), {**base, "dropout_p": 0.5}),
        "float": lambda: (qkv((1, 2, 9, d), _uncovered_dtype(attention), device), base),
        "head_dim 48": lambda: (qkv((1, 2, 9, 48), dtype, device), base),
        "grouped-query": lambda: (qkv((1, _unmeasured_group(attention, dtype), 9, d), dtype, device,
                                      group=_unmeasured_group(attention, dtype)), {**base, "enable_gqa": True}),
        "lengths differ": lambda: ([qkv((1, 2, 9, d), dtype, device)[0], *qkv((1, 2, 12, d), dtype, device, seed=1)[1:]],
                                   base),
    }
    if device == "cuda":
        cases["cpu tensors"] = lambda: (qkv((1, 2, 9, d), dtype, "cpu"), base)
    return cases


CASE_NAMES = ["attn_mask", "dropout_p", "float", "head_dim 48", "grouped-query", "lengths differ", "cpu tensors"]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_uncovered_call_falls_back_with_one_warning_per_reason(attention, device, dtypes, case) -> None:
    cases = _cases(attention, device, dtypes[0])
    if case not in cases:
        pytest.skip(f"the kernels run on {device} tensors here")
    inputs, kwargs = cases[case]()
    with pytest.warns(attention.AttentionFallbackWarning, match=case.split()[0]):
        out = attention.scaled_dot_product_attention(*inputs, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error", attention.AttentionFallbackWarning)
        again = attention.scaled_dot_product_attention(*inputs, **kwargs)
    assert out.shape == F.scaled_dot_product_attention(*inputs, **kwargs).shape
    if "dropout_p" not in kwargs:
        torch.testing.assert_close(again, F.scaled_dot_product_attention(*inputs, **kwargs))


def test_strict_mode_raises_instead_of_falling_back(attention, device, dtypes) -> None:
    for case, make in _cases(attention, device, dtypes[0]).items():
        inputs, kwargs = make()
        with pytest.raises(attention.AttentionFallbackError, match=case.split()[0]):
            attention.scaled_dot_product_attention(*inputs, **kwargs, strict=True)


def test_module_drops_dropout_outside_training(attention, device, dtypes) -> None:
    d, causal = _covered(attention)
    layer = attention.ScaledDotProductAttention(dropout_p=0.3, is_causal=causal, strict=True)
    inputs = qkv((1, 2, 9, d), dtypes[0], device)
    layer.eval()(*inputs)  # the kernels: no dropout in eval mode
    with pytest.raises(attention.AttentionFallbackError, match="dropout_p"):
        layer.train()(*inputs)


def test_strict_environment_variable(attention, device) -> None:
    """Read at import: a fresh interpreter with the variable set raises; strict=False overrides it."""
    code = (f"import torch, {attention.__name__} as a\n"
            "q = torch.zeros(1, 1, 4, 48, device='" + device + "')\n"
            "a.scaled_dot_product_attention(q, q, q, strict=False)\n"
            "a.scaled_dot_product_attention(q, q, q)\n")
    env = {**os.environ, attention.STRICT_ENV: "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "AttentionFallbackError" in done.stderr and "head_dim 48" in done.stderr
    assert done.stderr.count("AttentionFallbackWarning") == 1  # the strict=False call only warned


def test_other_gpu_architecture_falls_back(attention, dtypes, routed, monkeypatch) -> None:
    if not torch.cuda.is_available() or attention.ops.INTERPRET:
        pytest.skip("needs a CUDA GPU")
    d, causal, n = routed.head_dim, routed.causal, routed.seq(9)
    monkeypatch.setitem(attention.TABLE.device, "compute_capability", [1, 0])
    attention.ops._architecture_mismatch.cache_clear()
    try:
        with pytest.warns(attention.AttentionFallbackWarning, match="sm_10"):
            attention.scaled_dot_product_attention(*qkv((1, 2, n, d), dtypes[0], "cuda"), is_causal=causal)
    finally:
        monkeypatch.undo()
        attention.ops._architecture_mismatch.cache_clear()
