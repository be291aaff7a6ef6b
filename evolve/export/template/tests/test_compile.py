"""torch.compile: a model using the library traces into one graph (no breaks), compiled results
and gradients equal eager ones (through the evolved backward too), fallbacks still warn and
strict mode still raises; the custom ops pass torch's opcheck; on a GPU, the ops replay
correctly from a CUDA graph."""

from __future__ import annotations

import warnings

import pytest
import torch
from helpers import qkv
from torch import nn


class TinyAttention(nn.Module):
    def __init__(self, attention, heads: int, head_dim: int, causal: bool, group: int = 1) -> None:
        super().__init__()
        width = heads * head_dim
        self.heads, self.kv_heads = heads, heads // group
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width // group)
        self.out = nn.Linear(width, width)
        self.attn = attention.ScaledDotProductAttention(is_causal=causal, enable_gqa=group > 1, strict=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, N, width]
        b, n, width = x.shape
        q = self.q(x).view(b, n, self.heads, -1).transpose(1, 2)
        k, v = self.kv(x).view(b, n, 2, self.kv_heads, -1).permute(2, 0, 3, 1, 4)
        return self.out(self.attn(q, k, v).transpose(1, 2).reshape(b, n, width))


def _model(attention, device: str, dtype: torch.dtype, call) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = TinyAttention(attention, 2 * call.group, call.head_dim, call.causal, call.group).to(device, dtype)
    return model, torch.randn(2, call.seq(20), 2 * call.group * call.head_dim, device=device, dtype=dtype)


def test_compiled_model_has_no_graph_breaks(attention, device, dtypes, routed) -> None:
    model, x = _model(attention, device, dtypes[0], routed)
    explained = torch._dynamo.explain(model)(x)
    assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons


def _compiled_matches_eager(attention, device: str, dtype: torch.dtype, call) -> None:
    model, x = _model(attention, device, dtype, call)
    eager = model(x)
    eager.float().square().sum().backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")(x)
    compiled.float().square().sum().backward()
    torch.testing.assert_close(compiled, eager)
    for p, g in zip(model.parameters(), eager_grads):
        torch.testing.assert_close(p.grad, g)


def test_compiled_model_matches_eager_forward_and_backward(attention, device, dtypes, routed) -> None:
    _compiled_matches_eager(attention, device, dtypes[0], routed)


def test_compiled_training_through_the_evolved_backward_matches_eager(attention, device, dtypes,
                                                                      evolved_backward) -> None:
    model, x = _model(attention, device, dtypes[0], evolved_backward)
    explained = torch._dynamo.explain(model)(x)
    assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons
    _compiled_matches_eager(attention, device, dtypes[0], evolved_backward)


def test_compiled_grouped_query_model_matches_eager(attention, device, dtypes, gqa_routed) -> None:
    _compiled_matches_eager(attention, device, dtypes[0], gqa_routed)


def test_fallback_under_compile_warns_without_graph_break(attention, device, dtypes) -> None:
    row = attention.TABLE.data["table"][0]
    q, k, v = qkv((1, 2, 9, row["head_dim"]), dtypes[0], device)
    mask = torch.zeros(9, 9, dtype=dtypes[0], device=device)
    compiled = torch.compile(lambda q, k, v: attention.scaled_dot_product_attention(q, k, v, attn_mask=mask),
                             fullgraph=True, backend="aot_eager")
    with pytest.warns(attention.AttentionFallbackWarning, match="attn_mask"):
        compiled(q, k, v)
    with warnings.catch_warnings():
        warnings.simplefilter("error", attention.AttentionFallbackWarning)
        compiled(q, k, v)


def test_strict_fallback_under_compile_raises_when_run(attention, device, dtypes) -> None:
    row = attention.TABLE.data["table"][0]
    q, k, v = qkv((1, 2, 9, row["head_dim"]), dtypes[0], device)
    mask = torch.zeros(9, 9, dtype=dtypes[0], device=device)
    compiled = torch.compile(lambda q, k, v: attention.scaled_dot_product_attention(q, k, v, attn_mask=mask, strict=True),
                             fullgraph=True, backend="aot_eager")
    with pytest.raises(attention.AttentionFallbackError, match="attn_mask"):
        compiled(q, k, v)


def test_custom_op_passes_opcheck(attention, device, dtypes, routed) -> None:
    q, k, v = qkv((1, 2, routed.seq(17), routed.head_dim), dtypes[0], device, requires_grad=True)
    torch.library.opcheck(attention.ops.attention, (q, k, v, routed.causal, 0.125, True))


def test_training_custom_ops_pass_opcheck(attention, device, dtypes, evolved_backward) -> None:
    call = evolved_backward
    q, k, v = qkv((1, 2, call.seq(17), call.head_dim), dtypes[0], device, requires_grad=True)
    torch.library.opcheck(attention.ops.attention_with_lse, (q, k, v, call.causal, 0.125, True))
    o, lse = attention.ops.attention_with_lse(*(t.detach() for t in (q, k, v)), call.causal, 0.125, True)
    grad = qkv((1, 2, call.seq(17), call.head_dim), dtypes[0], device, seed=4)[0]
    torch.library.opcheck(attention.ops.attention_backward,
                          (grad, *(t.detach() for t in (q, k, v)), o, lse, call.causal, 0.125, True))


def test_op_replays_from_a_cuda_graph(attention, dtypes, routed) -> None:
    if not torch.cuda.is_available() or attention.ops.INTERPRET:
        pytest.skip("needs a CUDA GPU")
    shape = (2, 2, routed.seq(300), routed.head_dim)
    q, k, v = qkv(shape, dtypes[0], "cuda")
    run = lambda: attention.scaled_dot_product_attention(q, k, v, is_causal=routed.causal, strict=True)  # noqa: E731
    expected = run()  # compiles the kernel outside the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = run()
    fresh = qkv(shape, dtypes[0], "cuda", seed=3)
    for t, new in zip((q, k, v), fresh):
        t.copy_(new)
    graph.replay()
    torch.testing.assert_close(captured, run())
    assert not torch.equal(captured, expected)


def test_training_replays_from_cuda_graphs(attention, dtypes, evolved_backward) -> None:
    """Forward (torch's flash op) and evolved backward captured by make_graphed_callables, replayed
    on fresh inputs, give what eager calls give."""
    if not torch.cuda.is_available() or attention.ops.INTERPRET:
        pytest.skip("needs a CUDA GPU")
    call = evolved_backward
    shape = (2, 2, call.seq(300), call.head_dim)
    run = lambda q, k, v: attention.scaled_dot_product_attention(q, k, v, is_causal=call.causal, strict=True)  # noqa: E731
    graphed = torch.cuda.make_graphed_callables(run, tuple(qkv(shape, dtypes[0], "cuda", requires_grad=True)))
    fresh = qkv(shape, dtypes[0], "cuda", seed=3, requires_grad=True)
    grad = qkv(shape, dtypes[0], "cuda", seed=4)[0]
    out = graphed(*fresh)
    out.backward(grad)
    eager = [t.detach().clone().requires_grad_() for t in fresh]
    expected = run(*eager)
    expected.backward(grad)
    torch.testing.assert_close(out, expected)
    for ours, ref in zip(fresh, eager):
        torch.testing.assert_close(ours.grad, ref.grad)
