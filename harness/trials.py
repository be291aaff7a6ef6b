"""How the checker's stages run trials: one interface, two ways.

``ReplayTrials`` (harness/replayed.py, on a GPU) records what the candidate launches in its
sandbox and has the trusted judge replay, compare and time it: nothing the candidate's Python
says is believed. ``SimulatedTrials`` (harness/simulated.py, in Triton's CPU interpreter) has
no binaries to replay, so it compares the outputs the sandbox hands back: the untrusted
simulation path, for ``--simulate`` and the tests, never for timings.

Every method judges as it goes and raises ``Rejected`` with the reason on the first failure.
"""

from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from harness.gpulock import GpuLock
from harness.protocol import Malformed
from harness.sandbox import Sandbox, SandboxTimeout
from harness.task import Task, Trial
from harness.verdict import Outcome, ShapeResult, Stage, Timing


class Rejected(Exception):
    """A candidate failed a check: carries the verdict's outcome, stage and reason."""

    def __init__(self, outcome: Outcome, stage: Stage, reason: str) -> None:
        super().__init__(reason)
        self.outcome, self.stage, self.reason = outcome, stage, reason


@dataclass
class Context:
    """What every trial runner shares with the cascade: the sandbox, the stage reached, the
    results so far, the random source of seeds the candidate never sees, and the clock."""

    task: Task
    sandbox: Sandbox
    rng: random.Random
    gpu: GpuLock
    deadline: float
    request_timeout_s: float
    max_output_bytes: int
    total_timeout_s: float
    stage: Stage = Stage.COMPILE
    results: list[ShapeResult] = field(default_factory=list)
    tags: int = 0
    # Seconds spent, summed over the check: "gpu wait" for the GPU lock, "gpu exclusive" holding
    # it alone, "sandbox" and "judge" in requests to those processes.
    phases: dict[str, float] = field(default_factory=dict)

    def add(self, phase: str, seconds: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds

    @contextmanager
    def locked(self, lock: Callable[[], AbstractContextManager[None]] | None, phase: str) -> Iterator[None]:
        """``lock`` held (none: nothing to wait for) around work counted as ``phase``; the wait
        for the lock is counted as "gpu wait"."""
        start = time.monotonic()
        with (lock or unlocked)():
            held = time.monotonic()
            self.add("gpu wait", held - start)
            try:
                yield
            finally:
                self.add(phase, time.monotonic() - held)

    def remaining(self, limit: float | None = None) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise SandboxTimeout(f"the check ran past its {self.total_timeout_s:g} s limit")
        return min(limit or self.request_timeout_s, left)

    def seed(self) -> int:
        return self.rng.getrandbits(31)

    def ask(self, msg: dict[str, Any], label: str, lock: Callable[[], Any] | None = None) -> dict[str, Any]:
        """One request to the sandbox, its failures turned into rejections."""
        try:
            with self.locked(lock, "sandbox"):
                resp = self.sandbox.request(msg, self.remaining())
        except Malformed as e:
            raise Rejected(Outcome.REJECTED, self.stage, f"{label}: its process answered out of protocol: {e}") from None
        if self.sandbox.output_bytes > self.max_output_bytes:
            raise Rejected(Outcome.REJECTED, self.stage,
                           f"{label}: output flood: wrote {self.sandbox.output_bytes / 1e6:.1f} MB to stdout/stderr "
                           f"(limit {self.max_output_bytes / 1e6:.1f} MB)")
        if not resp.get("ok"):
            kind, error = resp.get("kind"), quoted(resp.get("error", "unknown error"))
            if kind in ("violation", "recording"):
                raise Rejected(Outcome.REJECTED, Stage.ANTICHEAT, f"{label}: {error}")
            raise Rejected(Outcome.REJECTED, Stage.COMPILE if kind == "compile" else self.stage, f"{label}: {error}")
        problems = resp.get("problems")
        if problems:
            text = "; ".join(quoted(p) for p in problems) if isinstance(problems, list) else quoted(problems)
            raise Rejected(Outcome.REJECTED, Stage.ANTICHEAT, f"{label}: {text}")
        return resp

    def reject(self, reason: str, stage: Stage | None = None) -> Rejected:
        return Rejected(Outcome.REJECTED, stage or self.stage, reason)


@contextmanager
def unlocked() -> Iterator[None]:
    """No lock: work that needs none, or under one the caller already holds."""
    yield


def quoted(text: Any, limit: int = 600) -> str:
    """Text that came from the candidate's process (an exception, a message), capped and
    marked as such wherever it is shown to people or models."""
    s = str(text)
    s = s if len(s) <= limit else s[:limit] + " [...]"
    return "«" + s.replace("«", "‹").replace("»", "›") + "»"


class TrialRunner(ABC):
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @abstractmethod
    def trial(self, trial: Trial) -> None:
        """One correctness trial on fresh inputs; the result is appended to ``ctx.results``."""

    @abstractmethod
    def determinism(self, trial: Trial) -> None:
        """Equal inputs give bitwise equal outputs."""

    @abstractmethod
    def consistency(self, heavy: list[Trial]) -> None:
        """Later calls, and calls on the same tensors refilled, behave as the first ones did;
        ``heavy`` are the trials to call most often (the timed shapes, where cheating pays)."""

    @abstractmethod
    def time(self, cases: list[dict[str, Any]]) -> list[Timing]:
        """Each case timed against the task's default baseline."""
