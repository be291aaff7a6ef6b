"""Builders for archive tests: verdicts, kernel sources and a small populated run."""

from __future__ import annotations

from dataclasses import dataclass

from archive import Archive
from harness.verdict import Outcome, ShapeResult, Stage, Timing, Verdict

GRID = {
    "dims": [
        {"name": "block_m", "labels": ["32", "64", "128"]},
        {"name": "warps", "labels": ["4", "8"]},
        {"name": "stages", "labels": ["2", "3"]},
    ]
}

BENCH_SHAPES = [
    {"batch": 4, "heads": 16, "seq": 1024, "head_dim": 64, "causal": False, "dtype": "float16"},
    {"batch": 2, "heads": 16, "seq": 4096, "head_dim": 128, "causal": True, "dtype": "bfloat16"},
]


def kernel(i: int, *, comment: str = "") -> str:
    """A distinct small program per ``i``; ``comment`` varies only what normalization drops."""
    return (
        f'"""Kernel {i}.{comment}"""\n\n'
        f"# {comment or 'plain'}\n"
        f"def forward(q, k, v, causal, sm_scale):\n"
        f"    return q * {i} + k\n"
    )


def passed(*speedups: float, shapes: int = 2, log: str = "") -> Verdict:
    """A passed verdict with one timing per benchmark shape, at these speedups over the baseline."""
    timings = [
        Timing(shape=shape, ms=1.0 / s, baseline_ms=1.0, baseline_backend="flash", tflops=100.0 * s,
               baseline_tflops=100.0)
        for shape, s in zip(BENCH_SHAPES, speedups, strict=True)
    ]
    return Verdict(
        outcome=Outcome.PASSED,
        stage=Stage.DONE,
        reason="",
        mode="gpu",
        shape_results=[
            ShapeResult(label=f"trial {j}", shape={"seq": 64 * (j + 1)}, rel_err=1e-4, max_abs_err=2e-3, passed=True)
            for j in range(shapes)
        ],
        timings=timings,
        device="NVIDIA H100 80GB HBM3",
        torch_version="2.5.1",
        triton_version="3.2.0",
        duration_s=12.5,
        sandbox=["namespaces"],
        log=log,
    )


def rejected(stage: Stage = Stage.SWEEP, reason: str = "rel err 0.31 > 0.01 on trial 2") -> Verdict:
    return Verdict(
        outcome=Outcome.REJECTED,
        stage=stage,
        reason=reason,
        mode="gpu",
        shape_results=[ShapeResult(label="trial 2", shape={"seq": 128}, rel_err=0.31, max_abs_err=4.0, passed=False)],
        device="NVIDIA H100 80GB HBM3",
        torch_version="2.5.1",
        triton_version="3.2.0",
        duration_s=3.0,
    )


@dataclass(frozen=True)
class Populated:
    run: int
    seed: int
    child: int
    best: int
    crossover: int
    failed: int
    pending: int


def populate(archive: Archive) -> Populated:
    """A run with a seed, a mutation chain, a crossover, a rejected and a pending program."""
    run = archive.create_run("mha_fwd", {"grid": GRID, "islands": 2}, simulated=False, name="demo")
    seed, _ = archive.add_program(run, kernel(0), operator="seed")
    archive.add_evaluation(seed, passed(1.0, 1.0), key="e-seed", simulated=False)
    archive.update_cell(run, 0, [0, 0, 0], seed, 1.0)
    child, _ = archive.add_program(run, kernel(1), parents=[seed], operator="mutate", generation=1,
                                   descriptors={"block_m": 64.0, "warps": 4.0})
    archive.add_evaluation(child, passed(1.5, 1.5), key="e-child", simulated=False)
    archive.update_cell(run, 4, [1, 0, 0], child, 1.5)
    best, _ = archive.add_program(run, kernel(2), parents=[child], operator="mutate", generation=2, island=1)
    archive.add_evaluation(best, passed(2.0, 2.0), key="e-best", simulated=False)
    archive.update_cell(run, 9, [2, 0, 1], best, 2.0)
    crossover, _ = archive.add_program(run, kernel(3), parents=[best, seed], operator="crossover", generation=3)
    archive.add_evaluation(crossover, passed(1.2, 1.2), key="e-cross", simulated=True)
    failed, _ = archive.add_program(run, kernel(4), parents=[child], operator="mutate", generation=2)
    archive.add_evaluation(failed, rejected(), key="e-failed", simulated=False)
    pending, _ = archive.add_program(run, kernel(5), parents=[best], operator="mutate", generation=3)
    return Populated(run, seed, child, best, crossover, failed, pending)
