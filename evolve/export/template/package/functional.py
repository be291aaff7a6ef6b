"""``scaled_dot_product_attention``: torch's function and signature, running the evolved kernels
where the dispatch table says they are faster and torch's SDPA everywhere else; grouped-query
calls (``enable_gqa=True``) by the rows of their group, gradients by the backward table."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from . import ops
from .dispatch import TABLE
from .fallback import STRICT, refusal, warn_once


def unsupported(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None, dropout_p: float,
                is_causal: bool, enable_gqa: bool) -> str | None:
    """Why the kernels cannot run this call, or None. Decided by what torch.compile treats as
    static (dtypes, devices, head_dim, which arguments are given), so it costs no graph break."""
    if attn_mask is not None:
        return "attn_mask is given (the kernels take is_causal only)"
    if dropout_p > 0.0:
        return "dropout_p > 0"
    if query.is_nested or key.is_nested or value.is_nested:
        return "nested tensors"
    if not ops.runs_kernels_on(query.device):
        return (f"{query.device.type} tensors (the kernels run on CUDA GPUs; on the CPU only "
                "under Triton's interpreter, TRITON_INTERPRET=1)")
    if query.dim() != 4 or key.dim() != 4 or value.dim() != 4:
        return "inputs are not 4-D (batch, heads, sequence, head_dim)"
    if not (query.dtype == key.dtype == value.dtype) or not (query.device == key.device == value.device):
        return "query, key and value differ in dtype or device"
    if key.shape[1] != value.shape[1]:
        return "key and value differ in the number of heads"
    if key.shape[1] != query.shape[1] and not enable_gqa:
        return "query, key and value differ in the number of heads (and enable_gqa is not set)"
    if key.shape[1] == 0 or query.shape[1] % key.shape[1]:
        return "grouped-query attention whose query heads are not a multiple of the key/value heads"
    if key.shape[0] != query.shape[0] or value.shape[0] != query.shape[0]:
        return "query, key and value differ in batch size"
    if key.shape[2] != query.shape[2] or value.shape[2] != key.shape[2]:
        return "query and key/value sequence lengths differ"
    if key.shape[3] != query.shape[3] or value.shape[3] != query.shape[3]:
        return "value's or key's head_dim differs from query's"
    if query.numel() == 0:
        return "empty inputs"
    group = query.shape[1] // key.shape[1]
    dtype = str(query.dtype).removeprefix("torch.")
    if group > 1 and not TABLE.covers(query.shape[3], is_causal, query.dtype, group):
        measured = TABLE.groups(query.shape[3], is_causal, query.dtype)
        return (f"grouped-query attention with group {group} ({query.shape[1]} query heads, {key.shape[1]} key/value "
                f"heads): no kernel measured for it at head_dim {query.shape[3]}, {dtype}, is_causal={is_causal} "
                f"(groups measured there: {', '.join(map(str, measured)) or 'none'})")
    if not TABLE.covers(query.shape[3], is_causal, query.dtype, group):
        return f"no kernel measured for head_dim {query.shape[3]}, {dtype}, is_causal={is_causal}"
    return None


def _needs_grad(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    *,
    strict: bool | None = None,
) -> Tensor:
    """Drop-in for ``torch.nn.functional.scaled_dot_product_attention``, same arguments and result.

    Calls the table covers run the evolved kernels, except in buckets where torch's default SDPA
    was as fast or faster, which call it (no warning, in strict mode too). Any other call runs
    torch's SDPA after one ``AttentionFallbackWarning`` per reason, or raises
    ``AttentionFallbackError`` when ``strict`` (default: the ``<PACKAGE>_STRICT`` environment
    variable) is true. A call whose inputs require gradients runs, in buckets with an evolved
    backward kernel, torch's flash forward (which returns the logsumexp that kernel reads) and
    that kernel in its backward; elsewhere it calls torch's default SDPA, forward and backward.
    """
    strict = STRICT if strict is None else strict
    reason = unsupported(query, key, value, attn_mask, dropout_p, is_causal, enable_gqa)
    if reason is None:
        d, n, group = query.shape[3], query.shape[2], query.shape[1] // key.shape[1]
        compiling = torch.compiler.is_compiling()
        # Calls that go to torch's default SDPA call it right here, with the caller's own
        # arguments and no custom op in between. A compiled graph decides by what is static (its
        # sequence length may be symbolic), the ops then by bucket.
        if _needs_grad(query, key, value):
            # Without an evolved backward, gradients need torch's own: a forward kernel followed by
            # a recompute through SDPA ran at 0.77-0.80x of the default forward+backward (H200,
            # benchmarks/results/export-h200.md).
            if (TABLE.has_backward_kernels(d, is_causal, query.dtype, group) if compiling
                    else TABLE.backward_kernel(d, is_causal, query.dtype, n, group) is not None):
                scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
                return ops.attention_with_lse(query, key, value, is_causal, scale, strict)[0]
        elif compiling or not TABLE.runs_default(d, is_causal, query.dtype, n, group):
            scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
            return ops.attention(query, key, value, is_causal, scale, strict)
    elif strict:
        if torch.compiler.is_compiling():
            return ops.refuse(query, value, reason)  # raises when the compiled graph runs
        raise refusal(reason)
    else:
        warn_once(reason)
    return F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p,
                                          is_causal=is_causal, scale=scale, enable_gqa=enable_gqa)
