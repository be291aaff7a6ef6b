"""Inputs, tolerances and the kernel-routed call shared by the tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

# (atol, rtol, relative-norm bound) against a float64 reference: about what rounding the
# probabilities to the input dtype before the second product costs.
TOLERANCE = {
    torch.float16: (5e-3, 1e-2, 5e-3),
    torch.bfloat16: (3e-2, 5e-2, 2.5e-2),
}


def qkv(shape: tuple[int, ...], dtype: torch.dtype, device: str, seed: int = 0,
        requires_grad: bool = False) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g).to(device=device, dtype=dtype).requires_grad_(requires_grad)
            for _ in range(3)]


def assert_close(out: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype, scale: float = 1.0) -> None:
    """Elementwise *and* relative-norm error; ``scale`` widens the bounds (gradients)."""
    atol, rtol, rel = (t * scale for t in TOLERANCE[dtype])
    out, ref = out.double().cpu(), ref.double().cpu()
    assert out.shape == ref.shape
    assert torch.isfinite(out).all()
    err = (out - ref).abs()
    assert float(err.norm() / ref.norm()) <= rel, f"relative error {float(err.norm() / ref.norm()):.3g} > {rel:g}"
    worst = float((err - atol - rtol * ref.abs()).max())
    assert worst <= 0, f"max abs error {float(err.max()):.3g} beyond {atol:g} + {rtol:g}|ref|"


@dataclass(frozen=True)
class KernelCall:
    """A (head_dim, causal) whose bucket of lengths ``min_seq..max_seq`` runs a kernel."""

    head_dim: int
    causal: bool
    min_seq: int
    max_seq: int | None

    def seq(self, wanted: int) -> int:
        """``wanted`` where this bucket holds it, else the bucket's shortest length."""
        return wanted if self.min_seq <= wanted and (self.max_seq is None or wanted <= self.max_seq) else self.min_seq


def kernel_call(rows: list[dict[str, Any]]) -> KernelCall:
    """The kernel-routed row holding the shortest lengths, the cheapest to test (an export has
    at least one)."""
    r = min((r for r in rows if r["kernel"]), key=lambda r: (r["min_seq"], r["head_dim"], r["causal"]))
    return KernelCall(r["head_dim"], r["causal"], r["min_seq"], r["max_seq"])
