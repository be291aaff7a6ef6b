"""Alembic environment of the archive.

Migrations only run through ``archive.schema.ensure_schema``, which hands over a connection
already inside the transaction holding the migration lock; everything here runs inside it.
A new revision is a frozen, hand-checked file in ``versions/`` (models may change later; the
migration must not); ``tests/archive/test_schema.py`` fails until models and migrations agree.
"""

from alembic import context

from archive.models import Base

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
