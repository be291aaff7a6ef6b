"""Gradients against the naive reference's float64 ones: through the evolved backward kernel in
buckets that run one (and then torch's SDPA is not called at all), by torch's default SDPA
everywhere else, grouped-query calls included."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import KernelCall, assert_close, qkv


def _check_gradients(attention, device: str, dtypes, call: KernelCall, heads: int = 2) -> None:
    d, causal, n, group = call.head_dim, call.causal, call.seq(33), call.group
    for dtype in dtypes:
        q, k, v = qkv((1, heads * group, n, d), dtype, device, requires_grad=True, group=group)
        grad = qkv((1, heads * group, n, d), dtype, device, seed=7)[0]
        out = attention.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=group > 1, strict=True)
        out.backward(grad)
        exact = [t.detach().double().requires_grad_() for t in (q, k, v)]
        attention.naive.naive_attention(*exact, causal, 1 / math.sqrt(d)).backward(grad.double())
        for ours, ref in zip((q, k, v), exact):
            assert ours.grad.shape == ref.shape
            assert_close(ours.grad, ref.grad, dtype, scale=4)


def test_gradients_match_naive_reference(attention, device, dtypes, routed) -> None:
    _check_gradients(attention, device, dtypes, routed)


def test_evolved_backward_gradients_match_naive_reference(attention, device, dtypes, evolved_backward,
                                                          sdpa_calls) -> None:
    """The forward is torch's flash op (it returns the logsumexp), the backward the evolved
    kernel: neither calls torch's scaled_dot_product_attention."""
    _check_gradients(attention, device, dtypes, evolved_backward)
    assert not sdpa_calls


def test_training_call_without_evolved_backward_runs_the_default_whole(attention, device, dtypes,
                                                                       no_evolved_backward, sdpa_calls,
                                                                       monkeypatch) -> None:
    """Its forward kernel is not launched: torch's SDPA runs the forward once and its own backward
    (no recompute), as fast as the default by construction."""
    launched: list[str] = []
    real = attention.ops._launch
    monkeypatch.setattr(attention.ops, "_launch", lambda name, *a: launched.append(name) or real(name, *a))
    _check_gradients(attention, device, dtypes, no_evolved_backward)
    assert not launched, f"launched {launched}"
    assert len(sdpa_calls) == len(dtypes), "one torch SDPA call per forward, none to recompute"


def test_grouped_query_gradients_match_naive_reference(attention, device, dtypes, gqa_routed) -> None:
    _check_gradients(attention, device, dtypes, gqa_routed)


def test_no_grad_call_runs_the_forward_tables_choice(attention, device, dtypes, evolved_backward, sdpa_calls,
                                                     monkeypatch) -> None:
    """Inputs that require grad under torch.no_grad() need no logsumexp: the forward op runs."""
    called: list[str] = []
    monkeypatch.setattr(attention.ops, "_forward_with_lse", lambda *a: called.append("lse"))
    d, causal, n = evolved_backward.head_dim, evolved_backward.causal, evolved_backward.seq(20)
    q, k, v = qkv((1, 2, n, d), dtypes[0], device, requires_grad=True)
    with torch.no_grad():
        attention.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert not called


def test_flash_refusal_computes_the_logsumexp_exactly_after_a_warning(attention, device, dtypes, evolved_backward,
                                                                      monkeypatch) -> None:
    """Where torch's flash forward does not take a call, the o and logsumexp the evolved backward
    reads come from the exact forward: the same gradients, one warning; strict mode raises."""
    name = "_scaled_dot_product_flash_attention" + ("_for_cpu" if device == "cpu" else "")

    def refuses(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("no kernel found for this input")

    monkeypatch.setattr(torch.ops.aten, name, refuses)
    d, causal, n = evolved_backward.head_dim, evolved_backward.causal, evolved_backward.seq(20)
    q, k, v = qkv((1, 2, n, d), dtypes[0], device, requires_grad=True)
    with pytest.raises(attention.AttentionFallbackError, match="flash forward does not take"):
        attention.scaled_dot_product_attention(q, k, v, is_causal=causal, strict=True)
    with pytest.warns(attention.AttentionFallbackWarning, match="flash forward does not take"):
        attention.scaled_dot_product_attention(q, k, v, is_causal=causal).sum().backward()
    exact = [t.detach().double().requires_grad_() for t in (q, k, v)]
    attention.naive.naive_attention(*exact, causal, 1 / math.sqrt(d)).sum().backward()
    for ours, ref in zip((q, k, v), exact):
        assert_close(ours.grad, ref.grad, dtypes[0], scale=4)
