"""Re-timing before writing: each chosen program checked again by the trusted judge of its run's
task (on that run's benchmark shapes), on this GPU, timed in turns with torch's default SDPA
(its backward, for attn_bwd) on every benchmark shape.

The archive's figures were measured during the search, possibly under another torch (whose
default SDPA may pick another backend) and always by evaluations that won a noisy ranking; the
routing of the package rests on this fresh, independent measurement instead.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from evolve.errors import UserError
from evolve.export.winners import Figures, Kernel, Shape
from harness.device import Platform
from harness.verdict import Outcome, Verdict

Key = tuple[int, tuple[str, int, int, bool, str, int]]  # (program, shape key)


class Judge(Protocol):
    """What re-timing needs of ``harness.checker.Checker``."""

    platform: Platform

    @property
    def timing_enabled(self) -> bool: ...

    def check(self, source: str) -> Verdict: ...


@dataclass(frozen=True)
class Retiming:
    device: str
    torch_version: str
    triton_version: str
    cudnn_version: str
    at: datetime
    figures: dict[Key, Figures]


def require_gpu(judge: Judge, measured_on: str) -> None:
    if not judge.timing_enabled:
        raise UserError(f"this machine does not time on a GPU ({judge.platform.name}), and export re-times every "
                        f"chosen kernel against torch's default SDPA before writing: run it on a {measured_on}, or "
                        "pass --no-retime to route by the intervals the search archived (the package then says "
                        "it was not re-timed)")
    if judge.platform.name != measured_on:
        raise UserError(f"the runs were measured on a {measured_on} but this machine has a {judge.platform.name}: "
                        f"re-time on a {measured_on}, or pass --no-retime to route by the archived intervals")


PARALLEL = 6  # checks at once: they compile side by side and take turns for the GPU's timing


def retime(kernels: list[Kernel], judge: Judge, progress: Callable[[str], None]) -> Retiming:
    """One full check per program (all of one task, which ``judge`` checks), several at once;
    refuses a program the judge no longer passes."""
    if not kernels:
        raise ValueError("re-timing needs at least one kernel")
    figures: dict[Key, Figures] = {}
    progress(f"Re-timing {len(kernels)} {kernels[0].task} program(s) against torch's default SDPA on {judge.platform.name}, "
             f"{min(PARALLEL, len(kernels))} at a time ...")
    with ThreadPoolExecutor(PARALLEL) as pool:
        verdicts = list(pool.map(judge.check, [k.source for k in kernels]))
    for k, verdict in zip(kernels, verdicts):
        if not verdict.passed:
            reason = verdict.reason.splitlines()[0][:300] if verdict.reason else ""
            retry = "; try again" if verdict.outcome is Outcome.ERROR else "; it is not exported"
            raise UserError(f"program {k.program_id} (run {k.run_id}) failed its re-check: {verdict.outcome.value} "
                            f"at stage {verdict.stage.value} ({reason}){retry}")
        for t in verdict.timings:
            figures[(k.program_id, Shape.of(t.shape, k.direction).key)] = Figures.fresh(t)
        timed = (f"fitness {verdict.fitness:.3f} over {verdict.timings[0].baseline_backend}" if verdict.timings
                 else "nothing timed")
        progress(f"  program {k.program_id}: passed in {verdict.duration_s:.0f} s, {timed}")
    last = verdicts[-1]
    return Retiming(last.device, last.torch_version, last.triton_version, last.cudnn_version,
                    datetime.now(UTC), figures)


def merged(parts: list[Retiming]) -> Retiming:
    """The re-timings of several tasks as one: the figures of all, the platform of the last."""
    last = parts[-1]
    figures = {key: f for part in parts for key, f in part.figures.items()}
    return Retiming(last.device, last.torch_version, last.triton_version, last.cudnn_version, last.at, figures)
