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
        requires_grad: bool = False, group: int = 1) -> list[torch.Tensor]:
    """q of ``shape`` (B, H, N, D), k and v with H / ``group`` heads."""
    g = torch.Generator().manual_seed(seed)
    b, h, n, d = shape
    shapes = [shape, (b, h // group, n, d), (b, h // group, n, d)]
    return [torch.randn(s, generator=g).to(device=device, dtype=dtype).requires_grad_(requires_grad)
            for s in shapes]


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
    """A (head_dim, causal, group) whose lengths ``min_seq..max_seq`` run a kernel, and the
    backward kernel its gradients run there (None: torch's default SDPA runs the call)."""

    head_dim: int
    causal: bool
    min_seq: int
    max_seq: int | None
    group: int = 1
    backward_kernel: str | None = None

    def seq(self, wanted: int) -> int:
        """``wanted`` where this bucket holds it, else the bucket's shortest length."""
        return wanted if self.min_seq <= wanted and (self.max_seq is None or wanted <= self.max_seq) else self.min_seq


def kernel_call(rows: list[dict[str, Any]]) -> KernelCall:
    """The forward kernel-routed row without grouped-query attention holding the shortest
    lengths, the cheapest to test."""
    r = min((r for r in rows if r["kernel"] and r["direction"] == "forward" and r["group"] == 1),
            key=lambda r: (r["min_seq"], r["head_dim"], r["causal"]))
    return KernelCall(r["head_dim"], r["causal"], r["min_seq"], r["max_seq"])


def kernel_calls(table: Any, direction: str = "forward") -> list[KernelCall]:
    """Calls that run a kernel of ``direction``, one per row (backward ones only where the forward
    table covers the call), narrowed to the lengths where the other table's route stays the one
    it has at the row's shortest length; shortest first."""
    other = "backward" if direction == "forward" else "forward"
    out = set()
    for r in table.data["table"]:
        if r["direction"] != direction or not r["kernel"]:
            continue
        d, causal, group, dtype = r["head_dim"], r["causal"], r["group"], getattr(torch, r["dtype"])
        if direction == "backward" and not table.covers(d, causal, dtype, group):
            continue
        lo, hi = r["min_seq"], r["max_seq"]
        route = table.route_for(d, causal, dtype, lo, group, other)
        if route is not None and route.max_seq is not None:
            hi = route.max_seq if hi is None else min(hi, route.max_seq)
        out.add(KernelCall(d, causal, lo, hi, group, table.backward_kernel(d, causal, dtype, lo, group)))
    return sorted(out, key=lambda c: (c.min_seq, c.group, c.head_dim, c.causal))
