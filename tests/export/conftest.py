"""An empty SQLite archive per test, and the CLI runner of the archive tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from archive import Archive
from tests.archive.test_cli import evolve  # noqa: F401  (runs `evolve ...` through its error edge)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'evolve.db'}"


@pytest.fixture
def archive(db: str) -> Iterator[Archive]:
    with Archive.open(db) as opened:
        yield opened
