from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from archive import Archive
from tests.archive.conftest import BACKENDS, PG_ENV

from ..conftest import fresh_postgres_schema
from .data import Filled, fill

pytest.importorskip("starlette", reason="the web UI's dependencies (starlette, uvicorn, pygments) are not installed")


@pytest.fixture(scope="module", params=BACKENDS)
def filled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Archive, Filled]]:
    """An archive holding ``data.fill``'s run, once per module and backend, opened."""
    if request.param == "sqlite":
        with Archive.open(f"sqlite:///{tmp_path_factory.mktemp('ui') / 'evolve.db'}") as archive:
            yield archive, fill(archive)
        return
    with fresh_postgres_schema(os.environ[PG_ENV]) as url, Archive.open(url) as archive:
        yield archive, fill(archive)
