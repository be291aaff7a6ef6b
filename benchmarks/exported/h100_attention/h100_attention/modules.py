"""``ScaledDotProductAttention``: the function as a ``torch.nn.Module``, for models that build
attention from modules. Dropout applies only in training mode, as in torch's own layers."""

from __future__ import annotations

from torch import Tensor, nn

from .functional import scaled_dot_product_attention


class ScaledDotProductAttention(nn.Module):
    def __init__(self, dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                 enable_gqa: bool = False, *, strict: bool | None = None) -> None:
        super().__init__()
        self.dropout_p, self.is_causal, self.scale = dropout_p, is_causal, scale
        self.enable_gqa, self.strict = enable_gqa, strict

    def forward(self, query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        return scaled_dot_product_attention(
            query, key, value, attn_mask=attn_mask, dropout_p=self.dropout_p if self.training else 0.0,
            is_causal=self.is_causal, scale=self.scale, enable_gqa=self.enable_gqa, strict=self.strict)

    def extra_repr(self) -> str:
        return f"dropout_p={self.dropout_p}, is_causal={self.is_causal}, scale={self.scale}"
