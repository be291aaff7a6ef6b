"""torch.compile: a model using the library traces into one graph (no breaks), compiled results
and gradients equal eager ones, fallbacks still warn and strict mode still raises; the custom op
passes torch's opcheck; on a GPU, the op replays correctly from a CUDA graph."""

from __future__ import annotations

import warnings

import pytest
import torch
from helpers import qkv
from torch import nn


class TinyAttention(nn.Module):
    def __init__(self, attention, heads: int, head_dim: int, causal: bool) -> None:
        super().__init__()
        width = heads * head_dim
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.attn = attention.ScaledDotProductAttention(is_causal=causal, strict=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, N, width]
        b, n, width = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        return self.out(self.attn(q, k, v).transpose(1, 2).reshape(b, n, width))


def _model(attention, device: str, dtype: torch.dtype, routed) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = TinyAttention(attention, 2, routed.head_dim, routed.causal).to(device, dtype)
    return model, torch.randn(2, routed.seq(20), 2 * routed.head_dim, device=device, dtype=dtype)


def test_compiled_model_has_no_graph_breaks(attention, device, dtypes, routed) -> None:
    model, x = _model(attention, device, dtypes[0], routed)
    explained = torch._dynamo.explain(model)(x)
    assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons


def test_compiled_model_matches_eager_forward_and_backward(attention, device, dtypes, routed) -> None:
    model, x = _model(attention, device, dtypes[0], routed)
    eager = model(x)
    eager.float().square().sum().backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")(x)
    compiled.float().square().sum().backward()
    torch.testing.assert_close(compiled, eager)
    for p, g in zip(model.parameters(), eager_grads):
        torch.testing.assert_close(p.grad, g)


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
