"""The plain definition the kernels are tested against, in plain PyTorch.

q: [B, H, N, D], k, v: [B, H / group, N, D] -> [B, H, N, D]; softmax(q kᵀ · scale, causal mask
j > i) v, query head h reading key/value head h // group (torch's ``enable_gqa``), computed in the
inputs' precision (pass float64 for an exact reference). Its float64 autograd is the reference of
the backward kernels too.
"""

from __future__ import annotations

import torch


def _expand(q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
    """k or v with each head repeated for the query heads that read it."""
    return kv.repeat_interleave(q.shape[1] // kv.shape[1], dim=1) if kv.shape[1] != q.shape[1] else kv


def _scores(q: torch.Tensor, k: torch.Tensor, causal: bool, scale: float, r0: int = 0) -> torch.Tensor:
    """Scaled scores of query rows r0.. against every key, masked: [B, H, rows, N]."""
    s = torch.matmul(q, k.transpose(-1, -2)) * scale
    if causal:
        i = torch.arange(r0, r0 + q.shape[-2], device=q.device)[:, None]
        j = torch.arange(k.shape[-2], device=q.device)[None, :]
        s = s.masked_fill(j > i, float("-inf"))
    return s


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, scale: float) -> torch.Tensor:
    k, v = _expand(q, k), _expand(q, v)
    return torch.matmul(torch.softmax(_scores(q, k, causal, scale), dim=-1), v)


def naive_attention_lse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool,
                        scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """o [B, H, N, D] and the natural-log logsumexp [B, H, N] of the scaled, masked scores, by
    blocks of query rows so that long sequences fit in memory (one block's scores: ~256 MB)."""
    k, v = _expand(q, k), _expand(q, v)
    B, H, N, _ = q.shape
    o = torch.empty_like(q)
    lse = torch.empty(q.shape[:3], dtype=q.dtype, device=q.device)
    rows = max(1, min(N, (1 << 25) // max(1, B * H * N)))
    for r0 in range(0, N, rows):
        s = _scores(q[:, :, r0:r0 + rows], k, causal, scale, r0)
        lse[:, :, r0:r0 + rows] = torch.logsumexp(s, dim=-1)
        o[:, :, r0:r0 + rows] = torch.matmul(torch.softmax(s, dim=-1), v)
    return o, lse
