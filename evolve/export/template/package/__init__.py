"""Evolved Triton attention kernels behind torch's ``scaled_dot_product_attention`` signature.

Written by ``evolve export``; ``README.md`` says what the kernels are, where they came from and
how fast they were measured, and ``dispatch.json`` which runs where.
"""

from . import dispatch, naive, ops
from .dispatch import TABLE
from .fallback import STRICT_ENV, AttentionFallbackError, AttentionFallbackWarning, reset_warnings
from .functional import scaled_dot_product_attention
from .modules import ScaledDotProductAttention

__all__ = [
    "STRICT_ENV",
    "TABLE",
    "dispatch",
    "naive",
    "ops",
    "AttentionFallbackError",
    "AttentionFallbackWarning",
    "ScaledDotProductAttention",
    "reset_warnings",
    "scaled_dot_product_attention",
]
