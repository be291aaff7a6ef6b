"""Schema versions: every open brings the archive to the newest revision this code knows, and
refuses one stamped by a newer version of the tool.

Migrations run inside one write transaction that also serializes concurrent openers (SQLite's
``BEGIN IMMEDIATE`` lock, a PostgreSQL advisory lock), so workers starting together on a fresh
archive do not race to create the same tables.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from archive.engine import WRITE_OPTION
from archive.errors import ArchiveError

MIGRATIONS = Path(__file__).with_name("migrations")
# Arbitrary, fixed: the PostgreSQL advisory lock that serializes migrations of one database.
_PG_MIGRATION_LOCK = 0x65766F6C7665


@dataclass(frozen=True)
class SchemaChange:
    """The revision an archive was at when opened (None: it was empty) and the one it is at now."""

    before: str | None
    after: str

    @property
    def upgraded_existing(self) -> bool:
        return self.before is not None and self.before != self.after


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, found through the package so an installed wheel can migrate."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts(location: Path) -> ScriptDirectory:
    # Parsing every revision file costs milliseconds; once per process (and location) is enough.
    return ScriptDirectory(str(location))


def head_revision() -> str:
    head = _scripts(MIGRATIONS).get_current_head()
    assert head is not None, "the archive ships no migrations"
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _refuse_unknown(revision: str | None, where: str) -> None:
    known = {r.revision for r in _scripts(MIGRATIONS).walk_revisions()}
    if revision is not None and revision not in known:
        raise ArchiveError(
            f"the archive at {where} has schema revision {revision}, newer than this version of "
            f"evolve knows (it knows up to {head_revision()}); upgrade evolve to open it "
            "(pip install -U kernel-evolve)"
        )


def ensure_schema(engine: Engine, where: str, *, create: bool) -> SchemaChange:
    """Migrate the archive behind ``engine`` to the head revision; ``where`` names it in errors.

    ``create=False`` refuses a database that holds no archive yet instead of creating one.
    """
    head = head_revision()
    with engine.connect() as connection:
        before = current_revision(connection)
    _refuse_unknown(before, where)
    if before == head:
        return SchemaChange(before, head)
    if before is None and not create:
        raise ArchiveError(f"no archive at {where}; start a run or pass --db")
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        # Another process may have migrated while we waited for the lock.
        before = current_revision(connection)
        _refuse_unknown(before, where)
        if before != head:
            command.upgrade(alembic_config(connection), "head")
    return SchemaChange(before, head)
