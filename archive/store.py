"""``Archive``: the one object the rest of the project holds. Each method is one transaction,
so a caller never holds a session and a crash never leaves half of a write behind."""

from __future__ import annotations

import functools
import inspect
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from archive import queries, writes
from archive.engine import WRITE_OPTION, display_url, make_engine, resolve_url, sqlite_path
from archive.errors import ArchiveError
from archive.models import ProgramState, RunStatus
from archive.records import (
    CaseBest,
    CellInfo,
    ConfirmationInfo,
    EvaluationInfo,
    EventInfo,
    FailureGroup,
    GenerationStats,
    GridView,
    LineageStep,
    LlmCallInfo,
    ModelCredit,
    OperatorStats,
    ProgramInfo,
    RunInfo,
    RunStats,
    RunSummary,
    TopEntry,
)
from archive.schema import SchemaChange, ensure_schema
from harness.verdict import Verdict


def _connect(url: str | None, *, create: bool) -> tuple[Engine, str, SchemaChange]:
    resolved = resolve_url(url)
    where = display_url(resolved)
    path = sqlite_path(resolved)
    if path is not None:
        if not create and not path.exists():
            raise ArchiveError(f"no archive at {where}; start a run or pass --db")
        if create and not path.parent.is_dir():
            raise ArchiveError(f"cannot create an archive at {where}: no directory {path.parent}")
    engine = make_engine(resolved)
    try:
        change = ensure_schema(engine, where, create=create)
    except DBAPIError as e:
        engine.dispose()
        lines = str(e.orig if e.orig is not None else e).strip().splitlines()
        reason = lines[0] if lines else type(e.orig).__name__
        raise ArchiveError(f"cannot open the archive at {where}: {reason}", exit_code=1) from None
    except BaseException:
        engine.dispose()
        raise
    return engine, where, change


def upgrade_archive(url: str | None = None) -> SchemaChange:
    """Migrate an existing archive to the newest schema; the ``evolve archive upgrade`` command."""
    engine, _, change = _connect(url, create=False)
    engine.dispose()
    return change


class Archive:
    """Every run, program, evaluation, cell, LLM call and event of the project, in one database.

    Every method is retried while the database is unreachable (a server restart, a network
    blip, a long-held SQLite lock), for up to ``outage_s`` seconds, so every write is
    idempotent: by its natural key, or, for a method with a ``key`` parameter, by that key.
    Left None, the key is drawn once per call before its first attempt, so a retry after a
    commit whose acknowledgement was lost finds its write applied instead of applying it again.
    """

    outage_s: float = 120.0

    def __init__(self, engine: Engine, where: str) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        self.where = where

    @classmethod
    def open(cls, url: str | None = None, *, create: bool = True) -> Archive:
        """Open (and with ``create``, make) the archive at ``url`` (default: ``default_url()``),
        migrating it to the current schema; says so on stderr when an existing one is upgraded."""
        engine, where, change = _connect(url, create=create)
        if change.upgraded_existing:
            print(f"Upgraded the archive at {where} from schema {change.before} to {change.after}.", file=sys.stderr)
        return cls(engine, where)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Archive:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self._engine) as session:
            yield session

    # Runs

    def create_run(
        self,
        task: str,
        config: dict[str, Any],
        *,
        simulated: bool,
        budget: dict[str, Any] | None = None,
        name: str | None = None,
        key: str | None = None,
    ) -> int:
        with self._write() as s:
            return writes.create_run(
                s, task, config, simulated=simulated, budget=budget, name=name, key=_drawn(key)
            )

    def get_run(self, run_id: int) -> RunInfo:
        with self._read() as s:
            return queries.get_run(s, run_id)

    def list_runs(self) -> list[RunSummary]:
        with self._read() as s:
            return queries.list_runs(s)

    def set_run_status(self, run_id: int, status: str) -> None:
        """``stopped``, ``finished`` and ``failed`` stamp the end time; ``running`` clears it."""
        with self._write() as s:
            writes.set_run_status(s, run_id, RunStatus(status))

    def add_spend(
        self,
        run_id: int,
        *,
        candidates: int = 0,
        seconds: float = 0,
        dollars: float = 0,
        tokens: int = 0,
        key: str | None = None,
    ) -> None:
        with self._write() as s:
            writes.add_spend(
                s, run_id, candidates=candidates, seconds=seconds, dollars=dollars, tokens=tokens, key=_drawn(key)
            )

    def config(self, run_id: int) -> dict[str, Any]:
        with self._read() as s:
            return queries.config(s, run_id)

    # Programs

    def add_program(
        self,
        run_id: int,
        source: str,
        *,
        parents: list[int] | tuple[int, ...] = (),
        operator: str,
        generation: int = 0,
        island: int = 0,
        descriptors: dict[str, float] | None = None,
        meta: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> tuple[int, bool]:
        """Store a candidate; the same normalized code in the same run returns the existing id
        with ``created=False`` (parents, descriptors and meta of the repeat are not stored),
        unless the existing row was stored under this call's ``key``."""
        with self._write() as s:
            return writes.add_program(
                s,
                run_id,
                source,
                parents=list(parents),
                operator=operator,
                generation=generation,
                island=island,
                descriptors=descriptors,
                meta=meta,
                key=_drawn(key),
            )

    def find_program_by_code(self, run_id: int | None, source: str) -> int | None:
        """The program with the same normalized code, in ``run_id`` or (None) in any run."""
        with self._read() as s:
            return queries.find_program_by_code(s, run_id, source)

    def has_code_hash(self, run_id: int, code_hash: str) -> bool:
        with self._read() as s:
            return queries.has_code_hash(s, run_id, code_hash)

    def get_program(self, program_id: int) -> ProgramInfo:
        with self._read() as s:
            return queries.get_program(s, program_id)

    def set_program_state(self, program_id: int, state: str) -> None:
        with self._write() as s:
            writes.set_program_state(s, program_id, ProgramState(state))

    def program_ids(self, run_id: int) -> list[int]:
        """Every program of a run, oldest first (ids may have gaps: PostgreSQL spends a sequence
        value on an insert that loses a race)."""
        with self._read() as s:
            return queries.program_ids(s, run_id)

    def undecided_programs(self, run_id: int) -> list[tuple[int, float]]:
        """Passed candidates outside the grid never re-timed beside a rival, with their fitness
        (see queries.undecided_programs): a resumed search decides them again."""
        with self._read() as s:
            return queries.undecided_programs(s, run_id)

    def pending_programs(self, run_id: int) -> list[int]:
        """Programs never evaluated (pending, or evaluating when a worker died): re-queue on resume."""
        with self._read() as s:
            return queries.pending_programs(s, run_id)

    # Evaluations

    def add_evaluation(self, program_id: int, verdict: Verdict, *, key: str, simulated: bool) -> tuple[int, bool]:
        """Store a verdict and mark its program evaluated, in one transaction. ``key`` makes the
        write idempotent: a re-delivered key returns the existing id and writes nothing."""
        with self._write() as s:
            return writes.add_evaluation(s, program_id, verdict, key=key, simulated=simulated)

    def evaluations(self, program_id: int) -> list[EvaluationInfo]:
        with self._read() as s:
            return queries.evaluations(s, program_id)

    # MAP-Elites cells

    def update_cell(self, run_id: int, index: int, coords: list[int], program_id: int, fitness: float) -> bool:
        """Make ``program_id`` the elite of cell ``index`` if it beats the current one; True if it did."""
        with self._write() as s:
            return writes.update_cell(s, run_id, index, list(coords), program_id, fitness)

    def cells(self, run_id: int) -> list[CellInfo]:
        with self._read() as s:
            return queries.cells(s, run_id)

    def grid(self, run_id: int, *, x: str | None = None, y: str | None = None) -> GridView:
        """Best fitness per (x, y) over the other dimensions; by default the first two dimensions."""
        with self._read() as s:
            return queries.grid(s, run_id, x, y)

    # Statistics, LLM calls, events

    def add_generation_stats(
        self,
        run_id: int,
        generation: int,
        *,
        evaluated: int,
        coverage: float,
        qd_score: float,
        best_fitness: float | None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Record (or, for a generation recorded before, replace) one generation's statistics."""
        with self._write() as s:
            writes.add_generation_stats(
                s,
                run_id,
                generation,
                evaluated=evaluated,
                coverage=coverage,
                qd_score=qd_score,
                best_fitness=best_fitness,
                extra=extra,
            )

    def generation_stats(self, run_id: int) -> list[GenerationStats]:
        with self._read() as s:
            return queries.generation_stats(s, run_id)

    def add_llm_call(
        self,
        run_id: int | None,
        *,
        model: str,
        purpose: str,
        prompt: str,
        response: str | None,
        prompt_tokens: int,
        completion_tokens: int,
        cost_usd: float,
        latency_s: float,
        error: str | None,
        program_id: int | None = None,
        key: str | None = None,
    ) -> int:
        with self._write() as s:
            return writes.add_llm_call(
                s,
                run_id,
                model=model,
                purpose=purpose,
                prompt=prompt,
                response=response,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cost_usd=cost_usd,
                latency_s=latency_s,
                error=error,
                program_id=program_id,
                key=_drawn(key),
            )

    def llm_calls(self, run_id: int | None) -> list[LlmCallInfo]:
        """Calls made for ``run_id``; None: those made outside any run."""
        with self._read() as s:
            return queries.llm_calls(s, run_id)

    def llm_calls_by_id(self, ids: list[int] | tuple[int, ...]) -> list[LlmCallInfo]:
        """The calls with these ids, by id (a program's ``meta["llm_calls"]`` names those that made it)."""
        with self._read() as s:
            return queries.llm_calls_by_id(s, list(ids))

    def llm_spend(self, run_id: int | None) -> tuple[float, int]:
        """(dollars, prompt + completion tokens) spent on LLM calls for ``run_id``."""
        with self._read() as s:
            return queries.llm_spend(s, run_id)

    def add_event(
        self, run_id: int | None, kind: str, message: str, data: dict[str, Any] | None = None, *, key: str | None = None
    ) -> int:
        with self._write() as s:
            return writes.add_event(s, run_id, kind, message, data, key=_drawn(key))

    def events(self, run_id: int | None, *, kind: str | None = None, last: int | None = None) -> list[EventInfo]:
        """Events of ``run_id``, oldest first; None: archive-wide events. ``kind``: only those of
        that kind; ``last``: only the newest ``last`` of them."""
        with self._read() as s:
            return queries.events(s, run_id, kind, last)

    def model_credit(self, run_id: int, kind: str) -> list[ModelCredit]:
        """Per model, by name: the proposals, programs, reward, dollars and tokens recorded in the
        ``data`` of the run's events of ``kind`` (the LLM operators' ``llm_credit``)."""
        with self._read() as s:
            return queries.model_credit(s, run_id, kind)

    def add_confirmation(self, run_id: int, candidate_id: int, rival_id: int, *, key: str, speedup: float,
                         low: float, high: float, admitted: bool, mode: str, device: str,
                         shapes: list[dict[str, Any]]) -> int:
        with self._write() as s:
            return writes.add_confirmation(s, run_id, candidate_id, rival_id, key=key, speedup=speedup, low=low,
                                           high=high, admitted=admitted, mode=mode, device=device, shapes=shapes)

    def confirmations(self, run_id: int | None = None, *, program_id: int | None = None) -> list[ConfirmationInfo]:
        """Side-by-side re-timings of a run, or those a program took part in, oldest first."""
        with self._read() as s:
            return queries.confirmations(s, run_id, program_id)

    # Shared queries

    def top(self, run_id: int, n: int = 10, *, measured_only: bool = False) -> list[TopEntry]:
        """The ``n`` best programs by their best passed evaluation; ``measured_only`` skips
        evaluations whose timings were simulated."""
        with self._read() as s:
            return queries.top(s, run_id, n, measured_only=measured_only)

    def best_per_case(self, run_id: int, *, simulated: bool = False, lineage: int | None = None) -> list[CaseBest]:
        """For each benchmark shape, the passed program with the lowest time: among measured
        evaluations, or (``simulated``) among the cost model's; with ``lineage``, among the
        programs descending from that seed (``meta["lineage"]``, 0 where a program has none)."""
        with self._read() as s:
            return queries.best_per_case(s, run_id, simulated=simulated, lineage=lineage)

    def lineage(self, program_id: int) -> list[LineageStep]:
        """The program, then its first parent, and so on up to a root."""
        with self._read() as s:
            return queries.lineage(s, program_id)

    def diff(self, a: int, b: int) -> str:
        with self._read() as s:
            return queries.diff(s, a, b)

    def stats(self, run_id: int) -> RunStats:
        with self._read() as s:
            return queries.stats(s, run_id)

    def operator_stats(self, run_id: int) -> list[OperatorStats]:
        """Per operator: programs, evaluated, passed, best fitness and cells held, by name."""
        with self._read() as s:
            return queries.operator_stats(s, run_id)

    def failures(self, run_id: int) -> list[FailureGroup]:
        """Evaluations that did not pass, grouped by outcome, stage and reason, most common first."""
        with self._read() as s:
            return queries.failures(s, run_id)


def _drawn(key: str | None) -> str:
    assert key is not None  # _outage_tolerant draws one before a keyed method's first attempt
    return key


def _outage_tolerant(method: Callable[..., Any]) -> Callable[..., Any]:
    keyed = "key" in inspect.signature(method).parameters

    @functools.wraps(method)
    def retried(self: Archive, *args: Any, **kwargs: Any) -> Any:
        if keyed and kwargs.get("key") is None:
            kwargs["key"] = uuid.uuid4().hex  # once, outside the loop: every attempt presents it
        deadline = time.monotonic() + self.outage_s
        delay = 0.2
        while True:
            try:
                return method(self, *args, **kwargs)
            except (OperationalError, InterfaceError) as e:
                if time.monotonic() + delay > deadline:
                    first = str(e.orig if e.orig is not None else e).strip().splitlines()[:1]
                    raise ArchiveError(f"the archive at {self.where} stayed unreachable for {self.outage_s:g} s: "
                                       f"{first[0] if first else type(e).__name__}", exit_code=1) from None
                time.sleep(delay)
                delay = min(2 * delay, 5.0)

    return retried


for _name, _member in list(vars(Archive).items()):
    if not _name.startswith("_") and _name not in {"open", "close"} and callable(_member):
        setattr(Archive, _name, _outage_tolerant(_member))
