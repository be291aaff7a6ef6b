"""How busy the machine was while a benchmark ran: the share of all CPU cores in use (from
/proc/stat), this process's own CPU time (the share of one core the parent used: near 1.0
means its Python is the serial resource), the CPU time of its ended child processes, and the GPU's utilization (nvidia-smi
utilization.gpu, the share of each sample period in which a kernel was executing).

    with MachineLoad() as load:
        ...
    load.summary()  # -> dict, None where this machine cannot say
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import threading
import time
from typing import Any


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies over all cores, or None off Linux."""
    try:
        fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


class MachineLoad:
    def __init__(self, period_s: float = 0.5) -> None:
        self.period_s = period_s
        self._cpu: list[float] = []
        self._gpu: list[float] = []
        self._stop = threading.Event()
        self._smi: subprocess.Popen[str] | None = None

    def __enter__(self) -> MachineLoad:
        self._t0 = time.monotonic()
        self._self0, self._children0 = _own_cpu_s(), _children_cpu_s()
        self._ticks0 = _cpu_ticks()
        self._sampler = threading.Thread(target=self._sample_cpu, daemon=True)
        self._sampler.start()
        if shutil.which("nvidia-smi"):
            self._smi = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                 f"-lms={int(self.period_s * 1000)}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            threading.Thread(target=self._read_gpu, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.monotonic() - self._t0
        self.own_cpu_s = _own_cpu_s() - self._self0
        self.children_cpu_s = _children_cpu_s() - self._children0
        ticks = _cpu_ticks()
        self.cpu_busy = ((ticks[0] - self._ticks0[0]) / max(1, ticks[1] - self._ticks0[1])
                         if ticks and self._ticks0 else None)
        self._stop.set()
        if self._smi is not None:
            self._smi.terminate()
            self._smi.wait()

    def _sample_cpu(self) -> None:
        last = _cpu_ticks()
        while not self._stop.wait(self.period_s):
            now = _cpu_ticks()
            if now and last and now[1] > last[1]:
                self._cpu.append((now[0] - last[0]) / (now[1] - last[1]))
            last = now

    def _read_gpu(self) -> None:
        assert self._smi is not None and self._smi.stdout is not None
        for line in self._smi.stdout:
            try:
                self._gpu.append(float(line.strip()) / 100)
            except ValueError:
                continue

    def summary(self) -> dict[str, Any]:
        """Means over the run; ``cpu_saturated_share`` is the share of samples with over 90% of
        the cores busy."""
        return {
            "cores": os.cpu_count(), "wall_s": self.wall_s, "cpu_busy": self.cpu_busy,
            "cpu_saturated_share": (sum(c > 0.9 for c in self._cpu) / len(self._cpu)) if self._cpu else None,
            "parent_cpu_s": self.own_cpu_s, "children_cpu_s": self.children_cpu_s, "parent_core_share": self.own_cpu_s / self.wall_s if self.wall_s else None,
            "gpu_busy": statistics.fmean(self._gpu) if self._gpu else None,
            "gpu_samples": len(self._gpu),
        }


def _own_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _children_cpu_s() -> float:
    """CPU time of the child processes that have ended and been waited for (sandboxes, judges)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
