"""Numerical comparison of a candidate's output with the reference, done in the parent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from harness.task import OutputSpec, Task, Tolerance, returned


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


def compare_outputs(outs: list[torch.Tensor], refs: list[torch.Tensor], specs: list[OutputSpec]) -> Comparison:
    """Each output against its reference with its own tolerance: the first that fails decides
    (its name leads the note when there are several); errors are the worst over the outputs."""
    results = [compare(o, r, s.tolerance) for o, r, s in zip(outs, refs, specs, strict=True)]
    rels = [c.rel_err for c in results if c.rel_err is not None]
    abss = [c.max_abs_err for c in results if c.max_abs_err is not None]
    rel = max(rels) if len(rels) == len(results) else None
    max_abs = max(abss) if len(abss) == len(results) else None
    for spec, c in zip(specs, results):
        if not c.ok:
            return Comparison(False, rel, max_abs, f"{spec.name}: {c.note}" if len(specs) > 1 else c.note)
    return Comparison(True, rel, max_abs)


def compare_returned(task: Task, out: Any, refs: list[torch.Tensor], case: dict[str, Any]) -> Comparison:
    """What an entry point returned (trusted code's, in benchmarks) against the task's reference."""
    outs = returned(out, task.signature.outputs)
    if isinstance(outs, str):
        return Comparison(False, None, None, outs)
    return compare_outputs(outs, refs, task.outputs(case))
