"""Where candidates are evaluated. One interface; the implementation is Ray: a local cluster
by default, or any cluster by address. A worker that hangs is replaced and the candidate it
hung on gets a timeout verdict. A worker that dies (its process or its node lost) is replaced
and its candidates go back to the queue: the controller gives up on one, with a crash verdict,
the second time it is in flight on a worker that dies (never a blind retry loop)."""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from harness.verdict import Outcome, Stage, Verdict


@dataclass(frozen=True)
class Job:
    program_id: int
    source: str
    descriptors: dict[str, float]
    island: int


@dataclass(frozen=True)
class Result:
    job: Job
    verdict: Verdict | None  # None: not judged, put it back in the queue
    worker: str = ""


@dataclass(frozen=True)
class Duel:
    """``candidate`` against ``rival`` (an elite whose grid fitness is ``rival_fitness``)."""

    candidate: Job
    rival: Job
    rival_fitness: float

    @property
    def key(self) -> str:
        return f"duel-{self.candidate.program_id}-vs-{self.rival.program_id}"


@dataclass(frozen=True)
class ShapeDuel:
    """The timed calls (ms) of one benchmark shape: candidate and rival in turns."""

    label: str
    candidate: list[float]
    rival: list[float]


@dataclass(frozen=True)
class DuelResult:
    """What a worker measured; ``shapes`` is empty and ``reason`` says why when it could not."""

    duel: Duel
    shapes: list[ShapeDuel]
    mode: str
    device: str
    reason: str = ""
    worker: str = ""

    @classmethod
    def from_dict(cls, duel: Duel, d: dict[str, Any], worker: str = "") -> DuelResult:
        shapes = [ShapeDuel(str(s["label"]), [float(x) for x in s["candidate"]], [float(x) for x in s["rival"]])
                  for s in d.get("shapes", [])]
        return cls(duel, shapes, str(d.get("mode", "")), str(d.get("device", "")), str(d.get("reason", "")), worker)


class Executor(ABC):
    @property
    @abstractmethod
    def capacity(self) -> int:
        """How many jobs may be in flight at once."""

    @abstractmethod
    def submit(self, job: Job | Duel) -> None: ...

    @abstractmethod
    def results(self, timeout: float) -> list[Result | DuelResult]:
        """Finished jobs and duels, waiting at most ``timeout`` seconds for the first."""

    @abstractmethod
    def in_flight(self) -> int: ...

    @abstractmethod
    def describe(self) -> str: ...

    @abstractmethod
    def close(self) -> None: ...


def failure(outcome: Outcome, reason: str, mode: str) -> Verdict:
    return Verdict(outcome, Stage.COMPILE, reason, mode)


@dataclass
class _Slot:
    actor: Any
    name: str
    jobs: dict[Any, tuple[Job | Duel, float]] = field(default_factory=dict)  # ref -> (job, started)


class RayExecutor(Executor):
    def __init__(self, task: str, *, simulate: bool, workers: int | None, per_worker: int | None,
                 ray_address: str | None, check_options: dict[str, Any], job_timeout_s: float,
                 gpu_model: str | None = None, fixed_eval_s: float | None = None) -> None:
        import ray

        from evolve.errors import UserError

        self._ray = ray
        if not ray.is_initialized():
            # Without an address, a cluster of our own ("local"), never one that happens to run here.
            kwargs: dict[str, Any] = {"address": ray_address or "local", "include_dashboard": False,
                                      "logging_level": "ERROR", "log_to_driver": False, "namespace": "evolve"}
            if ray_address is None:
                kwargs["object_store_memory"] = 256 << 20
            ray.init(**kwargs)
        resources = ray.cluster_resources()
        self.gpu_model: str | None = None
        # SPREAD: workers on as many nodes as possible, so losing a node costs few of them.
        need: dict[str, Any] = {"num_cpus": 1, "scheduling_strategy": "SPREAD"}
        if simulate:
            default_workers = max(1, int(resources.get("CPU", 1)))
        else:
            gpus = _gpus_by_model(ray.nodes())
            if not gpus:
                raise UserError("the Ray cluster has no GPU: run on a GPU machine, join a cluster with "
                                "--ray-address, or use --simulate")
            if gpu_model is not None and gpu_model not in gpus:
                raise UserError(f"this run is timed on {gpu_model} GPUs, and the Ray cluster has none "
                                f"(it has {', '.join(sorted(gpus))}): timings compare only within one GPU model")
            # Timings compare only within one GPU model: a mixed cluster uses its largest group.
            self.gpu_model = gpu_model or max(gpus, key=gpus.__getitem__)
            need["num_gpus"] = 1
            if self.gpu_model != "unknown":
                need["accelerator_type"] = self.gpu_model
            default_workers = gpus[self.gpu_model]
        self.simulate = simulate
        self._mode = "simulated" if simulate else "gpu"
        self._per_worker = per_worker or (1 if simulate else 12)
        self._timeout = job_timeout_s
        if fixed_eval_s is not None:
            from evolve.fixed_worker import FixedTimeWorker, modelled_cases

            need["num_cpus"] = 0  # it only sleeps: sixteen of them fit a two-core cluster
            self._remote = ray.remote(**need)(FixedTimeWorker)
            self._args: tuple[Any, ...] = (modelled_cases(task, check_options.get("shapes")), fixed_eval_s)
        else:
            self._remote = ray.remote(**need)(_worker_class())
            self._args = (task, simulate, check_options)
        self._slots = [self._spawn(i) for i in range(workers or default_workers)]
        self._spawned = len(self._slots)

    def _spawn(self, i: int) -> _Slot:
        actor = self._remote.options(max_concurrency=self._per_worker, max_restarts=0).remote(*self._args)
        return _Slot(actor, f"worker-{i}")

    @property
    def capacity(self) -> int:
        # One more per worker, waiting in its Ray queue: it starts the moment a check ends,
        # not a controller round trip later (with many workers, finishing together, that
        # round trip is every verdict recorded and every proposal made).
        return len(self._slots) * (self._per_worker + 1)

    def in_flight(self) -> int:
        return sum(len(s.jobs) for s in self._slots)

    def describe(self) -> str:
        infos = self._ray.get([s.actor.info.remote() for s in self._slots])
        devices = sorted({i["device"] for i in infos})
        return f"{len(infos)} worker(s) x {self._per_worker} at once on {', '.join(devices)}"

    def workers(self) -> list[Any]:
        """The live worker actors, for measurements taken on the workers themselves."""
        return [s.actor for s in self._slots]

    def submit(self, job: Job | Duel) -> None:
        slot = min(self._slots, key=lambda s: len(s.jobs))
        if isinstance(job, Duel):
            ref = slot.actor.duel.remote(job.candidate.source, job.rival.source, job.candidate.descriptors,
                                         job.rival.descriptors)
        else:
            ref = slot.actor.evaluate.remote(job.source, job.descriptors)
        # A job waiting behind the worker's others starts its hang clock when one of them ends.
        slot.jobs[ref] = (job, time.monotonic() if len(slot.jobs) < self._per_worker else math.inf)

    def _replace(self, slot: _Slot) -> None:
        try:
            self._ray.kill(slot.actor)
        except Exception:
            pass
        fresh = self._spawn(self._spawned)
        self._spawned += 1
        self._slots[self._slots.index(slot)] = fresh

    def results(self, timeout: float) -> list[Result | DuelResult]:
        refs = [r for s in self._slots for r in s.jobs]
        if not refs:
            time.sleep(min(timeout, 0.05))
            return []
        ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=timeout)
        out: list[Result | DuelResult] = []
        ready_set = set(ready)
        for slot in list(self._slots):
            dead = False
            for ref in [r for r in slot.jobs if r in ready_set]:
                job, _ = slot.jobs[ref]
                try:
                    answer = self._ray.get(ref)
                except self._ray.exceptions.RayActorError:
                    dead = True  # a lost worker or node: everything it held goes back to the queue
                    continue
                except self._ray.exceptions.RayError as e:
                    answer = None
                    verdict = failure(Outcome.ERROR, f"evaluation failed in Ray: {e}", self._mode)
                slot.jobs.pop(ref)
                if isinstance(job, Duel):
                    out.append(DuelResult.from_dict(job, answer, slot.name) if answer is not None else
                               DuelResult(job, [], self._mode, "", "its re-timing failed in Ray", slot.name))
                else:
                    out.append(Result(job, Verdict.from_dict(answer) if answer is not None else verdict, slot.name))
            now = time.monotonic()
            for ref, (job, started) in list(slot.jobs.items())[:self._per_worker]:
                if started == math.inf:
                    slot.jobs[ref] = (job, now)
            hung = [ref for ref, (_, started) in slot.jobs.items() if now - started > self._timeout]
            if hung or dead:
                for ref, (job, _) in slot.jobs.items():
                    if isinstance(job, Duel):  # never retried: the candidate keeps its lone fitness
                        why = "its worker hung" if ref in hung else "its worker was lost"
                        out.append(DuelResult(job, [], self._mode, "", why, slot.name))
                        continue
                    verdict = (failure(Outcome.TIMEOUT, f"the worker judging it hung for over {self._timeout:g} s",
                                       self._mode) if ref in hung else None)
                    out.append(Result(job, verdict, slot.name))
                slot.jobs.clear()
                self._replace(slot)
        return out

    def close(self) -> None:
        for slot in self._slots:
            try:
                self._ray.kill(slot.actor)
            except Exception:
                pass
        self._ray.shutdown()


def _gpus_by_model(nodes: list[dict[str, Any]]) -> dict[str, int]:
    """GPUs of the cluster's live nodes, by Ray accelerator type ("unknown" when Ray names none)."""
    out: dict[str, int] = {}
    for node in nodes:
        res = node.get("Resources", {})
        if not node.get("Alive") or not res.get("GPU"):
            continue
        model = next((k.split(":", 1)[1] for k in res if k.startswith("accelerator_type:")), "unknown")
        out[model] = out.get(model, 0) + int(res["GPU"])
    return out


def _worker_class() -> type:
    from evolve.worker import EvalWorker

    return EvalWorker
