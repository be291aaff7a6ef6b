"""The cheap checks a model's candidate passes before it may take GPU time, on this machine:
novelty against the whole archive (any run), the static gate, the feasibility rule on its
TUNABLES entries (evolve/feasibility.py), then compile and smoke test in Triton's interpreter on
the CPU, in the harness's sandbox. A failure is an outcome with a
message for the model (its repair loop), never an exception."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from archive import Archive
from evolve import feasibility, tunables
from evolve.llm.settings import Repair
from harness.checker import Checker, CheckOptions
from harness.device import detect
from harness.static_gate import check_source
from harness.task import get_task
from harness.verdict import Outcome, Stage

log = logging.getLogger("evolve.llm")


@dataclass(frozen=True)
class Precheck:
    ok: bool
    kind: str = ""  # "duplicate", "static", "feasibility", or the stage the candidate failed at ("compile")
    message: str = ""
    log_tail: str = ""
    duplicate_of: int | None = None


class LocalCheck:
    def __init__(self, archive: Archive, task: str, settings: Repair, *, log_lines: int = 30) -> None:
        self.archive, self.settings, self.log_lines = archive, settings, log_lines
        self.signature = get_task(task).signature
        # Waiting happens in the event loop: threads of the default executor stay free for the search.
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.checker: Checker | None = None
        if settings.smoke:
            limit = settings.timeout_s
            self.checker = Checker(task, CheckOptions(timing=False, stop_after=Stage.COMPILE, total_timeout_s=limit,
                                                      load_timeout_s=limit, request_timeout_s=limit),
                                   detect(force_interpreter=True))

    async def __call__(self, source: str, parents: list[int]) -> Precheck:
        pid = self.archive.find_program_by_code(None, source)
        if pid is not None:
            if pid in parents:
                message = f"The candidate is program {pid} again (identical once layout and comments are ignored)."
            else:
                message = (f"The candidate is identical (once layout and comments are ignored) to program {pid}, "
                           "already in the archive.")
            return Precheck(False, "duplicate", message, duplicate_of=pid)
        gate = check_source(source, self.signature)
        if not gate.ok:
            return Precheck(False, "static", gate.reason)
        infeasible = _infeasible(source)
        if infeasible:
            return Precheck(False, "feasibility", infeasible)
        checker = self.checker
        if checker is None:
            return Precheck(True)
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:
            self._slots, self._loop = asyncio.Semaphore(self.settings.concurrency), loop
        async with self._slots:
            verdict = await asyncio.to_thread(checker.check, source)
        if verdict.outcome is Outcome.PASSED:
            return Precheck(True)
        if verdict.outcome is Outcome.ERROR:  # the harness's own trouble, not the model's: let the GPU judge it
            log.warning("the cheap check could not judge a candidate: %s", verdict.reason)
            return Precheck(True)
        tail = "\n".join(verdict.log.strip().splitlines()[-self.log_lines:]) if verdict.log else ""
        return Precheck(False, verdict.stage.value, f"{verdict.outcome.value}: {verdict.reason}", tail)


def _infeasible(source: str) -> str:
    """Why one of the source's TUNABLES entries cannot compile on sm_90 (the interpreter, which
    has no shared-memory limit, would pass it), or ""."""
    for name, entry in tunables.entries(tunables.find(source)).items():
        found = feasibility.problems({n: t.value for n, t in entry.items()}, feasibility.head_dim_of(name))
        if found:
            where = f"TUNABLES entry {name}" if name else "its tunables"
            return f"{where} cannot compile on the GPU (sm_90, triton 3.6): {'; '.join(found)}."
    return ""
