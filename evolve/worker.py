"""An evaluation worker: one per GPU (or, simulated, per CPU), run as a Ray actor. It judges
candidates through the harness, each in a disposable sandbox process, several at a time
(compiles overlap; timing takes the GPU alone)."""

from __future__ import annotations

import os
import socket
from typing import Any

from harness.checker import Checker, CheckOptions
from harness.cost_model import simulated_duel, simulated_timings
from harness.device import detect
from harness.verdict import Outcome


class EvalWorker:
    def __init__(self, task: str, simulate: bool, options: dict[str, Any]) -> None:
        self.simulate = simulate
        self.checker = Checker(task, CheckOptions(**options), detect(force_interpreter=simulate))

    def info(self) -> dict[str, Any]:
        import ray

        return {"device": self.checker.platform.name, "mode": "simulated" if self.simulate else self.checker.platform.mode,
                "host": socket.gethostname(), "pid": os.getpid(), "node": ray.get_runtime_context().get_node_id()}

    def evaluate(self, source: str, descriptors: dict[str, float]) -> dict[str, Any]:
        verdict = self.checker.check(source)
        if self.simulate:
            verdict.mode = "simulated"
            if verdict.outcome is Outcome.PASSED:
                verdict.timings = simulated_timings(self.checker.task, descriptors, noise=source)
                verdict.add_intervals()
        return verdict.to_dict()

    def duel(self, candidate: str, rival: str, candidate_desc: dict[str, float],
             rival_desc: dict[str, float]) -> dict[str, Any]:
        """Candidate and rival timed in turns on every benchmark shape (see evolve.confirmation)."""
        if self.simulate:
            shapes = simulated_duel(self.checker.task, candidate_desc, rival_desc, key=candidate + "\0" + rival)
            return {"shapes": shapes, "mode": "simulated", "device": self.checker.platform.name}
        return self.checker.duel(candidate, rival).to_dict()
