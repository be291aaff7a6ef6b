"""The kernels as a ``torch.library`` custom op, ``<package>::attention``: opaque to
torch.compile (a fake implementation gives the output's shape), capturable in CUDA graphs, and
differentiable.

The op is called only for inputs the dispatch table covers (``functional`` checks that). What
only the running call can tell is decided here: the bucket of this sequence length (a bucket
routed to torch's default SDPA calls it, by design and without a warning), and the GPU's
architecture; an uncovered length or another architecture falls back to torch's SDPA like
``functional`` does.

Backward recomputes the attention through torch's SDPA and differentiates that: correct, and
as fast as torch's backward plus one extra forward, until evolved backward kernels exist.
"""

# No `from __future__ import annotations`: torch.library reads the op's schema from real annotations.
import functools
import os

import torch
import torch.nn.functional as F
from torch import Tensor

from .dispatch import TABLE, kernel_module
from .fallback import refusal, warn_once

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def runs_kernels_on(device: torch.device) -> bool:
    """CUDA tensors run the kernels; CPU tensors too when Triton's interpreter is on (tests)."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and INTERPRET


@functools.cache
def _architecture_mismatch(index: int) -> str | None:
    measured = TABLE.device
    capability = measured.get("compute_capability")
    if capability is not None:
        here = torch.cuda.get_device_capability(index)
        if tuple(here) == tuple(capability):
            return None
        return (f"this GPU is sm_{here[0]}{here[1]}, the kernels were measured on "
                f"sm_{capability[0]}{capability[1]} ({measured['name']})")
    name = torch.cuda.get_device_name(index)
    # Without a known architecture for the measured GPU, only that very model is trusted.
    return None if name == measured["name"] else f"this GPU is a {name}, the kernels were measured on a {measured['name']}"


def _sdpa(q: Tensor, k: Tensor, v: Tensor, is_causal: bool, scale: float) -> Tensor:
    return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal, scale=scale)


@torch.library.custom_op(f"{__package__}::attention", mutates_args=())
def attention(q: Tensor, k: Tensor, v: Tensor, is_causal: bool, scale: float, strict: bool) -> Tensor:
    """softmax(q kᵀ · scale, causal mask j > i) v for q, k, v of shape [B, H, N, D], one dtype."""
    route = TABLE.route_for(q.shape[-1], is_causal, q.dtype, q.shape[-2])
    if route is not None and route.kernel is None:  # torch's default was as fast or faster here
        return _sdpa(q, k, v, is_causal, scale).contiguous()
    reason = _architecture_mismatch(q.device.index or 0) if q.device.type == "cuda" else None
    if reason is None and route is None:
        dtype = str(q.dtype).removeprefix("torch.")
        reason = f"no kernel measured for this sequence length (head_dim {q.shape[-1]}, {dtype})"
    if reason is not None:
        if strict:
            raise refusal(reason)
        warn_once(reason)
        return _sdpa(q, k, v, is_causal, scale).contiguous()
    # The harness checked the kernels on contiguous inputs only.
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    forward = kernel_module(route.kernel).forward  # a bucket that runs a kernel
    if q.device.type == "cuda":
        with torch.cuda.device(q.device):  # Triton launches on the current device
            return forward(q, k, v, is_causal, scale)
    return forward(q, k, v, is_causal, scale)


@attention.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, is_causal: bool, scale: float, strict: bool) -> Tensor:
    return q.new_empty(q.shape)


def _setup_context(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
    q, k, v, is_causal, scale, _ = inputs
    ctx.save_for_backward(q, k, v)
    ctx.is_causal, ctx.scale = is_causal, scale


def _backward(ctx, grad: Tensor):  # type: ignore[no-untyped-def]
    q, k, v = ctx.saved_tensors
    with torch.enable_grad():
        inputs = [t.detach().requires_grad_() for t in (q, k, v)]
        out = _sdpa(*inputs, ctx.is_causal, ctx.scale)
        dq, dk, dv = torch.autograd.grad(out, inputs, grad)
    return dq, dk, dv, None, None, None


attention.register_autograd(_backward, setup_context=_setup_context)


@torch.library.custom_op(f"{__package__}::refuse", mutates_args=())
def refuse(query: Tensor, value: Tensor, reason: str) -> Tensor:
    """A strict-mode refusal inside a compiled graph: raised when the graph runs, as in eager
    mode, not as a torch._dynamo error while tracing."""
    raise refusal(reason)


@refuse.register_fake
def _(query: Tensor, value: Tensor, reason: str) -> Tensor:
    return query.new_empty((*query.shape[:-1], value.shape[-1]))


# Never reached (the forward raises); registered so that tracing a training graph accepts it.
refuse.register_autograd(lambda ctx, grad: (None, None, None), setup_context=lambda ctx, inputs, output: None)
