"""The plain definition the kernels are tested against, in plain PyTorch.

q, k, v: [B, H, N, D] -> [B, H, N, D]; softmax(q kᵀ · scale, causal mask j > i) v, computed in
the inputs' precision (pass float64 for an exact reference).
"""

from __future__ import annotations

import torch


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, scale: float) -> torch.Tensor:
    s = torch.matmul(q, k.transpose(-1, -2)) * scale  # [B, H, N, N]
    if causal:
        n = q.shape[-2]
        above = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
        s = s.masked_fill(above, float("-inf"))
    return torch.matmul(torch.softmax(s, dim=-1), v)
