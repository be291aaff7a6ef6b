"""The search loop: MAP-Elites over kernels.

propose (select parents from the grid, apply an operator) -> de-duplicate and gate -> the
executor judges it -> the archive stores the verdict -> the grid keeps the elites. The archive
is written before anything is submitted and after anything is judged, so a controller killed
at any moment loses only what was in flight, and ``resume`` puts that back in the queue.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from archive import Archive
from archive.writes import shape_label
from evolve.config import RunConfig
from evolve.confirmation import rule
from evolve.descriptors import describe
from evolve.executor import Duel, DuelResult, Executor, Job, Result
from evolve.grid import Elite, KernelGrid
from evolve.operators import Context, Feedback, Leader, Operator, Parent
from evolve.selection import inspirations, select
from harness.static_gate import check_source
from harness.task import get_task
from harness.verdict import Outcome, Stage, Verdict

log = logging.getLogger("evolve.search")


class SearchFailed(Exception):
    """The search cannot go on (e.g. the seed kernel fails its checks)."""


@dataclass
class Progress:
    run_id: int
    evaluated: int = 0
    passed: int = 0
    failed: int = 0
    duplicates: int = 0
    in_flight: int = 0
    confirmed: int = 0  # candidates that won their side-by-side re-timing
    unconfirmed: int = 0  # and those whose gain was within the noise
    best_fitness: float | None = None
    best_tflops: float | None = None
    best_program: int | None = None
    coverage: float = 0.0
    elapsed_s: float = 0.0
    session_evaluated: int = 0
    session_s: float = 0.0
    budget: dict[str, Any] = field(default_factory=dict)
    simulated: bool = False  # figures come from the cost model, not from a GPU
    workers: str = ""
    status: str = "running"

    @property
    def per_minute(self) -> float:
        return 60.0 * self.session_evaluated / self.session_s if self.session_s > 0 else 0.0


@dataclass
class _Known:
    source: str
    descriptors: dict[str, float]
    generation: int
    evaluation: dict[str, Any] | None = None
    operator: str = ""
    parents: tuple[int, ...] = ()
    meta: dict[str, Any] | None = None
    fitness: float | None = None  # what the search credits it with (see Feedback.fitness)
    island: int = 0
    lineage: int = 0  # the seed it descends from: its index among the run's seed kernels


class Search:
    def __init__(self, cfg: RunConfig, archive: Archive, executor: Executor, operators: dict[str, Operator], *,
                 resume: int | None = None, on_progress: Callable[[Progress], None] | None = None) -> None:
        self.cfg, self.archive, self.executor = cfg, archive, executor
        self.operators = {name: op for name, op in operators.items() if cfg.operators.get(name, 0) > 0}
        self.weights = [cfg.operators[name] for name in self.operators]
        self.rng = random.Random(cfg.random_seed)
        self.grid = KernelGrid(cfg.islands.count, seed=cfg.random_seed)
        self.task = get_task(cfg.task, cfg.shapes)
        self.on_progress = on_progress or (lambda p: None)
        self._resume = resume
        self._known: dict[int, _Known] = {}
        self._queue: deque[Job] = deque()
        self._attempts: dict[int, int] = {}
        # By candidate: re-timings in flight, with its own check's fitness and verdict (None for a
        # duel sent again on resume, whose verdict this session did not see).
        self._duels: dict[int, tuple[Duel, float, Verdict | None]] = {}
        self._resent: list[Duel] = []
        self.lineages = max(1, len(cfg.seed_kernel))
        # By lineage and benchmark shape (its archive label): the fastest passed program on it,
        # as (ms, program id, shape), for operators that recombine per shape.
        self._leaders: dict[tuple[int, str], tuple[float, int, dict[str, Any]]] = {}
        self._island_turn = 0
        self._stop = False
        self._force = False
        self._seed_failures: list[str] = []
        self._empty_proposals = 0
        self._exhausted = False
        self.progress = Progress(run_id=0)
        self._prior_s = 0.0
        self._session_start = time.monotonic()

    # -- run lifecycle -------------------------------------------------------------------------
    def open(self) -> int:
        """Create the run (adding the seed) or reopen it (rebuilding the grid, re-queueing what
        was in flight). Returns the run id."""
        if self._resume is None:
            config = self.cfg.model_dump(mode="json")
            config["grid"] = self.grid.config()
            run_id = self.archive.create_run(self.cfg.task, config, simulated=self.cfg.simulate,
                                             budget=self.cfg.budget.model_dump())
            for lineage, path in enumerate(self.cfg.seed_kernel or [self.task.seed_path()]):
                source = path.read_text()
                _, created = self.archive.add_program(run_id, source, operator="seed", generation=0, island=lineage,
                                                      descriptors=describe(source), meta={"lineage": lineage})
                if not created:
                    raise SearchFailed(f"seed kernel {path} has the same code as an earlier one")
            self.archive.add_event(run_id, "started", f"search of {self.cfg.task} started",
                                   {"simulated": self.cfg.simulate})
        else:
            run_id = self._resume
            self.archive.set_run_status(run_id, "running")
            for cell in self.archive.cells(run_id):
                known = self._load(cell.program_id)
                known.fitness = max(known.fitness or 0.0, cell.fitness)
                self.grid.insert(cell.coords[-1], cell.program_id, cell.fitness, known.descriptors)
            self.archive.add_event(run_id, "resumed", "search resumed")
            for lineage in range(self.lineages):
                for case in self.archive.best_per_case(run_id, simulated=self.cfg.simulate, lineage=lineage):
                    self._leaders[lineage, case.label] = (case.timing.ms, case.program_id, case.timing.shape)
            self._decide_again(run_id)
        for pid in self.archive.pending_programs(run_id):
            info = self.archive.get_program(pid)
            self._queue.append(Job(pid, info.source, info.descriptors, info.island))
        stats = self.archive.stats(run_id)
        run = self.archive.get_run(run_id)
        self.progress = Progress(run_id=run_id, evaluated=stats.evaluations, duplicates=0,
                                 passed=stats.by_outcome.get("passed", 0),
                                 failed=stats.evaluations - stats.by_outcome.get("passed", 0),
                                 elapsed_s=run.spend.seconds, budget=self.cfg.budget.model_dump(exclude_none=True),
                                 simulated=run.simulated)
        self._prior_s = run.spend.seconds
        self._update_best()
        return run_id

    def request_stop(self) -> None:
        """First call: no new candidates, wait for those in flight. Second: stop at once (those in
        flight stay pending and are re-queued by ``--resume``)."""
        if self._stop:
            self._force = True
        self._stop = True

    async def run(self) -> Progress:
        run_id = self.progress.run_id
        self.progress.workers = self.executor.describe()
        self._session_start = last_spend = time.monotonic()
        proposing: set[asyncio.Task[Job | None]] = set()
        for duel in self._resent:
            self.executor.submit(duel)
        self._resent.clear()
        try:
            while not self._force:
                self._tick()
                accepting = not self._stop and self._budget_left(len(proposing))
                while accepting and self.executor.in_flight() + len(proposing) < self.executor.capacity:
                    if self._queue:
                        self._submit(self._queue.popleft())
                    elif self.grid.elites():
                        proposing.add(asyncio.create_task(self._propose(run_id)))
                    else:
                        break
                    accepting = self._budget_left(len(proposing))
                if not accepting and not proposing and self.executor.in_flight() == 0:
                    break
                if not proposing and self.executor.in_flight() == 0 and not self._queue and not self.grid.elites():
                    if self._seed_failures:
                        break
                    raise SearchFailed("nothing to evaluate and no elite to build on")
                for result in await asyncio.to_thread(self.executor.results, 0.2):
                    if isinstance(result, DuelResult):
                        self._settle(run_id, result)
                    else:
                        self._record(run_id, result)
                for task in [t for t in proposing if t.done()]:
                    proposing.discard(task)
                    job = task.result()
                    if job is not None:
                        self._empty_proposals = 0
                        self._submit(job)
                    else:
                        self._empty_proposals += 1
                if self._empty_proposals >= 25 and self.executor.in_flight() == 0 and not self._queue:
                    self._exhausted = True
                    break
                await asyncio.sleep(0)
                now = time.monotonic()
                if now - last_spend > 5:  # wall time survives a kill -9 to within seconds
                    self.archive.add_spend(run_id, seconds=now - last_spend)
                    last_spend = now
                self._tick()
                self.on_progress(self.progress)
        finally:
            for task in proposing:
                task.cancel()
            self.archive.add_spend(run_id, seconds=time.monotonic() - last_spend)
        if self._seed_failures and not self.grid.elites():
            failure = "; ".join(self._seed_failures)
            self.progress.status = "failed"
            self.archive.set_run_status(run_id, "failed")
            self.archive.add_event(run_id, "error", failure)
            raise SearchFailed(failure)
        self.progress.status = "stopped" if self._stop else "finished"
        message = f"{self.progress.evaluated} candidates evaluated"
        if self._exhausted:
            message += "; the operators found no new candidate in 500 tries: the space they reach is exhausted"
        self.archive.set_run_status(run_id, self.progress.status)
        self.archive.add_event(run_id, self.progress.status, message, {"best_fitness": self.progress.best_fitness})
        self.on_progress(self.progress)
        return self.progress

    # -- pieces -----------------------------------------------------------------------------
    def _tick(self) -> None:
        self.progress.session_s = time.monotonic() - self._session_start
        self.progress.elapsed_s = self._prior_s + self.progress.session_s
        self.progress.in_flight = self.executor.in_flight()

    def _budget_left(self, proposing: int) -> bool:
        b = self.cfg.budget
        if b.seconds is not None and self.progress.elapsed_s >= b.seconds:
            return False
        committed = self.progress.evaluated + self.executor.in_flight() - len(self._duels) + proposing
        return b.candidates is None or committed < b.candidates

    def _load(self, pid: int) -> _Known:
        if pid not in self._known:
            info = self.archive.get_program(pid)
            evaluation = None
            if info.latest_evaluation is not None:
                e = info.latest_evaluation
                evaluation = {"outcome": e.outcome.value, "stage": e.stage.value, "reason": e.reason,
                              "fitness": e.fitness, "tflops": e.tflops}
            self._known[pid] = _Known(info.source, info.descriptors, info.generation, evaluation, info.operator,
                                      tuple(info.parents), info.meta, evaluation["fitness"] if evaluation else None,
                                      info.island, int((info.meta or {}).get("lineage", 0)))
        return self._known[pid]

    def _parent(self, pid: int, fitness: float | None) -> Parent:
        k = self._load(pid)
        return Parent(pid, k.source, fitness, k.descriptors, k.evaluation)

    async def _propose(self, run_id: int) -> Job | None:
        """Try a few operator draws until one yields a candidate the archive has not seen."""
        for _ in range(20):
            island = self._island_turn % self.cfg.islands.count
            self._island_turn += 1
            op = self.rng.choices(list(self.operators.values()), weights=self.weights)[0]
            elites = select(self.grid, island, op.arity, self.rng, self.cfg.selection,
                            same_kind=lambda a, b: self._load(a.program_id).lineage == self._load(b.program_id).lineage)
            if len(elites) < op.arity:
                continue
            parents = [self._parent(e.program_id, e.fitness) for e in elites]
            extra = [self._parent(e.program_id, e.fitness)
                     for e in inspirations(self.grid, elites, self.cfg.selection.inspirations, self.rng)]
            lineage = self._load(elites[0].program_id).lineage
            leaders = [Leader(shape, ms, self._parent(pid, self._load(pid).fitness))
                       for (line, _), (ms, pid, shape) in self._leaders.items() if line == lineage]
            proposal = await op.propose(Context(parents, extra, self.rng, self.cfg.task, leaders))
            if proposal is None:
                continue
            descriptors = describe(proposal.source)
            generation = 1 + max(self._load(p).generation for p in proposal.parents)
            pid, created = self.archive.add_program(
                run_id, proposal.source, parents=proposal.parents, operator=proposal.operator,
                generation=generation, island=island, descriptors=descriptors,
                meta={**proposal.meta, "lineage": lineage})
            if not created:
                self.progress.duplicates += 1
                continue
            self._known[pid] = _Known(proposal.source, descriptors, generation, None, proposal.operator,
                                      tuple(proposal.parents), proposal.meta, lineage=lineage)
            gate = check_source(proposal.source, self.task.signature)
            if not gate.ok:  # judged here, on the CPU: no GPU slot spent on it
                self._record(run_id, Result(Job(pid, proposal.source, descriptors, island),
                                            Verdict(Outcome.REJECTED, Stage.STATIC, gate.reason,
                                                    "simulated" if self.cfg.simulate else "gpu")))
                continue
            return Job(pid, proposal.source, descriptors, island)
        return None

    def _submit(self, job: Job) -> None:
        self.archive.set_program_state(job.program_id, "evaluating")
        self.executor.submit(job)

    def _record(self, run_id: int, result: Result) -> None:
        job, verdict = result.job, result.verdict
        pid = job.program_id
        if verdict is None or verdict.outcome is Outcome.ERROR:
            self._attempts[pid] = self._attempts.get(pid, 0) + 1
            if self._attempts[pid] < 2:  # infrastructure trouble: one more try, never a loop
                self.archive.set_program_state(pid, "pending")
                self._queue.append(job)
                return
            if verdict is None:
                verdict = Verdict(Outcome.CRASHED, Stage.COMPILE,
                                  "its evaluation worker was lost twice while judging it",
                                  "simulated" if self.cfg.simulate else "gpu")
        _, created = self.archive.add_evaluation(pid, verdict, key=f"run{run_id}-program{pid}",
                                                 simulated=self.cfg.simulate)
        if not created:
            return
        p = self.progress
        p.evaluated += 1
        p.session_evaluated += 1
        if verdict.passed and verdict.fitness is not None:
            p.passed += 1
            self._lead(pid, verdict)
            if self._load(pid).generation == 0:  # a seed starts the islands of its lineage
                for island in range(self._load(pid).lineage, self.cfg.islands.count, self.lineages):
                    self._admit(run_id, pid, island, verdict.fitness, job.descriptors)
                self._feedback(pid, verdict, verdict.fitness)
            elif (rival := self._rival(job.island, verdict.fitness, job.descriptors)) is not None:
                # It would displace an elite: re-timed beside it first.
                duel = Duel(job, self._job(rival.program_id, rival.island), rival.fitness)
                self._duels[pid] = (duel, verdict.fitness, verdict)
                self.executor.submit(duel)
            else:
                self._admit(run_id, pid, job.island, verdict.fitness, job.descriptors)
                self._feedback(pid, verdict, self._unconfirmed(pid, verdict.fitness))
            self._update_best()
        else:
            self._feedback(pid, verdict, None)
            p.failed += 1
            if self._load(pid).generation == 0:
                which = "" if self.lineages == 1 else f" {self.cfg.seed_kernel[self._load(pid).lineage]}"
                self._seed_failures.append(f"the seed kernel{which} did not pass its checks ({verdict.outcome.value} "
                                           f"at the {verdict.stage.value} stage): {verdict.reason}")
        if p.evaluated % self.cfg.generation_size == 0:
            s = self.grid.stats()
            self.archive.add_generation_stats(run_id, p.evaluated // self.cfg.generation_size, evaluated=p.evaluated,
                                              coverage=s["coverage"], qd_score=s["qd_score"],
                                              best_fitness=p.best_fitness)
        if self.cfg.islands.count > 1 and p.evaluated % self.cfg.islands.migration_interval == 0:
            self._migrate(run_id)

    def _lead(self, pid: int, verdict: Verdict) -> None:
        lineage = self._load(pid).lineage
        for t in verdict.timings:
            key = (lineage, shape_label(t.shape))
            if key not in self._leaders or t.ms < self._leaders[key][0]:
                self._leaders[key] = (t.ms, pid, t.shape)

    def _rival(self, island: int, fitness: float, descriptors: dict[str, float]) -> Elite | None:
        """The elite a candidate of this fitness would displace: the run's best if it beats it,
        else its cell's elite if it beats that; None when it displaces nobody."""
        best = self.grid.best()
        if best is not None and fitness > best.fitness:
            return best
        elite = self.grid.elite_at(island, descriptors)
        return elite if elite is not None and fitness > elite.fitness else None

    def _job(self, pid: int, island: int) -> Job:
        known = self._load(pid)
        return Job(pid, known.source, known.descriptors, island)

    def _admit(self, run_id: int, pid: int, island: int, fitness: float, descriptors: dict[str, float]) -> None:
        ins = self.grid.insert(island, pid, fitness, descriptors)
        if ins.improved:
            self.archive.update_cell(run_id, ins.cell, ins.coords, pid, fitness)

    def _settle(self, run_id: int, result: DuelResult) -> None:
        """A re-timing came back: store it, and admit the candidate with the fitness it showed
        beside its rival (a gain within the noise displaces nobody)."""
        duel, lone, verdict = self._duels.pop(result.duel.candidate.program_id)
        pid, rival = duel.candidate.program_id, duel.rival.program_id
        ruling = rule(result, lone)
        if ruling.speedup is not None:
            self.archive.add_confirmation(run_id, pid, rival, key=f"run{run_id}-{duel.key}",
                                          speedup=ruling.speedup.estimate, low=ruling.speedup.low,
                                          high=ruling.speedup.high, admitted=ruling.admitted, mode=result.mode,
                                          device=result.device, shapes=ruling.shape_rows())
        else:
            self.archive.add_event(run_id, "confirmation", f"program {pid} against program {rival}: {ruling.reason}",
                                   {"program_id": pid, "rival_id": rival})
        if ruling.admitted:
            self.progress.confirmed += 1
        else:
            self.progress.unconfirmed += 1
        self._admit(run_id, pid, duel.candidate.island, ruling.fitness, duel.candidate.descriptors)
        credited = ruling.fitness if ruling.admitted else self._unconfirmed(pid, ruling.fitness)
        if verdict is not None:
            self._feedback(pid, verdict, credited)
        else:  # its operator's credit belonged to the session that proposed it
            self._load(pid).fitness = credited
        self._update_best()

    def _decide_again(self, run_id: int) -> None:
        """On resume: a passed candidate outside the grid that was never re-timed either displaced
        nobody or had its duel in flight when the search stopped. Decided again against the
        rebuilt grid, the first kind stays out and the second is re-timed (sent when the run starts)."""
        floor = {i: min((e.fitness for e in self.grid.elites(i)), default=math.inf)
                 for i in range(self.cfg.islands.count)}
        lowest = min(floor.values(), default=math.inf)
        for pid, fitness in self.archive.undecided_programs(run_id):  # best first
            if fitness <= lowest:
                break  # below every elite: these displace nobody
            known = self._load(pid)
            island = known.island
            if fitness <= floor.get(island, math.inf):
                continue
            rival = self._rival(island, fitness, known.descriptors)
            if rival is not None:
                duel = Duel(self._job(pid, island), self._job(rival.program_id, rival.island), rival.fitness)
                self._duels[pid] = (duel, fitness, None)
                self._resent.append(duel)

    def _unconfirmed(self, pid: int, fitness: float) -> float:
        """A fitness no re-timing confirmed: credited at most at its parents' level."""
        fits = [f for f in (self._load(q).fitness for q in self._load(pid).parents) if f is not None]
        return min(fitness, max(fits)) if fits else fitness

    def _feedback(self, pid: int, verdict: Verdict, credited: float | None) -> None:
        """Keep the program's verdict for later parents and tell its operator how it did."""
        known = self._load(pid)
        tflops = [t.tflops for t in verdict.timings]
        known.evaluation = {"outcome": verdict.outcome.value, "stage": verdict.stage.value, "reason": verdict.reason,
                            "fitness": verdict.fitness, "tflops": sum(tflops) / len(tflops) if tflops else None}
        known.fitness = credited
        op = self.operators.get(known.operator)
        if op is None:
            return
        fits = [f for f in (self._load(q).fitness for q in known.parents) if f is not None]
        op.feedback(Feedback(pid, known.meta or {}, max(fits) if fits else None, verdict, credited))

    def _migrate(self, run_id: int) -> None:
        """Each island's best elite is offered to the next island (a ring)."""
        n = self.cfg.islands.count
        for island in range(n):
            best = self.grid.best(island)
            if best is None:
                continue
            target = (island + 1) % n
            ins = self.grid.insert(target, best.program_id, best.fitness, self._load(best.program_id).descriptors)
            if ins.improved:
                self.archive.update_cell(run_id, ins.cell, ins.coords, best.program_id, best.fitness)
        self.archive.add_event(run_id, "migration", f"island elites migrated after {self.progress.evaluated} evaluations")

    def _update_best(self) -> None:
        best = self.grid.best()
        self.progress.coverage = self.grid.stats()["coverage"]
        if best is not None:
            self.progress.best_fitness = best.fitness
            self.progress.best_program = best.program_id
            top = self.archive.top(self.progress.run_id, 1)
            self.progress.best_tflops = top[0].tflops if top else None
