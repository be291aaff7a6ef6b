"""The first archive schema: runs, programs and their parents and descriptors, evaluations with
per-shape results and timings, MAP-Elites cells, generation statistics, LLM calls and events.

Frozen: later model changes get a new revision, never an edit here.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), nullable=False)


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def _harness_enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=False, length=32)


def upgrade() -> None:
    op.create_table(
        "runs",
        _id(),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("task", sa.String(100), nullable=False),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("status", _enum("run_status", "running", "stopped", "finished", "failed"), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("budget", sa.JSON(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("spent_candidates", sa.BigInteger(), nullable=False),
        sa.Column("spent_seconds", sa.Double(), nullable=False),
        sa.Column("spent_dollars", sa.Double(), nullable=False),
        sa.Column("spent_tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_table(
        "events",
        _id(),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_events_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index(op.f("ix_events_run_id"), "events", ["run_id"])
    op.create_table(
        "generation_stats",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("evaluated", sa.Integer(), nullable=False),
        sa.Column("coverage", sa.Double(), nullable=False),
        sa.Column("qd_score", sa.Double(), nullable=False),
        sa.Column("best_fitness", sa.Double(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_generation_stats_run_id_runs")),
        sa.PrimaryKeyConstraint("run_id", "generation", name=op.f("pk_generation_stats")),
    )
    op.create_table(
        "programs",
        _id(),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("operator", sa.String(64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("island", sa.Integer(), nullable=False),
        sa.Column("state", _enum("program_state", "pending", "evaluating", "evaluated"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_programs_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_programs")),
        sa.UniqueConstraint("run_id", "code_hash", name=op.f("uq_programs_run_id_code_hash")),
    )
    op.create_index(op.f("ix_programs_code_hash"), "programs", ["code_hash"])
    op.create_index(op.f("ix_programs_run_id_state"), "programs", ["run_id", "state"])
    op.create_table(
        "cells",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("cell_index", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("fitness", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_cells_program_id_programs")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_cells_run_id_runs")),
        sa.PrimaryKeyConstraint("run_id", "cell_index", name=op.f("pk_cells")),
    )
    op.create_table(
        "descriptors",
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_descriptors_program_id_programs")),
        sa.PrimaryKeyConstraint("program_id", "name", name=op.f("pk_descriptors")),
    )
    op.create_table(
        "evaluations",
        _id(),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column(
            "outcome", _harness_enum("outcome", "passed", "rejected", "crashed", "timeout", "error"), nullable=False
        ),
        sa.Column(
            "stage",
            _harness_enum(
                "stage", "static", "compile", "sweep", "stability", "determinism", "anticheat", "timing", "done"
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("fitness", sa.Double(), nullable=True),
        sa.Column("tflops", sa.Double(), nullable=True),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("device", sa.String(200), nullable=False),
        sa.Column("torch_version", sa.String(64), nullable=False),
        sa.Column("triton_version", sa.String(64), nullable=False),
        sa.Column("duration_s", sa.Double(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sandbox", sa.JSON(), nullable=False),
        sa.Column("log", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_evaluations_program_id_programs")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_evaluations_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluations")),
        sa.UniqueConstraint("key", name=op.f("uq_evaluations_key")),
    )
    op.create_index(op.f("ix_evaluations_program_id"), "evaluations", ["program_id"])
    op.create_index(op.f("ix_evaluations_run_id_passed_fitness"), "evaluations", ["run_id", "passed", "fitness"])
    op.create_table(
        "llm_calls",
        _id(),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("program_id", sa.Integer(), nullable=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Double(), nullable=False),
        sa.Column("latency_s", sa.Double(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_llm_calls_program_id_programs")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_llm_calls_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_llm_calls")),
    )
    op.create_index(op.f("ix_llm_calls_run_id"), "llm_calls", ["run_id"])
    op.create_table(
        "program_parents",
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["parent_id"], ["programs.id"], name=op.f("fk_program_parents_parent_id_programs")),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_program_parents_program_id_programs")),
        sa.PrimaryKeyConstraint("program_id", "position", name=op.f("pk_program_parents")),
    )
    op.create_index(op.f("ix_program_parents_parent_id"), "program_parents", ["parent_id"])
    op.create_table(
        "cell_coords",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("cell_index", sa.Integer(), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id", "cell_index"], ["cells.run_id", "cells.cell_index"], name=op.f("fk_cell_coords_run_id_cells")
        ),
        sa.PrimaryKeyConstraint("run_id", "cell_index", "dim", name=op.f("pk_cell_coords")),
    )
    op.create_table(
        "shape_results",
        sa.Column("evaluation_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("shape", sa.JSON(), nullable=False),
        sa.Column("rel_err", sa.Double(), nullable=True),
        sa.Column("max_abs_err", sa.Double(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["evaluation_id"], ["evaluations.id"], name=op.f("fk_shape_results_evaluation_id_evaluations")
        ),
        sa.PrimaryKeyConstraint("evaluation_id", "position", name=op.f("pk_shape_results")),
    )
    op.create_table(
        "timings",
        sa.Column("evaluation_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(400), nullable=False),
        sa.Column("shape", sa.JSON(), nullable=False),
        sa.Column("ms", sa.Double(), nullable=False),
        sa.Column("baseline_ms", sa.Double(), nullable=False),
        sa.Column("baseline_backend", sa.String(64), nullable=False),
        sa.Column("tflops", sa.Double(), nullable=False),
        sa.Column("baseline_tflops", sa.Double(), nullable=False),
        sa.Column("speedup", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["evaluation_id"], ["evaluations.id"], name=op.f("fk_timings_evaluation_id_evaluations")
        ),
        sa.PrimaryKeyConstraint("evaluation_id", "position", name=op.f("pk_timings")),
    )


def downgrade() -> None:
    for table in (
        "timings",
        "shape_results",
        "cell_coords",
        "program_parents",
        "llm_calls",
        "evaluations",
        "descriptors",
        "cells",
        "programs",
        "generation_stats",
        "events",
        "runs",
    ):
        op.drop_table(table)
