"""Every read the project needs, shared by the search loop, the exporter and the CLI so none of
them writes SQL. Each function takes the session of a read transaction and returns records."""

from __future__ import annotations

import difflib
import math
from collections import defaultdict
from typing import Any, cast

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.orm import Session, aliased

from archive.errors import ArchiveError
from archive.grid import grid_spec
from archive.hashing import code_hash
from archive.models import (
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
    ShapeResultRow,
    TimingRow,
)
from archive.records import (
    CaseBest,
    CellInfo,
    ConfirmationInfo,
    EvaluationInfo,
    EventInfo,
    FailureGroup,
    GenerationStats,
    GridAxis,
    GridView,
    LineageStep,
    LlmCallInfo,
    ModelCredit,
    OperatorStats,
    ProgramInfo,
    RunInfo,
    RunStats,
    RunSummary,
    ShapeResultInfo,
    Spend,
    TimingInfo,
    TopEntry,
)
from harness.verdict import Outcome, Stage


def run_row(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise ArchiveError(f"no run {run_id}")
    return run


def program_row(session: Session, program_id: int) -> Program:
    program = session.get(Program, program_id)
    if program is None:
        raise ArchiveError(f"no program {program_id}")
    return program


def get_run(session: Session, run_id: int) -> RunInfo:
    r = run_row(session, run_id)
    return RunInfo(
        id=r.id,
        name=r.name,
        task=r.task,
        simulated=r.simulated,
        status=r.status,
        config=r.config,
        budget=r.budget,
        started_at=r.started_at,
        ended_at=r.ended_at,
        spend=Spend(r.spent_candidates, r.spent_seconds, r.spent_dollars, r.spent_tokens),
    )


def list_runs(session: Session) -> list[RunSummary]:
    has_passed = select(Evaluation.program_id).where(Evaluation.passed).distinct().subquery()
    evaluated = Program.state == ProgramState.EVALUATED
    counts = (
        select(
            Program.run_id,
            func.count().label("programs"),
            func.sum(case((evaluated, 1), else_=0)).label("evaluated"),
            func.count(has_passed.c.program_id).label("passed"),
            func.sum(case((and_(evaluated, has_passed.c.program_id.is_(None)), 1), else_=0)).label("failed"),
        )
        .outerjoin(has_passed, has_passed.c.program_id == Program.id)
        .group_by(Program.run_id)
        .subquery()
    )
    best = (
        select(Evaluation.run_id, func.max(Evaluation.fitness).label("best"))
        .where(Evaluation.passed)
        .group_by(Evaluation.run_id)
        .subquery()
    )
    rows = session.execute(
        select(Run, counts.c.programs, counts.c.evaluated, counts.c.passed, counts.c.failed, best.c.best)
        .outerjoin(counts, counts.c.run_id == Run.id)
        .outerjoin(best, best.c.run_id == Run.id)
        .order_by(Run.id)
    )
    return [
        RunSummary(
            id=r.id,
            name=r.name,
            task=r.task,
            simulated=r.simulated,
            status=r.status,
            started_at=r.started_at,
            ended_at=r.ended_at,
            programs=programs or 0,
            evaluated=n_evaluated or 0,
            passed=passed or 0,
            failed=failed or 0,
            best_fitness=best_fitness,
        )
        for r, programs, n_evaluated, passed, failed, best_fitness in rows
    ]


def config(session: Session, run_id: int) -> dict[str, Any]:
    return run_row(session, run_id).config


def find_program_by_code(session: Session, run_id: int | None, source: str) -> int | None:
    stmt = select(Program.id).where(Program.code_hash == code_hash(source)).order_by(Program.id).limit(1)
    if run_id is not None:
        stmt = stmt.where(Program.run_id == run_id)
    return session.scalar(stmt)


def has_code_hash(session: Session, run_id: int, hash_: str) -> bool:
    stmt = select(Program.id).where(Program.run_id == run_id, Program.code_hash == hash_).limit(1)
    return session.scalar(stmt) is not None


def program_ids(session: Session, run_id: int) -> list[int]:
    run_row(session, run_id)
    return list(session.scalars(select(Program.id).where(Program.run_id == run_id).order_by(Program.id)))


def pending_programs(session: Session, run_id: int) -> list[int]:
    run_row(session, run_id)
    stmt = (
        select(Program.id)
        .where(Program.run_id == run_id, Program.state.in_([ProgramState.PENDING, ProgramState.EVALUATING]))
        .order_by(Program.id)
    )
    return list(session.scalars(stmt))


def undecided_programs(session: Session, run_id: int) -> list[tuple[int, float]]:
    """(program, fitness) of the run's passed, timed candidates (the seed aside) that hold no
    cell and were never re-timed beside a rival, best first: those that displaced nobody, and
    those whose duel was in flight when the search stopped."""
    run_row(session, run_id)
    in_cells = select(Cell.program_id).where(Cell.run_id == run_id)
    dueled = select(Confirmation.candidate_id).where(Confirmation.run_id == run_id)
    stmt = (
        select(Program.id, func.max(Evaluation.fitness))
        .join(Evaluation, Evaluation.program_id == Program.id)
        .where(Program.run_id == run_id, Program.generation > 0, Evaluation.passed.is_(True),
               Evaluation.fitness.is_not(None), Program.id.not_in(in_cells), Program.id.not_in(dueled))
        .group_by(Program.id)
        .order_by(func.max(Evaluation.fitness).desc(), Program.id)
    )
    return [(pid, float(f)) for pid, f in session.execute(stmt)]


def _evaluation_infos(session: Session, evaluations: list[Evaluation]) -> list[EvaluationInfo]:
    ids = [e.id for e in evaluations]
    shapes: dict[int, list[ShapeResultInfo]] = defaultdict(list)
    for r in session.scalars(
        select(ShapeResultRow).where(ShapeResultRow.evaluation_id.in_(ids)).order_by(ShapeResultRow.position)
    ):
        shapes[r.evaluation_id].append(
            ShapeResultInfo(r.label, r.shape, r.rel_err, r.max_abs_err, r.passed, r.note)
        )
    timings: dict[int, list[TimingInfo]] = defaultdict(list)
    for t in session.scalars(select(TimingRow).where(TimingRow.evaluation_id.in_(ids)).order_by(TimingRow.position)):
        timings[t.evaluation_id].append(_timing_info(t))
    return [
        EvaluationInfo(
            id=e.id,
            program_id=e.program_id,
            key=e.key,
            outcome=e.outcome,
            stage=e.stage,
            reason=e.reason,
            passed=e.passed,
            fitness=e.fitness,
            fitness_low=e.fitness_low,
            fitness_high=e.fitness_high,
            tflops=e.tflops,
            mode=e.mode,
            simulated=e.simulated,
            device=e.device,
            torch_version=e.torch_version,
            triton_version=e.triton_version,
            duration_s=e.duration_s,
            sandbox=e.sandbox,
            log=e.log,
            created_at=e.created_at,
            shape_results=tuple(shapes[e.id]),
            timings=tuple(timings[e.id]),
        )
        for e in evaluations
    ]


def _timing_info(t: TimingRow) -> TimingInfo:
    return TimingInfo(
        t.label, t.shape, t.ms, t.baseline_ms, t.baseline_backend, t.tflops, t.baseline_tflops, t.speedup,
        t.samples, t.speedup_low, t.speedup_high,
    )


def evaluations(session: Session, program_id: int) -> list[EvaluationInfo]:
    program_row(session, program_id)
    rows = session.scalars(select(Evaluation).where(Evaluation.program_id == program_id).order_by(Evaluation.id))
    return _evaluation_infos(session, list(rows))


def _parents(session: Session, program_ids: list[int]) -> dict[int, tuple[int, ...]]:
    parents: dict[int, list[int]] = defaultdict(list)
    stmt = (
        select(ProgramParent.program_id, ProgramParent.parent_id)
        .where(ProgramParent.program_id.in_(program_ids))
        .order_by(ProgramParent.program_id, ProgramParent.position)
    )
    for child, parent in session.execute(stmt):
        parents[child].append(parent)
    return {p: tuple(parents[p]) for p in program_ids}


def get_program(session: Session, program_id: int) -> ProgramInfo:
    p = program_row(session, program_id)
    descriptors = {
        name: value
        for name, value in session.execute(
            select(Descriptor.name, Descriptor.value).where(Descriptor.program_id == program_id)
        )
    }
    latest = session.scalar(
        select(Evaluation).where(Evaluation.program_id == program_id).order_by(Evaluation.id.desc()).limit(1)
    )
    return ProgramInfo(
        id=p.id,
        run_id=p.run_id,
        source=p.source,
        content_hash=p.content_hash,
        code_hash=p.code_hash,
        parents=_parents(session, [p.id])[p.id],
        operator=p.operator,
        generation=p.generation,
        island=p.island,
        descriptors=descriptors,
        meta=p.meta,
        state=p.state,
        created_at=p.created_at,
        latest_evaluation=_evaluation_infos(session, [latest])[0] if latest is not None else None,
    )


def top(session: Session, run_id: int, n: int, *, measured_only: bool) -> list[TopEntry]:
    run_row(session, run_id)
    ranked = (
        select(Evaluation.id, Evaluation.program_id)
        .where(Evaluation.run_id == run_id, Evaluation.passed, Evaluation.fitness.is_not(None))
        .order_by(Evaluation.fitness.desc(), Evaluation.id)
    )
    if measured_only:
        ranked = ranked.where(Evaluation.simulated.is_(False))
    # Walk the ranking index down until n distinct programs are seen (a program evaluated
    # several times counts once, at its best): O(n) rows, not the whole run.
    window = 2 * n
    while True:
        rows = session.execute(ranked.limit(window)).all()
        best: dict[int, int] = {}  # program -> its best evaluation
        for evaluation_id, program_id in rows:
            best.setdefault(program_id, evaluation_id)
            if len(best) == n:
                break
        if len(best) == n or len(rows) < window:
            break
        window *= 4
    found = session.execute(
        select(Evaluation, Program.operator, Program.generation, Program.island)
        .join(Program, Program.id == Evaluation.program_id)
        .where(Evaluation.id.in_(best.values()))
        .order_by(Evaluation.fitness.desc(), Evaluation.id)
    )
    return [
        TopEntry(
            program_id=e.program_id,
            evaluation_id=e.id,
            fitness=cast(float, e.fitness),  # ranked WHERE fitness IS NOT NULL
            fitness_low=e.fitness_low,
            fitness_high=e.fitness_high,
            tflops=e.tflops,
            operator=operator,
            generation=generation,
            island=island,
            simulated=e.simulated,
            device=e.device,
        )
        for e, operator, generation, island in found
    ]


def best_per_case(session: Session, run_id: int, *, simulated: bool, lineage: int | None) -> list[CaseBest]:
    run_row(session, run_id)
    where = [Evaluation.run_id == run_id, Evaluation.passed, Evaluation.simulated.is_(simulated)]
    if lineage is not None:
        where += [Program.id == Evaluation.program_id,
                  func.coalesce(Program.meta["lineage"].as_integer(), 0) == lineage]
    ranked = (
        select(
            TimingRow.evaluation_id,
            TimingRow.position,
            Evaluation.program_id,
            func.row_number()
            .over(partition_by=TimingRow.label, order_by=(TimingRow.ms, TimingRow.evaluation_id))
            .label("rank"),
        )
        .join(Evaluation, Evaluation.id == TimingRow.evaluation_id)
        .where(*where)
        .subquery()
    )
    rows = session.execute(
        select(TimingRow, ranked.c.program_id)
        .join(
            ranked,
            and_(
                ranked.c.evaluation_id == TimingRow.evaluation_id,
                ranked.c.position == TimingRow.position,
                ranked.c.rank == 1,
            ),
        )
        .order_by(TimingRow.label)
    )
    return [CaseBest(t.label, program_id, t.evaluation_id, _timing_info(t)) for t, program_id in rows]


def _best_fitness(session: Session, program_ids: Any) -> dict[int, float]:
    stmt = (
        select(Evaluation.program_id, func.max(Evaluation.fitness))
        .where(Evaluation.program_id.in_(program_ids), Evaluation.passed)
        .group_by(Evaluation.program_id)
    )
    return {p: f for p, f in session.execute(stmt) if f is not None}


def lineage(session: Session, program_id: int) -> list[LineageStep]:
    program_row(session, program_id)
    chain = select(Program.id.label("id"), literal(0).label("depth")).where(Program.id == program_id)
    chain_cte = chain.cte("chain", recursive=True)
    chain_cte = chain_cte.union_all(
        select(ProgramParent.parent_id, chain_cte.c.depth + 1)
        .join(chain_cte, ProgramParent.program_id == chain_cte.c.id)
        .where(ProgramParent.position == 0)
    )
    rows = session.execute(
        select(Program.id, Program.operator, Program.generation)
        .join(chain_cte, chain_cte.c.id == Program.id)
        .order_by(chain_cte.c.depth)
    ).all()
    ids = [r.id for r in rows]
    parents = _parents(session, ids)
    fitness = _best_fitness(session, ids)
    return [LineageStep(r.id, r.operator, r.generation, fitness.get(r.id), parents[r.id]) for r in rows]


def diff(session: Session, a: int, b: int) -> str:
    source_a, source_b = program_row(session, a).source, program_row(session, b).source
    lines = difflib.unified_diff(
        source_a.splitlines(), source_b.splitlines(), fromfile=f"program {a}", tofile=f"program {b}", lineterm=""
    )
    return "\n".join(lines)


def cells(session: Session, run_id: int) -> list[CellInfo]:
    run_row(session, run_id)
    coords: dict[int, list[int]] = defaultdict(list)
    for index, value in session.execute(
        select(CellCoord.cell_index, CellCoord.value)
        .where(CellCoord.run_id == run_id)
        .order_by(CellCoord.cell_index, CellCoord.dim)
    ):
        coords[index].append(value)
    rows = session.scalars(select(Cell).where(Cell.run_id == run_id).order_by(Cell.cell_index))
    return [CellInfo(c.cell_index, tuple(coords[c.cell_index]), c.program_id, c.fitness) for c in rows]


def _grid_axes(session: Session, run: Run) -> list[GridAxis]:
    """The grid's axes from the run's configuration, else numbered from the cells filled so far."""
    spec = grid_spec(run.config)
    if spec is not None:
        return [GridAxis(i, d.name, tuple(d.labels)) for i, d in enumerate(spec.dims)]
    extents = session.execute(
        select(CellCoord.dim, func.max(CellCoord.value))
        .where(CellCoord.run_id == run.id)
        .group_by(CellCoord.dim)
        .order_by(CellCoord.dim)
    )
    return [GridAxis(dim, f"dim{dim}", tuple(str(v) for v in range(top + 1))) for dim, top in extents]


def grid(session: Session, run_id: int, x: str | None, y: str | None) -> GridView:
    run = run_row(session, run_id)
    axes = _grid_axes(session, run)
    if not axes:
        raise ArchiveError(f"run {run_id} has no grid: its configuration describes none and no cell is filled")
    by_name = {a.name: a for a in axes}
    for wanted in (x, y):
        if wanted is not None and wanted not in by_name:
            raise ArchiveError(f"run {run_id} has no grid dimension {wanted!r}; its dimensions: {', '.join(by_name)}")
    x_axis = by_name[x] if x is not None else axes[0]
    rest = [a for a in axes if a is not x_axis]
    y_axis = by_name[y] if y is not None else (rest[0] if rest else None)
    if y_axis is x_axis:
        raise ArchiveError(f"--x and --y are both {x_axis.name!r}; pick two dimensions")

    cx = aliased(CellCoord)
    stmt = (
        select(cx.value.label("x"), func.max(Cell.fitness).label("best"))
        .join(cx, and_(cx.run_id == Cell.run_id, cx.cell_index == Cell.cell_index, cx.dim == x_axis.dim))
        .where(Cell.run_id == run_id)
        .group_by(cx.value)
    )
    if y_axis is not None:
        cy = aliased(CellCoord)
        stmt = (
            stmt.add_columns(cy.value.label("y"))
            .join(cy, and_(cy.run_id == Cell.run_id, cy.cell_index == Cell.cell_index, cy.dim == y_axis.dim))
            .group_by(cy.value)
        )
    rows = len(y_axis.labels) if y_axis is not None else 1
    matrix: list[list[float | None]] = [[None] * len(x_axis.labels) for _ in range(rows)]
    for row in session.execute(stmt).mappings():
        matrix[row.get("y", 0)][row["x"]] = row["best"]
    filled = session.scalar(select(func.count()).select_from(Cell).where(Cell.run_id == run_id)) or 0
    size = math.prod(len(a.labels) for a in axes)
    return GridView(run_id, x_axis, y_axis, tuple(tuple(r) for r in matrix), filled, size)


def generation_stats(session: Session, run_id: int) -> list[GenerationStats]:
    run_row(session, run_id)
    rows = session.scalars(
        select(GenerationStat).where(GenerationStat.run_id == run_id).order_by(GenerationStat.generation)
    )
    return [
        GenerationStats(g.generation, g.evaluated, g.coverage, g.qd_score, g.best_fitness, g.extra, g.recorded_at)
        for g in rows
    ]


def _run_filter(column: Any, run_id: int | None) -> Any:
    return column.is_(None) if run_id is None else column == run_id


def _llm_call_info(c: LlmCall) -> LlmCallInfo:
    return LlmCallInfo(c.id, c.run_id, c.program_id, c.model, c.purpose, c.prompt, c.response, c.prompt_tokens,
                       c.completion_tokens, c.cost_usd, c.latency_s, c.error, c.created_at)


def llm_calls(session: Session, run_id: int | None) -> list[LlmCallInfo]:
    rows = session.scalars(select(LlmCall).where(_run_filter(LlmCall.run_id, run_id)).order_by(LlmCall.id))
    return [_llm_call_info(c) for c in rows]


def llm_calls_by_id(session: Session, ids: list[int]) -> list[LlmCallInfo]:
    """The calls with these ids (those that exist), by id."""
    rows = session.scalars(select(LlmCall).where(LlmCall.id.in_(ids)).order_by(LlmCall.id))
    return [_llm_call_info(c) for c in rows]


def llm_spend(session: Session, run_id: int | None) -> tuple[float, int]:
    dollars, tokens = session.execute(
        select(
            func.coalesce(func.sum(LlmCall.cost_usd), 0.0),
            func.coalesce(func.sum(LlmCall.prompt_tokens + LlmCall.completion_tokens), 0),
        ).where(_run_filter(LlmCall.run_id, run_id))
    ).one()
    return float(dollars), int(tokens)


def events(session: Session, run_id: int | None, kind: str | None = None, last: int | None = None) -> list[EventInfo]:
    stmt = select(Event).where(_run_filter(Event.run_id, run_id))
    if kind is not None:
        stmt = stmt.where(Event.kind == kind)
    if last is not None:
        newest = list(session.scalars(stmt.order_by(Event.id.desc()).limit(last)))
        rows = newest[::-1]
    else:
        rows = list(session.scalars(stmt.order_by(Event.id)))
    return [EventInfo(e.id, e.run_id, e.kind, e.message, e.data, e.created_at) for e in rows]


def model_credit(session: Session, run_id: int, kind: str) -> list[ModelCredit]:
    """Sums over the run's events of ``kind`` by their ``data["model"]``, in the database: a run
    of an LLM search holds one such event per proposal."""
    run_row(session, run_id)
    data = Event.data
    model = data["model"].as_string()
    rows = session.execute(
        select(
            model,
            func.count(),
            func.count(data["program_id"].as_integer()),
            func.coalesce(func.sum(data["reward"].as_float()), 0.0),
            func.coalesce(func.sum(data["cost_usd"].as_float()), 0.0),
            func.coalesce(func.sum(data["tokens"].as_integer()), 0),
        )
        .where(Event.run_id == run_id, Event.kind == kind)
        .group_by(model)
        .order_by(model)
    )
    return [ModelCredit(m if m is not None else "?", n, programs, float(reward), float(cost), int(tokens))
            for m, n, programs, reward, cost, tokens in rows]


def stats(session: Session, run_id: int) -> RunStats:
    run = run_row(session, run_id)
    programs, pending = session.execute(
        select(
            func.count(),
            func.coalesce(
                func.sum(case((Program.state.in_([ProgramState.PENDING, ProgramState.EVALUATING]), 1), else_=0)), 0
            ),
        ).where(Program.run_id == run_id)
    ).one()
    outcome_rows = session.execute(
        select(Evaluation.outcome, func.count(), func.max(Evaluation.created_at))
        .where(Evaluation.run_id == run_id)
        .group_by(Evaluation.outcome)
    ).all()
    by_outcome = {str(outcome): count for outcome, count, _ in outcome_rows}
    n_evaluations = sum(by_outcome.values())
    best = session.scalar(select(func.max(Evaluation.fitness)).where(Evaluation.run_id == run_id, Evaluation.passed))
    n_cells, qd_score = session.execute(
        select(func.count(), func.coalesce(func.sum(Cell.fitness), 0.0)).where(Cell.run_id == run_id)
    ).one()
    spec = grid_spec(run.config)
    grid_size = spec.size if spec is not None else None
    per_hour = None
    if outcome_rows:
        last = max(latest for _, _, latest in outcome_rows)
        hours = ((run.ended_at or last) - run.started_at).total_seconds() / 3600
        per_hour = n_evaluations / hours if hours > 0 else None
    return RunStats(
        run_id=run_id,
        programs=programs,
        pending=pending,
        evaluations=n_evaluations,
        by_outcome=by_outcome,
        cells=n_cells,
        grid_size=grid_size,
        coverage=n_cells / grid_size if grid_size else None,
        qd_score=float(qd_score),
        best_fitness=best,
        evaluations_per_hour=per_hour,
    )


def operator_stats(session: Session, run_id: int) -> list[OperatorStats]:
    """Per operator, by name: three grouped scans of the run (programs, passed evaluations, cells)."""
    run_row(session, run_id)
    counts = session.execute(
        select(Program.operator, func.count(), func.sum(case((Program.state == ProgramState.EVALUATED, 1), else_=0)))
        .where(Program.run_id == run_id)
        .group_by(Program.operator)
    ).all()
    passed = {
        op: (n, best)
        for op, n, best in session.execute(
            # Filtered by the program's run, not the evaluation's: SQLite then walks the run's
            # programs and each one's evaluations by index (0.1 s at 100k programs), instead of
            # looking up a program row for every passed evaluation (0.45 s).
            select(Program.operator, func.count(func.distinct(Program.id)), func.max(Evaluation.fitness))
            .select_from(Program)
            .join(Evaluation, Evaluation.program_id == Program.id)
            .where(Program.run_id == run_id, Evaluation.passed)
            .group_by(Program.operator)
        )
    }
    elites = dict(
        session.execute(  # type: ignore[arg-type]
            select(Program.operator, func.count())
            .select_from(Cell)
            .join(Program, Program.id == Cell.program_id)
            .where(Cell.run_id == run_id)
            .group_by(Program.operator)
        ).all()
    )
    return [
        OperatorStats(op, n, int(evaluated or 0), passed.get(op, (0, None))[0], passed.get(op, (0, None))[1],
                      elites.get(op, 0))
        for op, n, evaluated in sorted(counts)
    ]


def failures(session: Session, run_id: int) -> list[FailureGroup]:
    run_row(session, run_id)
    count = func.count().label("count")
    rows = session.execute(
        select(Evaluation.outcome, Evaluation.stage, Evaluation.reason, count, func.min(Evaluation.program_id))
        .where(Evaluation.run_id == run_id, Evaluation.passed.is_(False))
        .group_by(Evaluation.outcome, Evaluation.stage, Evaluation.reason)
        .order_by(count.desc(), Evaluation.stage, Evaluation.reason)
    )
    return [FailureGroup(Outcome(o), Stage(s), reason, n, example) for o, s, reason, n, example in rows]


def confirmations(session: Session, run_id: int | None, program_id: int | None) -> list[ConfirmationInfo]:
    """A run's confirmations, or those of one program (as candidate or as rival), oldest first."""
    stmt = select(Confirmation).order_by(Confirmation.id)
    if run_id is not None:
        stmt = stmt.where(Confirmation.run_id == run_id)
    if program_id is not None:
        stmt = stmt.where((Confirmation.candidate_id == program_id) | (Confirmation.rival_id == program_id))
    return [
        ConfirmationInfo(c.id, c.run_id, c.candidate_id, c.rival_id, c.speedup, c.low, c.high, c.admitted, c.mode,
                         c.device, tuple(c.shapes), c.created_at)
        for c in session.scalars(stmt)
    ]
