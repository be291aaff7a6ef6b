"""Every archive test runs against SQLite, and against PostgreSQL when
``$EVOLVE_TEST_POSTGRES_URL`` names a server (``eval "$(bash .ci/postgres.sh)"`` starts one);
each test gets a fresh database file or a fresh PostgreSQL schema."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from archive import Archive

from ..conftest import fresh_postgres_schema

PG_ENV = "EVOLVE_TEST_POSTGRES_URL"

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgres",
        id="postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not os.environ.get(PG_ENV), reason=f"${PG_ENV} is not set"),
        ],
    ),
]


@pytest.fixture(params=BACKENDS)
def archive_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('archive') / 'evolve.db'}"
        return
    with fresh_postgres_schema(os.environ[PG_ENV]) as url:
        yield url


@pytest.fixture
def archive(archive_url: str) -> Iterator[Archive]:
    with Archive.open(archive_url) as opened:
        yield opened
