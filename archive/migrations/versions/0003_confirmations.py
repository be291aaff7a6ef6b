"""Measurements with their spread: bootstrap intervals on each evaluation's fitness and on each
timed shape (with the number of timed calls), and confirmations, the side-by-side re-timings
a candidate must win before it displaces an elite.

Frozen: later model changes get a new revision, never an edit here.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        batch.add_column(sa.Column("fitness_low", sa.Double(), nullable=True))
        batch.add_column(sa.Column("fitness_high", sa.Double(), nullable=True))
    with op.batch_alter_table("timings") as batch:
        batch.add_column(sa.Column("samples", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("speedup_low", sa.Double(), nullable=True))
        batch.add_column(sa.Column("speedup_high", sa.Double(), nullable=True))
    op.create_table(
        "confirmations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("rival_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("speedup", sa.Double(), nullable=False),
        sa.Column("low", sa.Double(), nullable=False),
        sa.Column("high", sa.Double(), nullable=False),
        sa.Column("admitted", sa.Boolean(), nullable=False),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("device", sa.String(200), nullable=False),
        sa.Column("shapes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_confirmations_run_id_runs")),
        sa.ForeignKeyConstraint(["candidate_id"], ["programs.id"],
                                name=op.f("fk_confirmations_candidate_id_programs")),
        sa.ForeignKeyConstraint(["rival_id"], ["programs.id"], name=op.f("fk_confirmations_rival_id_programs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_confirmations")),
        sa.UniqueConstraint("key", name=op.f("uq_confirmations_key")),
    )
    op.create_index(op.f("ix_confirmations_run_id"), "confirmations", ["run_id"])
    op.create_index(op.f("ix_confirmations_candidate_id"), "confirmations", ["candidate_id"])


def downgrade() -> None:
    op.drop_table("confirmations")
    with op.batch_alter_table("timings") as batch:
        batch.drop_column("speedup_high")
        batch.drop_column("speedup_low")
        batch.drop_column("samples")
    with op.batch_alter_table("evaluations") as batch:
        batch.drop_column("fitness_high")
        batch.drop_column("fitness_low")
