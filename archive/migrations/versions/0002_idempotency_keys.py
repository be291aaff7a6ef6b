"""Idempotency keys: runs, programs, LLM calls and events carry the key of the call that wrote
them, and a spend ledger records each increment of a run's spend under its call's key, so a
write retried after a commit whose acknowledgement was lost applies once.

Rows from before this revision keep a NULL key (unique indexes allow any number of NULLs);
columns are added in place and indexed, so no table is copied.

Frozen: later model changes get a new revision, never an edit here.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

KEYED = ("runs", "programs", "llm_calls", "events")


def upgrade() -> None:
    for table in KEYED:
        op.add_column(table, sa.Column("key", sa.String(200), nullable=True))
        op.create_index(op.f(f"ix_{table}_key"), table, ["key"], unique=True)
    op.create_table(
        "spends",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("candidates", sa.BigInteger(), nullable=False),
        sa.Column("seconds", sa.Double(), nullable=False),
        sa.Column("dollars", sa.Double(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_spends_run_id_runs")),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_spends")),
    )
    op.create_index(op.f("ix_spends_run_id"), "spends", ["run_id"])


def downgrade() -> None:
    op.drop_table("spends")
    for table in reversed(KEYED):
        op.drop_index(op.f(f"ix_{table}_key"), table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("key")
