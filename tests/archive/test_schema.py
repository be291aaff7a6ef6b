"""Opening, creating and migrating archives; refusing ones this code cannot handle."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

import archive.schema
from archive import Archive, ArchiveError, default_url, upgrade_archive
from archive.models import Base
from archive.schema import head_revision


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
def release_0002(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Installs, when called, the shipped migrations plus a revision 0002 adding an index, as a
    later release of evolve would ship them."""

    def install() -> None:
        scripts = tmp_path / "migrations"
        shutil.copytree(archive.schema.MIGRATIONS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
        (scripts / "versions" / "0002_task_index.py").write_text(
            "from alembic import op\n"
            "revision = '0002'\ndown_revision = '0001'\nbranch_labels = None\ndepends_on = None\n"
            "def upgrade():\n    op.create_index('ix_runs_task', 'runs', ['task'])\n"
        )
        monkeypatch.setattr(archive.schema, "MIGRATIONS", scripts)

    return install


def test_opening_an_older_archive_upgrades_it_and_says_so(
    archive_url: str, release_0002: Callable[[], None], capsys: pytest.CaptureFixture[str]
) -> None:
    with Archive.open(archive_url) as old:
        run = old.create_run("mha_fwd", {}, simulated=True)
    release_0002()
    capsys.readouterr()
    with Archive.open(archive_url) as upgraded:
        assert upgraded.get_run(run).task == "mha_fwd"
    notice = capsys.readouterr().err.strip().splitlines()
    assert len(notice) == 1
    assert "from schema 0001 to 0002" in notice[0]


def test_upgrade_reports_the_revisions_it_moved_between(archive_url: str, release_0002: Callable[[], None]) -> None:
    Archive.open(archive_url).close()
    release_0002()
    change = upgrade_archive(archive_url)
    assert (change.before, change.after) == ("0001", "0002")
    assert (upgrade_archive(archive_url).before, head_revision()) == ("0002", "0002")


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
