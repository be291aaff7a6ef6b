"""The archive's tables, as typed SQLAlchemy models.

Everything the search filters, ranks or bins by is a column or a (parent, name, value) row;
JSON holds only free-form payloads (run configuration, shape dicts, extras). Rows that a retried
write could add twice carry the ``key`` of the call that wrote them (see ``archive.store``;
NULL on rows from before schema 0002). Migrations in
``archive/migrations/versions`` are frozen copies of these models; a test keeps them in step.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from harness.verdict import Outcome, Stage


class RunStatus(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    FINISHED = "finished"
    FAILED = "failed"


FINAL_RUN_STATUSES = frozenset({RunStatus.STOPPED, RunStatus.FINISHED, RunStatus.FAILED})


class ProgramState(StrEnum):
    """``pending`` and ``evaluating`` programs are re-queued when a run resumes."""

    PENDING = "pending"
    EVALUATING = "evaluating"
    EVALUATED = "evaluated"


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (SQLite keeps no zone), always handed back zone-aware in UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the archive; use datetime.now(UTC)")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _archive_enum(enum: type[StrEnum], name: str) -> Enum:
    """A VARCHAR holding the enum's values, with a CHECK constraint: the archive owns these sets."""
    return Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda e: [m.value for m in e],
    )


def _harness_enum(enum: type[StrEnum]) -> Enum:
    """A VARCHAR holding a harness enum's values without a CHECK constraint: the harness may add
    a stage without an archive migration, and Python still refuses unknown values on write."""
    return Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda e: [m.value for m in e],
    )


class Base(DeclarativeBase):
    # Named constraints let SQLite's batch migrations find and alter them later.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[str]: JSON(),
                           list[dict[str, Any]]: JSON()}


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(100))
    simulated: Mapped[bool]
    status: Mapped[RunStatus] = mapped_column(_archive_enum(RunStatus, "run_status"))
    config: Mapped[dict[str, Any]]
    budget: Mapped[dict[str, Any] | None]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    spent_candidates: Mapped[int] = mapped_column(BigInteger, default=0)
    spent_seconds: Mapped[float] = mapped_column(default=0.0)
    spent_dollars: Mapped[float] = mapped_column(default=0.0)
    spent_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    key: Mapped[str | None] = mapped_column(String(200), unique=True, index=True)


class SpendRow(Base):
    """One ``add_spend`` increment, stored with it in its transaction: a retry whose key is here
    was applied already. The run row keeps the totals (including spend from before schema 0002,
    which has no rows here)."""

    __tablename__ = "spends"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    candidates: Mapped[int] = mapped_column(BigInteger)
    seconds: Mapped[float]
    dollars: Mapped[float]
    tokens: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Program(Base):
    __tablename__ = "programs"
    __table_args__ = (
        # One row per distinct normalized code in a run: the de-duplication key.
        UniqueConstraint("run_id", "code_hash"),
        Index(None, "code_hash"),
        Index(None, "run_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    content_hash: Mapped[str] = mapped_column(String(64))
    code_hash: Mapped[str] = mapped_column(String(64))
    operator: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int]
    island: Mapped[int]
    state: Mapped[ProgramState] = mapped_column(_archive_enum(ProgramState, "program_state"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    meta: Mapped[dict[str, Any] | None]
    # Tells a retry of the call that created this row from a later call adding the same code.
    key: Mapped[str | None] = mapped_column(String(200), unique=True, index=True)
    # Large text last: SQLite reads a row's columns in order, through overflow pages.
    source: Mapped[str] = mapped_column(Text)


class ProgramParent(Base):
    """Ordered parents: position 0 is the one the operator edited, the rest were mixed in."""

    __tablename__ = "program_parents"

    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)


class Descriptor(Base):
    """A program's behaviour descriptors, the coordinates MAP-Elites bins it by."""

    __tablename__ = "descriptors"

    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float]


class Evaluation(Base):
    __tablename__ = "evaluations"
    __table_args__ = (
        # Ranking a run's passed evaluations walks this index instead of the run's programs.
        Index(None, "run_id", "passed", "fitness"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    # The program's run, copied (programs never change runs) so run-wide queries need no join.
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    # Chosen by the caller, so a re-delivered result is recognised instead of stored twice.
    key: Mapped[str] = mapped_column(String(200), unique=True)
    outcome: Mapped[Outcome] = mapped_column(_harness_enum(Outcome))
    stage: Mapped[Stage] = mapped_column(_harness_enum(Stage))
    reason: Mapped[str] = mapped_column(Text)
    passed: Mapped[bool]
    # Geometric-mean speedup over the timed shapes; NULL unless passed and timed.
    fitness: Mapped[float | None]
    # Its bootstrap interval over the timed calls (harness.confidence); NULL without samples.
    fitness_low: Mapped[float | None]
    fitness_high: Mapped[float | None]
    tflops: Mapped[float | None]
    mode: Mapped[str] = mapped_column(String(32))
    simulated: Mapped[bool]
    device: Mapped[str] = mapped_column(String(200))
    torch_version: Mapped[str] = mapped_column(String(64))
    triton_version: Mapped[str] = mapped_column(String(64))
    duration_s: Mapped[float]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sandbox: Mapped[list[str]]
    log: Mapped[str] = mapped_column(Text)


class ShapeResultRow(Base):
    __tablename__ = "shape_results"

    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    shape: Mapped[dict[str, Any]]
    rel_err: Mapped[float | None]
    max_abs_err: Mapped[float | None]
    passed: Mapped[bool]
    note: Mapped[str] = mapped_column(Text)


class TimingRow(Base):
    __tablename__ = "timings"

    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    # Canonical text of the shape dict: what the exporter groups timings by.
    label: Mapped[str] = mapped_column(String(400))
    shape: Mapped[dict[str, Any]]
    ms: Mapped[float]
    baseline_ms: Mapped[float]
    baseline_backend: Mapped[str] = mapped_column(String(64))
    tflops: Mapped[float]
    baseline_tflops: Mapped[float]
    speedup: Mapped[float]
    # Timed calls per contender, and the speedup's bootstrap interval over them (NULL without).
    samples: Mapped[int] = mapped_column(server_default="0")
    speedup_low: Mapped[float | None]
    speedup_high: Mapped[float | None]


class Confirmation(Base):
    """A candidate re-timed side by side with a rival (the cell's elite or the run's best)
    before it may displace it: the speedup of candidate over rival with its interval."""

    __tablename__ = "confirmations"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    rival_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    # Chosen by the caller, so a retried write after an ambiguous commit is stored once.
    key: Mapped[str] = mapped_column(String(200), unique=True)
    speedup: Mapped[float]
    low: Mapped[float]
    high: Mapped[float]
    admitted: Mapped[bool]
    mode: Mapped[str] = mapped_column(String(32))
    device: Mapped[str] = mapped_column(String(200))
    # Per shape: label, speedup, low, high, samples (shown, never filtered on).
    shapes: Mapped[list[dict[str, Any]]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Cell(Base):
    """The current elite of one MAP-Elites cell; ``cell_index`` is the grid's flat index."""

    __tablename__ = "cells"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    cell_index: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    fitness: Mapped[float]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CellCoord(Base):
    """One coordinate of a cell, so the grid view can group cells by any two dimensions in SQL."""

    __tablename__ = "cell_coords"
    __table_args__ = (
        ForeignKeyConstraint(["run_id", "cell_index"], ["cells.run_id", "cells.cell_index"]),
    )

    run_id: Mapped[int] = mapped_column(primary_key=True)
    cell_index: Mapped[int] = mapped_column(primary_key=True)
    dim: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int]


class GenerationStat(Base):
    __tablename__ = "generation_stats"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    generation: Mapped[int] = mapped_column(primary_key=True)
    evaluated: Mapped[int]
    coverage: Mapped[float]
    qd_score: Mapped[float]
    best_fitness: Mapped[float | None]
    extra: Mapped[dict[str, Any] | None]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class LlmCall(Base):
    __tablename__ = "llm_calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), index=True)
    program_id: Mapped[int | None] = mapped_column(ForeignKey("programs.id"))
    model: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(64))
    prompt: Mapped[str] = mapped_column(Text)
    response: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int]
    completion_tokens: Mapped[int]
    cost_usd: Mapped[float]
    latency_s: Mapped[float]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    key: Mapped[str | None] = mapped_column(String(200), unique=True, index=True)


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    key: Mapped[str | None] = mapped_column(String(200), unique=True, index=True)
