"""The kernels as ``torch.library`` custom ops: opaque to torch.compile (fake implementations give
the outputs' shapes), capturable in CUDA graphs, and differentiable.

- ``<package>::attention``: the forward of a call that needs no gradients (o only);
- ``<package>::attention_with_lse``: the forward of a call that needs them, o and the logsumexp
  the backward kernel of its bucket reads;
- ``<package>::attention_backward``: dq, dk, dv, by the evolved backward kernel of the bucket, or
  recomputed through torch's SDPA.

The ops are called only for inputs the forward table covers (``functional`` checks that). What
only the running call can tell is decided here, from its shapes: the forward bucket of this
sequence length and group (a bucket routed to torch's default SDPA calls it, by design and
without a warning), the backward bucket, and the GPU's architecture; an uncovered length or
another architecture falls back to torch's SDPA like ``functional`` does. The forward and the
backward of one call decide the backward bucket by the same rule (``_backward_kernel``), so they
agree.

The LSE: the forward kernels return o only, and an evolved backward kernel reads o and the
natural-log logsumexp of the scaled scores. A call that needs gradients in a bucket whose
backward runs an evolved kernel therefore runs torch's flash forward, which returns both (as the
attn_bwd harness derived them when it checked and timed the kernel), instead of the forward
table's choice: it costs the difference between flash's forward and the evolved or default one,
a copy of o into a contiguous tensor, and o and the logsumexp kept for the backward, and saves
the extra forward of the recompute. Where flash refuses the call, an exact forward in plain
PyTorch computes both, after a warning. Other calls that need gradients do not reach these ops
(``functional`` hands them to torch's default SDPA whole), except in a compiled graph of a
(head_dim, causal, dtype, group) with evolved backward rows, which decides per bucket here: its
buckets without an evolved kernel save q, k, v, and the backward recomputes the attention
through torch's SDPA and differentiates that (correct; torch's backward plus one extra forward).
"""

# No `from __future__ import annotations`: torch.library reads the ops' schemas from real annotations.
import functools
import os

import torch
import torch.nn.functional as F
from torch import Tensor

from .dispatch import TABLE, kernel_module
from .fallback import refusal, warn_once
from .naive import naive_attention_lse

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


def _device_mismatch(q: Tensor) -> str | None:
    return _architecture_mismatch(q.device.index or 0) if q.device.type == "cuda" else None


def _group(q: Tensor, k: Tensor) -> int:
    """Query heads per key/value head (``functional`` passes only calls where it divides)."""
    return q.shape[1] // k.shape[1]


def _sdpa(q: Tensor, k: Tensor, v: Tensor, is_causal: bool, scale: float) -> Tensor:
    return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal, scale=scale,
                                          enable_gqa=k.shape[1] != q.shape[1])


def _launch(name: str, *args):  # type: ignore[no-untyped-def]
    entry = kernel_module(name).forward
    if args[0].device.type == "cuda":
        with torch.cuda.device(args[0].device):  # Triton launches on the current device
            return entry(*args)
    return entry(*args)


def _refuse_or_warn(reason: str, strict: bool) -> None:
    if strict:
        raise refusal(reason)
    warn_once(reason)


def _forward_kernel(q: Tensor, k: Tensor, is_causal: bool, strict: bool) -> str | None:
    """The forward kernel of this call's bucket; None: torch's SDPA runs (the bucket is routed to
    it, or the call falls back after a warning; strict mode raises instead)."""
    route = TABLE.route_for(q.shape[-1], is_causal, q.dtype, q.shape[-2], _group(q, k))
    if route is not None and route.kernel is None:  # torch's default was as fast or faster here
        return None
    reason = _device_mismatch(q)
    if reason is None and route is None:
        dtype = str(q.dtype).removeprefix("torch.")
        reason = f"no kernel measured for this sequence length (head_dim {q.shape[-1]}, {dtype})"
    if reason is not None:
        _refuse_or_warn(reason, strict)
        return None
    return route.kernel


def _backward_kernel(q: Tensor, k: Tensor, is_causal: bool, strict: bool) -> str | None:
    """The evolved backward kernel of this call's bucket; None: the gradients are recomputed
    through torch's SDPA. The forward and the backward of a call both ask, with the same answer."""
    name = TABLE.backward_kernel(q.shape[-1], is_causal, q.dtype, q.shape[-2], _group(q, k))
    if name is None:
        return None
    reason = _device_mismatch(q)
    if reason is not None:
        _refuse_or_warn(reason, strict)
        return None
    return name


def _forward(q: Tensor, k: Tensor, v: Tensor, is_causal: bool, scale: float, strict: bool) -> Tensor:
    kernel = _forward_kernel(q, k, is_causal, strict)
    if kernel is None:
        return _sdpa(q, k, v, is_causal, scale).contiguous()
    # The harness checked the kernels on contiguous inputs only.
    return _launch(kernel, q.contiguous(), k.contiguous(), v.contiguous(), is_causal, scale)


def _forward_with_lse(q: Tensor, k: Tensor, v: Tensor, is_causal: bool, scale: float,
                      strict: bool) -> tuple[Tensor, Tensor]:
    """o and the logsumexp [B, H, N] (float32, natural log) from torch's flash forward, as the
    attn_bwd harness derives them; an exact forward where flash does not take the call."""
    try:
        if q.device.type == "cuda":
            o, lse = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, is_causal, False,
                                                                        scale=scale)[:2]
        else:
            o, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, is_causal,
                                                                                scale=scale)
        # flash may hand o back as a view of (B, N, H, D) memory and lse padded along N.
        return o.contiguous(), lse[..., : q.shape[2]].contiguous()
    except RuntimeError:
        dtype = str(q.dtype).removeprefix("torch.")
        _refuse_or_warn(f"torch's flash forward does not take this call ({dtype}, head_dim {q.shape[-1]}), so the "
                        "o and logsumexp its evolved backward reads are computed in plain PyTorch (slow)", strict)
    exact = torch.float64 if q.device.type == "cpu" else torch.float32
    o, lse = naive_attention_lse(q.to(exact), k.to(exact), v.to(exact), is_causal, scale)
    return o.to(q.dtype), lse.to(torch.float32)


@torch.library.custom_op(f"{__package__}::attention", mutates_args=())
def attention(q: Tensor, k: Tensor, v: Tensor, is_causal: bool, scale: float, strict: bool) -> Tensor:
    """softmax(q kᵀ · scale, causal mask j > i) v for q [B, H, N, D] and k, v [B, H / group, N, D],
    one dtype; query head h reads key/value head h // group."""
    return _forward(q, k, v, is_causal, scale, strict)


@attention.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, is_causal: bool, scale: float, strict: bool) -> Tensor:
    return q.new_empty(q.shape)


@torch.library.custom_op(f"{__package__}::attention_with_lse", mutates_args=())
def attention_with_lse(q: Tensor, k: Tensor, v: Tensor, is_causal: bool, scale: float,
                       strict: bool) -> tuple[Tensor, Tensor]:
    """``attention`` for a call that needs gradients: o, and the logsumexp [B, H, N] float32 that
    the evolved backward kernel of its bucket reads. In a bucket whose backward recomputes,
    o is the forward table's choice and the logsumexp zeros, which nothing reads."""
    if _backward_kernel(q, k, is_causal, strict) is None:
        return _forward(q, k, v, is_causal, scale, strict), q.new_zeros(q.shape[:3], dtype=torch.float32)
    return _forward_with_lse(q, k, v, is_causal, scale, strict)


@attention_with_lse.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, is_causal: bool, scale: float, strict: bool) -> tuple[Tensor, Tensor]:
    return q.new_empty(q.shape), q.new_empty(q.shape[:3], dtype=torch.float32)


def _recompute(grad: Tensor, q: Tensor, k: Tensor, v: Tensor, is_causal: bool,
               scale: float) -> tuple[Tensor, Tensor, Tensor]:
    # Inside a custom op autograd is switched off; torch.func's vjp differentiates regardless.
    _, pull = torch.func.vjp(lambda q, k, v: _sdpa(q, k, v, is_causal, scale), q, k, v)
    dq, dk, dv = pull(grad)
    return dq.contiguous(), dk.contiguous(), dv.contiguous()


@torch.library.custom_op(f"{__package__}::attention_backward", mutates_args=())
def attention_backward(grad: Tensor, q: Tensor, k: Tensor, v: Tensor, o: Tensor | None, lse: Tensor | None,
                       is_causal: bool, scale: float, strict: bool) -> tuple[Tensor, Tensor, Tensor]:
    """dq, dk, dv of ``attention`` given the gradient of its output: by the evolved backward
    kernel of the bucket when ``o`` and ``lse`` come from ``attention_with_lse``, else recomputed
    through torch's SDPA."""
    kernel = None if o is None or lse is None else _backward_kernel(q, k, is_causal, strict)
    if kernel is None:
        return _recompute(grad, q, k, v, is_causal, scale)
    q, k, v, o, grad = (t.contiguous() for t in (q, k, v, o, grad))
    dq, dk, dv = _launch(kernel, q, k, v, o, grad, lse, is_causal, scale)
    return dq, dk, dv


@attention_backward.register_fake
def _(grad: Tensor, q: Tensor, k: Tensor, v: Tensor, o: Tensor | None, lse: Tensor | None,
      is_causal: bool, scale: float, strict: bool) -> tuple[Tensor, Tensor, Tensor]:
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _setup_context(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
    q, k, v, is_causal, scale, strict = inputs
    ctx.save_for_backward(q, k, v)
    ctx.is_causal, ctx.scale, ctx.strict = is_causal, scale, strict


def _backward(ctx, grad: Tensor):  # type: ignore[no-untyped-def]
    q, k, v = ctx.saved_tensors
    dq, dk, dv = attention_backward(grad, q, k, v, None, None, ctx.is_causal, ctx.scale, ctx.strict)
    return dq, dk, dv, None, None, None


attention.register_autograd(_backward, setup_context=_setup_context)


def _setup_context_lse(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
    q, k, v, is_causal, scale, strict = inputs
    o, lse = output
    ctx.mark_non_differentiable(lse)
    ctx.save_for_backward(q, k, v, o, lse)
    ctx.is_causal, ctx.scale, ctx.strict = is_causal, scale, strict


def _backward_lse(ctx, grad: Tensor, _grad_lse: Tensor | None):  # type: ignore[no-untyped-def]
    q, k, v, o, lse = ctx.saved_tensors
    dq, dk, dv = attention_backward(grad, q, k, v, o, lse, ctx.is_causal, ctx.scale, ctx.strict)
    return dq, dk, dv, None, None, None


attention_with_lse.register_autograd(_backward_lse, setup_context=_setup_context_lse)


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
