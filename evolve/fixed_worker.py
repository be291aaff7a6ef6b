"""A simulated GPU worker for running the controller at scale without GPUs
(``evaluation.fixed_eval_s``): every job (a check or a duel) takes a fixed wall time; a check
passes with the cost model's timings, without the interpreter. It never imports torch, so that
sixteen of them fit on two cores, and it keeps its own record of when it was busy: measurements
of the controller should not rest on the controller's account of itself."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any, cast

from harness.cost_model import simulated_duel, simulated_timings
from harness.task import Task
from harness.verdict import Outcome, Stage, Verdict

Cases = list[tuple[dict[str, Any], float, str]]  # (benchmark case, its FLOPs, its label)


def modelled_cases(task: str, shapes: list[dict[str, Any]] | None = None) -> Cases:
    """What the cost model needs of ``task`` (measured on ``shapes`` where given), computed on the
    controller (loading a task imports torch)."""
    from harness.task import get_task

    t = get_task(task, shapes)
    return [(case, t.flops(case), t.label(case)) for case in t.benchmark_cases()]


class _CaseTable:
    """The questions the cost model asks a task, answered from ``modelled_cases``."""

    def __init__(self, cases: Cases) -> None:
        self._cases = cases

    def benchmark_cases(self) -> list[dict[str, Any]]:
        return [case for case, _, _ in self._cases]

    def flops(self, case: dict[str, Any]) -> float:
        return next(f for c, f, _ in self._cases if c == case)

    def label(self, case: dict[str, Any]) -> str:
        return next(label for c, _, label in self._cases if c == case)


class FixedTimeWorker:
    def __init__(self, cases: Cases, eval_s: float) -> None:
        self.task = cast(Task, _CaseTable(cases))
        self.eval_s = eval_s
        self._spans: list[tuple[float, float, str]] = []

    def info(self) -> dict[str, Any]:
        import ray

        return {"device": self.device, "mode": "simulated",
                "host": socket.gethostname(), "pid": os.getpid(), "node": ray.get_runtime_context().get_node_id()}

    def evaluate(self, source: str, descriptors: dict[str, float]) -> dict[str, Any]:
        def check() -> dict[str, Any]:
            verdict = Verdict(Outcome.PASSED, Stage.DONE, "", "simulated", device=self.device,
                              timings=simulated_timings(self.task, descriptors, noise=source), duration_s=self.eval_s)
            verdict.add_intervals()
            return verdict.to_dict()

        return self._taking_eval_s("check", check)

    def duel(self, candidate: str, rival: str, candidate_desc: dict[str, float],
             rival_desc: dict[str, float]) -> dict[str, Any]:
        """Candidate and rival timed in turns (evolve.confirmation), modelled; as long as a check."""
        return self._taking_eval_s("duel", lambda: {
            "shapes": simulated_duel(self.task, candidate_desc, rival_desc, key=candidate + "\0" + rival),
            "mode": "simulated", "device": self.device})

    @property
    def device(self) -> str:
        return f"simulated GPU ({self.eval_s:g} s per job)"

    def _taking_eval_s(self, kind: str, job: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        start = time.time()
        answer = job()
        time.sleep(max(0.0, start + self.eval_s - time.time()))
        self._spans.append((start, time.time(), kind))
        return answer

    def spans(self) -> list[tuple[float, float, str]]:
        """(start, end, "check" or "duel") of every job so far, in seconds since the epoch."""
        return list(self._spans)
