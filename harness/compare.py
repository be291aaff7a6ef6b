"""Numerical comparison of a candidate's output with the reference, done in the parent."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.task import Tolerance


@dataclass(frozen=True)
class Comparison:
    ok: bool
    rel_err: float | None
    max_abs_err: float | None
    note: str = ""


def compare(out: torch.Tensor, ref: torch.Tensor, tol: Tolerance) -> Comparison:
    """Relative norm error *and* elementwise max abs error: zeros, uniform attention and
    NaN all fail, however small the outputs."""
    o = out.to(ref.device, torch.float64 if ref.dtype == torch.float64 else torch.float32)
    finite = torch.isfinite(o)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        return Comparison(False, None, None, f"output has {bad} NaN/Inf values of {o.numel()}")
    diff = (o - ref).abs()
    ref_norm = float(ref.norm())
    rel = float(diff.norm()) / ref_norm if ref_norm > 0 else float(diff.norm())
    max_abs = float(diff.max()) if diff.numel() else 0.0
    over = diff > tol.atol + tol.rtol * ref.abs()
    if rel > tol.rel:
        return Comparison(False, rel, max_abs, f"relative error {rel:.3g} > {tol.rel:g}")
    if bool(over.any()):
        n = int(over.sum())
        return Comparison(False, rel, max_abs, f"{n} of {o.numel()} elements off by more than "
                                               f"{tol.atol:g} + {tol.rtol:g}|ref| (max abs error {max_abs:.3g})")
    return Comparison(True, rel, max_abs)
