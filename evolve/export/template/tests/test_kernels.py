"""The copied kernels: verbatim, and equal to the naive reference on every (head_dim, causal,
group) the dispatch table sends to them (backward kernels: to the naive reference's float64
gradients); a call in a kernel's bucket runs it, not torch's SDPA, grouped-query calls too."""

from __future__ import annotations

import hashlib
import math
from importlib import resources

import pytest
import torch
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
    name, head_dim, causal, group = variant
    forward = attention.dispatch.kernel_module(name).forward
    scale = 0.7 / math.sqrt(head_dim)
    b, h, n = shape
    for dtype in dtypes:
        q, k, v = qkv((b, h * group, n, head_dim), dtype, device, group=group)
        out = forward(q, k, v, causal, scale)
        ref = attention.naive.naive_attention(q.double(), k.double(), v.double(), causal, scale)
        assert out.dtype == dtype and out.device.type == device
        assert_close(out, ref, dtype)


# No length 1: with one key, dq and dk are exactly zero (as the attn_bwd harness skips it on GPUs).
BACKWARD_SHAPES = [(2, 1, 2), (1, 2, 37), (1, 1, 150)]


@pytest.mark.parametrize("shape", BACKWARD_SHAPES, ids=[f"B{b}H{h}N{n}" for b, h, n in BACKWARD_SHAPES])
def test_backward_kernel_matches_naive_gradients(attention, device, dtypes, backward_variant, shape) -> None:
    """Given o and the logsumexp as the package's forward provides them, dq, dk and dv equal the
    float64 gradients of the naive reference."""
    name, head_dim, causal, _ = backward_variant
    backward = attention.dispatch.kernel_module(name).forward
    scale = 0.7 / math.sqrt(head_dim)
    for dtype in dtypes:
        q, k, v = qkv((*shape, head_dim), dtype, device)
        do = qkv((*shape, head_dim), dtype, device, seed=5)[0]
        o, lse = attention.ops._forward_with_lse(q, k, v, causal, scale, True)
        grads = backward(q, k, v, o, do, lse, causal, scale)
        exact = [t.double().requires_grad_() for t in (q, k, v)]
        attention.naive.naive_attention(*exact, causal, scale).backward(do.double())
        for ours, ref in zip(grads, exact):
            assert ours.dtype == dtype and ours.shape == ref.shape
            assert_close(ours, ref.grad, dtype, scale=4)


def test_covered_call_runs_the_kernels(attention, device, dtypes, routed, sdpa_calls) -> None:
    """strict=True: a fallback would raise; and torch's SDPA is never called."""
    d, causal, n = routed.head_dim, routed.causal, routed.seq(45)
    for dtype in dtypes:
        q, k, v = qkv((2, 3, n, d), dtype, device)
        out = attention.scaled_dot_product_attention(q, k, v, is_causal=causal, strict=True)
        ref = attention.naive.naive_attention(q.double(), k.double(), v.double(), causal, 1 / math.sqrt(d))
        assert_close(out, ref, dtype)
    assert not sdpa_calls


def test_grouped_query_call_runs_the_kernels(attention, device, dtypes, gqa_routed, sdpa_calls) -> None:
    """enable_gqa=True with a measured group runs its kernel, equal to the naive reference."""
    d, causal, n, group = gqa_routed.head_dim, gqa_routed.causal, gqa_routed.seq(45), gqa_routed.group
    for dtype in dtypes:
        q, k, v = qkv((2, 2 * group, n, d), dtype, device, group=group)
        out = attention.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True, strict=True)
        ref = attention.naive.naive_attention(q.double(), k.double(), v.double(), causal, 1 / math.sqrt(d))
        assert_close(out, ref, dtype)
    assert not sdpa_calls


def test_grouped_query_call_of_an_unmeasured_group_falls_back(attention, device, dtypes, gqa_routed) -> None:
    """Another group at the same head_dim, mode and dtype is not served by the measured one's rows."""
    d, causal, n = gqa_routed.head_dim, gqa_routed.causal, gqa_routed.seq(45)
    dtype = dtypes[0]
    group = next(g for g in range(2, 9) if not attention.TABLE.covers(d, causal, dtype, g))
    q, k, v = qkv((1, group, n, d), dtype, device, group=group)
    with pytest.warns(attention.AttentionFallbackWarning, match=f"grouped-query attention with group {group}"):
        out = attention.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
    torch.testing.assert_close(out, torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                                                                     enable_gqa=True))


def test_transposed_inputs_give_the_same_result(attention, device, dtypes, routed) -> None:
    """Models often hand over (batch, seq, heads, head_dim) storage viewed as (batch, heads, ...)."""
    d, causal, n = routed.head_dim, routed.causal, routed.seq(45)
    dtype = dtypes[0]
    q, k, v = (t.transpose(1, 2) for t in qkv((2, n, 3, d), dtype, device))
    out = attention.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=0.3, strict=True)
    ref = attention.naive.naive_attention(q.double(), k.double(), v.double(), causal, 0.3)
    assert_close(out, ref, dtype)
