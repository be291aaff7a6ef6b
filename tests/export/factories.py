"""Test data for export: the seed kernel as measured programs, stored through the archive API.

``measured(tflops)`` times every benchmark shape of the task; ``tflops(case)`` says how fast the
program was there, so tests decide which program wins which bucket.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from archive import Archive
from harness.task import get_task
from harness.verdict import Outcome, ShapeResult, Stage, Timing, Verdict

DEVICE = "NVIDIA H100 80GB HBM3"
TASK = get_task("mha_fwd")
BASELINE_TFLOPS = 400.0


def seed_variant(seed_source: str) -> str:
    """The seed with a smaller query tile: different code, the same (correct) result."""
    variant = seed_source.replace('"BLOCK_M": 128', '"BLOCK_M": 64')
    assert variant != seed_source
    return variant


def _checked_trials() -> list[ShapeResult]:
    """What a GPU sweep reports: bf16 and fp16 trials, all passed."""
    out = []
    for dtype in ("bfloat16", "float16"):
        case = {"batch": 2, "heads": 3, "seq": 127, "head_dim": 64, "causal": False, "dtype": dtype}
        out.append(ShapeResult(TASK.label(case), case, rel_err=2e-3, max_abs_err=2e-3, passed=True))
    return out


def measured(tflops: Callable[[dict[str, Any]], float], device: str = DEVICE) -> Verdict:
    """A verdict that passed every stage, timed on every benchmark shape at ``tflops(case)``."""
    timings = []
    for case in TASK.benchmark_cases():
        flops = TASK.flops(case)
        t = tflops(case)
        timings.append(Timing(case, ms=flops / (t * 1e12) * 1e3, baseline_ms=flops / (BASELINE_TFLOPS * 1e12) * 1e3,
                              baseline_backend="sdpa_cudnn", tflops=t, baseline_tflops=BASELINE_TFLOPS))
    return Verdict(Outcome.PASSED, Stage.DONE, "", "gpu", shape_results=_checked_trials(), timings=timings,
                   device=device, torch_version="2.11.0+cu130", triton_version="3.6.0", duration_s=20.0)


def rejected() -> Verdict:
    return Verdict(Outcome.REJECTED, Stage.SWEEP, "relative error 0.3 > 0.025 on B2 H3 N127 D64 bfloat16", "gpu",
                   device=DEVICE, torch_version="2.11.0+cu130", triton_version="3.6.0")


def untimed() -> Verdict:
    """Passed in Triton's interpreter: correct, but nothing measured."""
    return Verdict(Outcome.PASSED, Stage.DONE, "", "interpreter", shape_results=_checked_trials(),
                   device="cpu (triton interpreter)", torch_version="2.13.0", triton_version="3.9.0")


def short_vs_long(short: float, long: float) -> Callable[[dict[str, Any]], float]:
    """``short`` TFLOP/s at sequence length 1024, ``long`` at the longer benchmark lengths."""
    return lambda case: short if case["seq"] <= 1024 else long


def measured_run(archive: Archive, seed_source: str, *, simulated: bool = False) -> tuple[int, int, int]:
    """A run holding the seed (fastest at length 1024) and its variant (fastest from 4096 on)."""
    run = archive.create_run("mha_fwd", {}, simulated=simulated)
    seed, _ = archive.add_program(run, seed_source, operator="seed")
    archive.add_evaluation(seed, measured(short_vs_long(450, 300)), key=f"seed-{run}", simulated=simulated)
    variant, _ = archive.add_program(run, seed_variant(seed_source), parents=[seed], operator="mutate", generation=1)
    archive.add_evaluation(variant, measured(short_vs_long(350, 500)), key=f"variant-{run}", simulated=simulated)
    return run, seed, variant
