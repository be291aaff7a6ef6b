"""Backward (recomputed through torch's SDPA) against the naive reference's gradients."""

from __future__ import annotations

import math

from helpers import assert_close, qkv


def test_gradients_match_naive_reference(attention, device, dtypes, routed) -> None:
    d, causal, n = routed.head_dim, routed.causal, routed.seq(33)
    for dtype in dtypes:
        q, k, v = qkv((1, 2, n, d), dtype, device, requires_grad=True)
        grad = qkv((1, 2, n, d), dtype, device, seed=7)[0]
        attention.scaled_dot_product_attention(q, k, v, is_causal=causal, strict=True).backward(grad)
        exact = [t.detach().double().requires_grad_() for t in (q, k, v)]
        attention.naive.naive_attention(*exact, causal, 1 / math.sqrt(d)).backward(grad.double())
        for ours, ref in zip((q, k, v), exact):
            assert_close(ours.grad, ref.grad, dtype, scale=4)
