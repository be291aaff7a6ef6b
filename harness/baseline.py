"""The baseline a candidate is timed against: the task's fastest library implementation on
this GPU (for mha_fwd, torch SDPA's best backend per shape), timed in the same worker."""

from __future__ import annotations

from typing import Any

from harness.task import Task
from harness.timing import Bench, median


class Baseline:
    def __init__(self, task: Task, bench: Bench, device: str = "cuda") -> None:
        self.task, self.bench, self.device = task, bench, device
        self._best: dict[str, str] = {}

    def _time(self, name: str, case: dict[str, Any], warmup_ms: float, rep_ms: float) -> list[float]:
        fn = self.task.baselines()[name]
        inputs = self.task.make_inputs(case, 0, self.device)
        return self.bench.samples(lambda: fn(inputs, case), warmup_ms, rep_ms)

    def best_backend(self, case: dict[str, Any]) -> str:
        """Fastest available backend for this case, found once per worker."""
        key = self.task.label(case)
        if key not in self._best:
            timed = {}
            for name in self.task.baselines():
                try:
                    timed[name] = median(self._time(name, case, 10, 40))
                except RuntimeError:  # a backend that does not support this case or GPU
                    continue
            if not timed:
                raise RuntimeError(f"no baseline runs on {key}")
            self._best[key] = min(timed, key=timed.__getitem__)
        return self._best[key]

    def samples(self, case: dict[str, Any], warmup_ms: float, rep_ms: float) -> tuple[str, list[float]]:
        name = self.best_backend(case)
        return name, self._time(name, case, warmup_ms, rep_ms)
