"""Everything that changes the archive, one function per write, each given the session of the
transaction it runs in (``Archive`` opens one per call).

Retries are expected (a worker re-delivers an evaluation after a crash, a resumed run re-adds
its pending programs), so inserts that could repeat go through ``INSERT ... ON CONFLICT DO
NOTHING`` on a natural key: the database, not a read-then-write race, decides who created a row.
Writes with no natural key (runs, spend, LLM calls, events) use the idempotency ``key`` of the
call instead, so a retry after a commit whose acknowledgement was lost finds its own row.
"""

from __future__ import annotations

import json
from statistics import fmean
from typing import Any, cast

from sqlalchemy import CursorResult, Insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from archive.errors import ArchiveError
from archive.grid import grid_spec
from archive.hashing import code_hash, content_hash
from archive.models import (
    FINAL_RUN_STATUSES,
    Cell,
    CellCoord,
    Confirmation,
    Descriptor,
    Evaluation,
    Event,
    GenerationStat,
    LlmCall,
    Program,
    ProgramParent,
    ProgramState,
    Run,
    RunStatus,
    ShapeResultRow,
    SpendRow,
    TimingRow,
    utcnow,
)
from archive.queries import program_row, run_row
from harness.verdict import Verdict

LOG_CAP_BYTES = 64 * 1024


def _insert(session: Session, model: type[Any]) -> Any:
    """An INSERT for ``model`` that supports ``on_conflict_do_*`` on this session's backend."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(model)


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


def _insert_once(session: Session, model: type[Any], key: str, /, **values: Any) -> int:
    """Insert a row under idempotency ``key``; the id of the row already stored under it, if any."""
    created = session.execute(
        _insert(session, model)
        .values(key=key, **values)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(model.id)
    ).scalar_one_or_none()
    return created if created is not None else session.scalars(select(model.id).where(model.key == key)).one()


def cap_log(log: str) -> str:
    """Keep a log's head (what failed first) and tail (how it ended) within ``LOG_CAP_BYTES``."""
    data = log.encode("utf-8")
    if len(data) <= LOG_CAP_BYTES:
        return log
    keep = (LOG_CAP_BYTES - 64) // 2
    cut = len(data) - 2 * keep
    head = data[:keep].decode("utf-8", errors="ignore")
    tail = data[-keep:].decode("utf-8", errors="ignore")
    return f"{head}\n[... {cut} bytes cut by the archive ...]\n{tail}"


def shape_label(shape: dict[str, Any]) -> str:
    """A shape dict as canonical text (sorted keys): equal shapes always group together."""
    return " ".join(f"{k}={json.dumps(shape[k])}" for k in sorted(shape))


def create_run(
    session: Session,
    task: str,
    config: dict[str, Any],
    *,
    simulated: bool,
    budget: dict[str, Any] | None,
    name: str | None,
    key: str,
) -> int:
    grid_spec(config)  # refuse a grid the archive could not render, before anything is stored
    return _insert_once(
        session,
        Run,
        key,
        name=name,
        task=task,
        simulated=simulated,
        status=RunStatus.RUNNING,
        config=config,
        budget=budget,
    )


def set_run_status(session: Session, run_id: int, status: RunStatus) -> None:
    run = run_row(session, run_id)
    run.status = status
    run.ended_at = utcnow() if status in FINAL_RUN_STATUSES else None


def add_spend(
    session: Session, run_id: int, *, candidates: int, seconds: float, dollars: float, tokens: int, key: str
) -> None:
    run_row(session, run_id)
    recorded = session.execute(
        _insert(session, SpendRow)
        .values(
            key=key,
            run_id=run_id,
            candidates=candidates,
            seconds=seconds,
            dollars=dollars,
            tokens=tokens,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(SpendRow.key)
    ).scalar_one_or_none()
    if recorded is None:  # an earlier attempt of this call committed, increment included
        return
    # Increments in SQL, so concurrent workers never overwrite each other's spend.
    session.execute(
        update(Run)
        .where(Run.id == run_id)
        .values(
            spent_candidates=Run.spent_candidates + candidates,
            spent_seconds=Run.spent_seconds + seconds,
            spent_dollars=Run.spent_dollars + dollars,
            spent_tokens=Run.spent_tokens + tokens,
        )
        .execution_options(synchronize_session=False)
    )


def add_program(
    session: Session,
    run_id: int,
    source: str,
    *,
    parents: list[int],
    operator: str,
    generation: int,
    island: int,
    descriptors: dict[str, float] | None,
    meta: dict[str, Any] | None,
    key: str,
) -> tuple[int, bool]:
    run_row(session, run_id)
    if parents:
        known = set(session.scalars(select(Program.id).where(Program.id.in_(parents))))
        for parent in parents:
            if parent not in known:
                raise ArchiveError(f"no program {parent}")
    normalized_hash = code_hash(source)
    stmt: Insert = (
        _insert(session, Program)
        .values(
            run_id=run_id,
            source=source,
            content_hash=content_hash(source),
            code_hash=normalized_hash,
            operator=operator,
            generation=generation,
            island=island,
            state=ProgramState.PENDING,
            meta=meta,
            key=key,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["run_id", "code_hash"])
        .returning(Program.id)
    )
    program_id = session.execute(stmt).scalar_one_or_none()
    if program_id is None:
        existing = session.execute(
            select(Program.id, Program.key).where(Program.run_id == run_id, Program.code_hash == normalized_hash)
        ).one()  # the conflicting row is committed or ours
        # Under our key, an earlier attempt of this call created it (parents and descriptors too).
        return existing.id, existing.key == key
    if parents:
        session.execute(
            _insert(session, ProgramParent),
            [{"program_id": program_id, "position": i, "parent_id": p} for i, p in enumerate(parents)],
        )
    if descriptors:
        session.execute(
            _insert(session, Descriptor),
            [{"program_id": program_id, "name": k, "value": float(v)} for k, v in descriptors.items()],
        )
    return program_id, True


def set_program_state(session: Session, program_id: int, state: ProgramState) -> None:
    program_row(session, program_id).state = state


def add_evaluation(
    session: Session, program_id: int, verdict: Verdict, *, key: str, simulated: bool
) -> tuple[int, bool]:
    program = program_row(session, program_id)
    timings = verdict.timings
    stmt: Insert = (
        _insert(session, Evaluation)
        .values(
            program_id=program_id,
            run_id=program.run_id,
            key=key,
            outcome=verdict.outcome,
            stage=verdict.stage,
            reason=verdict.reason,
            passed=verdict.passed,
            fitness=verdict.fitness,
            fitness_low=verdict.fitness_low,
            fitness_high=verdict.fitness_high,
            tflops=fmean(t.tflops for t in timings) if timings else None,
            mode=verdict.mode,
            simulated=simulated,
            device=verdict.device,
            torch_version=verdict.torch_version,
            triton_version=verdict.triton_version,
            duration_s=verdict.duration_s,
            sandbox=list(verdict.sandbox),
            log=cap_log(verdict.log),
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(Evaluation.id)
    )
    evaluation_id = session.execute(stmt).scalar_one_or_none()
    if evaluation_id is None:
        existing, owner = session.execute(
            select(Evaluation.id, Evaluation.program_id).where(Evaluation.key == key)
        ).one()
        if owner != program_id:
            raise ValueError(f"evaluation key {key!r} already belongs to program {owner}, not {program_id}")
        return existing, False
    if verdict.shape_results:
        session.execute(
            _insert(session, ShapeResultRow),
            [
                {
                    "evaluation_id": evaluation_id,
                    "position": i,
                    "label": r.label,
                    "shape": r.shape,
                    "rel_err": r.rel_err,
                    "max_abs_err": r.max_abs_err,
                    "passed": r.passed,
                    "note": r.note,
                }
                for i, r in enumerate(verdict.shape_results)
            ],
        )
    if timings:
        session.execute(
            _insert(session, TimingRow),
            [
                {
                    "evaluation_id": evaluation_id,
                    "position": i,
                    "label": shape_label(t.shape),
                    "shape": t.shape,
                    "ms": t.ms,
                    "baseline_ms": t.baseline_ms,
                    "baseline_backend": t.baseline_backend,
                    "tflops": t.tflops,
                    "baseline_tflops": t.baseline_tflops,
                    "speedup": t.speedup,
                    "samples": len(t.samples),
                    "speedup_low": t.speedup_low,
                    "speedup_high": t.speedup_high,
                }
                for i, t in enumerate(timings)
            ],
        )
    program.state = ProgramState.EVALUATED
    return evaluation_id, True


def update_cell(session: Session, run_id: int, index: int, coords: list[int], program_id: int, fitness: float) -> bool:
    spec = grid_spec(run_row(session, run_id).config)
    if spec is not None:
        spec.check_coords(coords)
    if program_row(session, program_id).run_id != run_id:
        raise ValueError(f"program {program_id} is not in run {run_id}")

    def replace_if_better() -> bool:
        # The comparison is part of the UPDATE: two workers racing on a cell cannot both win.
        result = session.execute(
            update(Cell)
            .where(Cell.run_id == run_id, Cell.cell_index == index, Cell.fitness < fitness)
            .values(program_id=program_id, fitness=fitness, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1

    if replace_if_better():
        return True
    created = session.execute(
        _insert(session, Cell)
        .values(run_id=run_id, cell_index=index, program_id=program_id, fitness=fitness, updated_at=utcnow())
        .on_conflict_do_nothing(index_elements=["run_id", "cell_index"])
        .returning(Cell.cell_index)
    ).scalar_one_or_none()
    if created is not None:
        session.execute(
            _insert(session, CellCoord),
            [{"run_id": run_id, "cell_index": index, "dim": d, "value": v} for d, v in enumerate(coords)],
        )
        return True
    # Someone else created the cell between our UPDATE and INSERT: compare against theirs.
    return replace_if_better()


def add_generation_stats(
    session: Session,
    run_id: int,
    generation: int,
    *,
    evaluated: int,
    coverage: float,
    qd_score: float,
    best_fitness: float | None,
    extra: dict[str, Any] | None,
) -> None:
    run_row(session, run_id)
    values = {
        "evaluated": evaluated,
        "coverage": coverage,
        "qd_score": qd_score,
        "best_fitness": best_fitness,
        "extra": extra,
        "recorded_at": utcnow(),
    }
    session.execute(
        _insert(session, GenerationStat)
        .values(run_id=run_id, generation=generation, **values)
        .on_conflict_do_update(index_elements=["run_id", "generation"], set_=values)
    )


def add_llm_call(
    session: Session,
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
    program_id: int | None,
    key: str,
) -> int:
    if run_id is not None:
        run_row(session, run_id)
    if program_id is not None:
        program_row(session, program_id)
    return _insert_once(
        session,
        LlmCall,
        key,
        run_id=run_id,
        program_id=program_id,
        model=model,
        purpose=purpose,
        prompt=prompt,
        response=response,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=cost_usd,
        latency_s=latency_s,
        error=error,
    )


def add_event(
    session: Session, run_id: int | None, kind: str, message: str, data: dict[str, Any] | None, *, key: str
) -> int:
    if run_id is not None:
        run_row(session, run_id)
    return _insert_once(session, Event, key, run_id=run_id, kind=kind, message=message, data=data)


def add_confirmation(session: Session, run_id: int, candidate_id: int, rival_id: int, *, key: str, speedup: float,
                     low: float, high: float, admitted: bool, mode: str, device: str,
                     shapes: list[dict[str, Any]]) -> int:
    """Store a side-by-side re-timing once per ``key``; returns its id."""
    for pid in (candidate_id, rival_id):
        if program_row(session, pid).run_id != run_id:
            raise ValueError(f"program {pid} is not in run {run_id}")
    return _insert_once(session, Confirmation, key, run_id=run_id, candidate_id=candidate_id, rival_id=rival_id,
                        speedup=speedup, low=low, high=high, admitted=admitted, mode=mode, device=device,
                        shapes=shapes, created_at=utcnow())
