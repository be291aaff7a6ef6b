"""The copied kernels: verbatim, and equal to the naive reference on every (head_dim, causal)
the dispatch table sends to them; a call in a kernel's bucket runs it, not torch's SDPA."""

from __future__ import annotations

import hashlib
import math
from importlib import resources

import pytest
from helpers import assert_close, qkv


def test_kernel_files_are_verbatim_copies_of_the_archive(attention) -> None:
    root = resources.files(attention.__name__)
    for info in attention.TABLE.kernels.values():
        data = root.joinpath(info["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == info["sha256"], f"{info['file']} differs from program {info['program']}"


# Lengths around the kernels' tiles: one row, a ragged tile, more than one tile.
SHAPES = [(2, 1, 1), (1, 2, 37), (1, 1, 150)]


@pytest.mark.parametrize("shape", SHAPES, ids=[f"B{b}H{h}N{n}" for b, h, n in SHAPES])
def test_kernel_matches_naive_reference(attention, device, dtypes, variant, shape) -> None:
    name, head_dim, causal = variant
    forward = attention.dispatch.kernel_module(name).forward
    scale = 0.7 / math.sqrt(head_dim)
    for dtype in dtypes:
        q, k, v = qkv((*shape, head_dim), dtype, device)
        out = forward(q, k, v, causal, scale)
        ref = attention.naive.naive_attention(q.double(), k.double(), v.double(), causal, scale)
        assert out.dtype == dtype and out.device.type == device
        assert_close(out, ref, dtype)


def test_covered_call_runs_the_kernels(attention, device, dtypes, routed, sdpa_calls) -> None:
    """strict=True: a fallback would raise; and torch's SDPA is never called."""
    d, causal, n = routed.head_dim, routed.causal, routed.seq(45)
    for dtype in dtypes:
        q, k, v = qkv((2, 3, n, d), dtype, device)
        out = attention.scaled_dot_product_attention(q, k, v, is_causal=causal, strict=True)
        ref = attention.naive.naive_attention(q.double(), k.double(), v.double(), causal, 1 / math.sqrt(d))
        assert_close(out, ref, dtype)
    assert not sdpa_calls


def test_transposed_inputs_give_the_same_result(attention, device, dtypes, routed) -> None:
    """Models often hand over (batch, seq, heads, head_dim) storage viewed as (batch, heads, ...)."""
    d, causal, n = routed.head_dim, routed.causal, routed.seq(45)
    dtype = dtypes[0]
    q, k, v = (t.transpose(1, 2) for t in qkv((2, n, 3, d), dtype, device))
    out = attention.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=0.3, strict=True)
    ref = attention.naive.naive_attention(q.double(), k.double(), v.double(), causal, 0.3)
    assert_close(out, ref, dtype)
