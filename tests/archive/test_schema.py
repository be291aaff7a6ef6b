"""Opening, creating and migrating archives; refusing ones this code cannot handle."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, MetaData, Table, create_engine, inspect, text

import archive.schema
from archive import Archive, ArchiveError, code_hash, content_hash, default_url, upgrade_archive
from archive.models import Base
from archive.schema import alembic_config, head_revision
from tests.archive.factories import kernel

SHIPPED = head_revision()  # the newest revision this code ships


def test_opening_an_empty_database_creates_every_table_at_the_head_revision(archive_url: str) -> None:
    Archive.open(archive_url).close()
    engine = create_engine(archive_url)
    with engine.connect() as connection:
        assert set(inspect(connection).get_table_names()) >= set(Base.metadata.tables)
        assert MigrationContext.configure(connection).get_current_revision() == head_revision()
    engine.dispose()


def test_models_and_migrations_agree(archive_url: str) -> None:
    """The alembic-check guard: a model change without a migration fails here."""
    Archive.open(archive_url).close()
    engine = create_engine(archive_url)
    with engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diffs == []


def test_an_archive_from_a_newer_version_is_refused_with_advice(archive_url: str) -> None:
    Archive.open(archive_url).close()
    engine = create_engine(archive_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(ArchiveError, match="schema revision 9999, newer than this version of evolve knows") as e:
        Archive.open(archive_url)
    assert e.value.exit_code == 2
    assert "upgrade evolve" in str(e.value)


@pytest.fixture
def next_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Installs, when called, the shipped migrations plus a revision 9999 adding an index, as a
    later release of evolve would ship them."""

    def install() -> None:
        scripts = tmp_path / "migrations"
        shutil.copytree(archive.schema.MIGRATIONS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
        (scripts / "versions" / "9999_task_index.py").write_text(
            "from alembic import op\n"
            f"revision = '9999'\ndown_revision = '{SHIPPED}'\nbranch_labels = None\ndepends_on = None\n"
            "def upgrade():\n    op.create_index('ix_runs_task', 'runs', ['task'])\n"
        )
        monkeypatch.setattr(archive.schema, "MIGRATIONS", scripts)

    return install


def test_opening_an_older_archive_upgrades_it_and_says_so(
    archive_url: str, next_release: Callable[[], None], capsys: pytest.CaptureFixture[str]
) -> None:
    with Archive.open(archive_url) as old:
        run = old.create_run("mha_fwd", {}, simulated=True)
    next_release()
    capsys.readouterr()
    with Archive.open(archive_url) as upgraded:
        assert upgraded.get_run(run).task == "mha_fwd"
    notice = capsys.readouterr().err.strip().splitlines()
    assert len(notice) == 1
    assert f"from schema {SHIPPED} to 9999" in notice[0]


def test_upgrade_reports_the_revisions_it_moved_between(archive_url: str, next_release: Callable[[], None]) -> None:
    Archive.open(archive_url).close()
    next_release()
    change = upgrade_archive(archive_url)
    assert (change.before, change.after) == (SHIPPED, "9999")
    assert (upgrade_archive(archive_url).before, head_revision()) == ("9999", "9999")


def _insert_row(connection: Connection, table: str, **row: Any) -> int:
    reflected = Table(table, MetaData(), autoload_with=connection)
    return connection.execute(reflected.insert().values(**row).returning(reflected.c.id)).scalar_one()


def test_an_archive_from_schema_0001_keeps_its_rows_and_takes_keyed_writes_after_upgrading(archive_url: str) -> None:
    """Rows from before the idempotency keys keep NULL keys, any number of them per table."""
    then = datetime(2025, 1, 1)
    engine = create_engine(archive_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
        run = _insert_row(
            connection, "runs", task="mha_fwd", simulated=True, status="running", config={}, started_at=then,
            spent_candidates=2, spent_seconds=0.0, spent_dollars=0.5, spent_tokens=0,
        )
        for message in ("started", "resumed"):
            _insert_row(connection, "events", run_id=run, kind=message, message=message, created_at=then)
        for _ in range(2):
            _insert_row(
                connection, "llm_calls", run_id=run, model="m", purpose="llm_diff", prompt="p", prompt_tokens=1,
                completion_tokens=1, cost_usd=0.25, latency_s=1.0, created_at=then,
            )
        old = _insert_row(
            connection, "programs", run_id=run, content_hash=content_hash(kernel(1)), code_hash=code_hash(kernel(1)),
            operator="seed", generation=0, island=0, state="pending", created_at=then, source=kernel(1),
        )
    engine.dispose()
    with Archive.open(archive_url) as upgraded:
        upgraded.add_spend(run, candidates=1, dollars=0.25)
        upgraded.add_event(run, "stopped", "stopped")
        upgraded.add_llm_call(run, model="m", purpose="llm_diff", prompt="p", response="r", prompt_tokens=1,
                              completion_tokens=1, cost_usd=0.25, latency_s=1.0, error=None)
        spend = upgraded.get_run(run).spend
        assert (spend.candidates, spend.dollars) == (3, 0.75)
        assert [e.message for e in upgraded.events(run)] == ["started", "resumed", "stopped"]
        assert upgraded.llm_spend(run) == (0.75, 6)
        assert upgraded.add_program(run, kernel(1), operator="mutate") == (old, False)


def test_browsing_a_missing_sqlite_file_fails_without_creating_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.db"
    with pytest.raises(ArchiveError, match="no archive at .*nowhere.db; start a run or pass --db") as e:
        Archive.open(str(missing), create=False)
    assert e.value.exit_code == 2
    assert not missing.exists()


def test_a_database_without_an_archive_is_not_browsable(archive_url: str) -> None:
    with pytest.raises(ArchiveError, match="no archive at"):
        Archive.open(archive_url, create=False)


def test_a_bare_path_is_an_sqlite_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with Archive.open("runs.db") as opened:
        opened.create_run("mha_fwd", {}, simulated=True)
    assert (tmp_path / "runs.db").exists()
    with Archive.open("runs.db", create=False) as reopened:
        assert len(reopened.list_runs()) == 1


def test_the_default_url_is_evolve_db_unless_the_environment_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVOLVE_DB", raising=False)
    assert default_url() == "sqlite:///evolve.db"
    monkeypatch.setenv("EVOLVE_DB", "postgresql+psycopg://db/evolve")
    assert default_url() == "postgresql+psycopg://db/evolve"


def test_an_sqlite_archive_is_in_wal_mode_so_readers_never_block_the_writer(tmp_path: Path) -> None:
    Archive.open(str(tmp_path / "a.db")).close()
    with closing(sqlite3.connect(tmp_path / "a.db")) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_an_unreachable_server_is_reported_in_one_line() -> None:
    with pytest.raises(ArchiveError, match="cannot open the archive at") as e:
        Archive.open("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert e.value.exit_code == 1
    assert "\n" not in str(e.value)
