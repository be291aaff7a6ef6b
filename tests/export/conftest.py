"""An empty SQLite archive per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from archive import Archive


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'evolve.db'}"


@pytest.fixture
def archive(db: str) -> Iterator[Archive]:
    with Archive.open(db) as opened:
        yield opened
