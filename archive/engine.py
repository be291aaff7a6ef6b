"""From a database URL to a configured SQLAlchemy engine, SQLite or PostgreSQL.

SQLite is set up for several writer processes: WAL (readers never block the writer), a busy
timeout (writers queue instead of failing), foreign keys on, and write transactions opened
with ``BEGIN IMMEDIATE`` so a writer takes the lock before reading rather than failing with
"database is locked" when it upgrades a read lock that another writer has overtaken.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from archive.errors import ArchiveError

DB_ENV = "EVOLVE_DB"
BUSY_TIMEOUT_S = 60.0
# Execution option marking a connection whose transactions will write (SQLite: BEGIN IMMEDIATE).
WRITE_OPTION = "archive_write"


def default_url() -> str:
    """``$EVOLVE_DB`` when set, else ``evolve.db`` in the current directory."""
    return os.environ.get(DB_ENV) or "sqlite:///evolve.db"


def resolve_url(url: str | None) -> str:
    """The URL to connect to. A bare path (``runs.db``) means SQLite; ``postgresql://`` and
    ``postgres://`` get the psycopg 3 driver, the one the ``postgres`` extra installs."""
    url = url or default_url()
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser()}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def display_url(url: str) -> str:
    """The URL as shown to users: the SQLite file path, or the URL without its password."""
    path = sqlite_path(url)
    if path is not None:
        return str(path)
    return make_url(url).render_as_string(hide_password=True)


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL; None for other backends and in-memory databases."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ArchiveError(f"{url!r} is not a database URL or a file path") from None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level: transactions are begun by _on_sqlite_begin instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    writes = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ArchiveError(f"{url!r} is not a database URL or a file path") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ArchiveError(f"unsupported database {backend!r}; use a SQLite file or postgresql+psycopg://")
    try:
        if backend == "sqlite":
            # The driver's timeout is SQLite's busy timeout: how long a writer waits for the lock.
            engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_S})
            event.listen(engine, "connect", _on_sqlite_connect)
            event.listen(engine, "begin", _on_sqlite_begin)
            return engine
        return create_engine(parsed, pool_pre_ping=True)
    except (NoSuchModuleError, ModuleNotFoundError):
        raise ArchiveError(
            f"no driver for {parsed.drivername!r}; use postgresql+psycopg:// "
            "(pip install 'kernel-evolve[postgres]')"
        ) from None
