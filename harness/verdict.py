"""What the harness says about a candidate: typed outcomes, never bare dicts of metrics.

A verdict is computed in the trusted parent process from what the sandboxed child hands
back; nothing in here is ever produced by candidate code.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from harness.confidence import Paired, speedups


class Stage(StrEnum):
    """Stages of the cascade, in the order they run; ``DONE`` means every stage passed."""

    STATIC = "static"
    COMPILE = "compile"
    SWEEP = "sweep"
    STABILITY = "stability"
    DETERMINISM = "determinism"
    ANTICHEAT = "anticheat"
    TIMING = "timing"
    DONE = "done"


class Outcome(StrEnum):
    """How the evaluation ended. ``ERROR`` is the harness's own failure, the only retryable one."""

    PASSED = "passed"
    REJECTED = "rejected"
    CRASHED = "crashed"
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass
class ShapeResult:
    """Correctness of one trial: relative norm error and max abs error against the reference."""

    label: str
    shape: dict[str, Any]
    rel_err: float | None
    max_abs_err: float | None
    passed: bool
    note: str = ""


@dataclass
class Timing:
    """One benchmark shape timed interleaved with the baseline, in one trusted process and one
    time window: medians (``ms``, ``baseline_ms``) of every sample kept."""

    shape: dict[str, Any]
    ms: float
    baseline_ms: float
    baseline_backend: str
    tflops: float
    baseline_tflops: float
    samples: list[float] = field(default_factory=list)
    baseline_samples: list[float] = field(default_factory=list)
    speedup_low: float | None = None  # the speedup's bootstrap interval over the samples
    speedup_high: float | None = None

    @property
    def speedup(self) -> float:
        return self.baseline_ms / self.ms


@dataclass
class Verdict:
    """``mode`` "gpu": judged by trusted replay; "interpreter" (or "simulated"): the untrusted
    simulation path, outputs taken from the candidate's own process and never timed."""

    outcome: Outcome
    stage: Stage
    reason: str
    mode: str  # "gpu" or "interpreter"
    shape_results: list[ShapeResult] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=list)
    device: str = ""
    torch_version: str = ""
    triton_version: str = ""
    cudnn_version: str = ""
    duration_s: float = 0.0
    sandbox: list[str] = field(default_factory=list)
    log: str = ""
    fitness_low: float | None = None  # the fitness's bootstrap interval over the timed calls
    fitness_high: float | None = None
    # Where the check's wall time went, in seconds: each stage, and across stages the waits for
    # the GPU lock, the hold of it for timing and the requests to each process (these overlap
    # the stages; see harness.trials.Context.phases).
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED

    @property
    def fitness(self) -> float | None:
        """Geometric mean of speedup over the benchmark shapes; ``None`` unless passed and timed."""
        if not self.passed or not self.timings:
            return None
        return math.exp(sum(math.log(t.speedup) for t in self.timings) / len(self.timings))

    def add_intervals(self) -> None:
        """Bootstrap intervals of each timing's speedup and of the fitness, where every timing
        kept its samples."""
        if not self.timings or not all(t.samples and t.baseline_samples for t in self.timings):
            return
        shapes, overall = speedups([Paired(t.samples, t.baseline_samples) for t in self.timings])
        for t, i in zip(self.timings, shapes):
            t.speedup_low, t.speedup_high = i.low, i.high
        self.fitness_low, self.fitness_high = overall.low, overall.high

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        d["fitness"] = self.fitness
        for t, td in zip(self.timings, d["timings"]):
            td["speedup"] = t.speedup
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verdict:
        return cls(
            outcome=Outcome(d["outcome"]),
            stage=Stage(d["stage"]),
            reason=d["reason"],
            mode=d["mode"],
            shape_results=[ShapeResult(**s) for s in d.get("shape_results", [])],
            timings=[
                Timing(**{k: v for k, v in t.items() if k != "speedup"}) for t in d.get("timings", [])
            ],
            device=d.get("device", ""),
            torch_version=d.get("torch_version", ""),
            triton_version=d.get("triton_version", ""),
            cudnn_version=d.get("cudnn_version", ""),
            duration_s=d.get("duration_s", 0.0),
            sandbox=list(d.get("sandbox", [])),
            log=d.get("log", ""),
            fitness_low=d.get("fitness_low"),
            fitness_high=d.get("fitness_high"),
            phases={str(k): float(v) for k, v in d.get("phases", {}).items()},
        )
