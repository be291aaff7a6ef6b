from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "seeds" / "mha_fwd.py"


@pytest.fixture(scope="session")
def seed_source() -> str:
    return SEED.read_text()


@pytest.fixture(scope="session")
def checker():
    """An interpreter-mode checker with timeouts short enough for hang tests."""
    from harness.checker import Checker, CheckOptions
    from harness.device import detect

    return Checker("mha_fwd", CheckOptions(load_timeout_s=15, request_timeout_s=10, total_timeout_s=240),
                   platform=detect(force_interpreter=True))


def pytest_collection_modifyitems(config, items) -> None:  # type: ignore[no-untyped-def]
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def gpu_checker():
    from harness.checker import Checker, CheckOptions

    return Checker("mha_fwd", CheckOptions(load_timeout_s=60, request_timeout_s=120, total_timeout_s=600))


@contextmanager
def fresh_postgres_schema(server: str) -> Iterator[str]:
    """A URL for a new, empty schema on the PostgreSQL server ``server``, dropped afterwards."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield make_url(server).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema on the PostgreSQL server named by $EVOLVE_TEST_POSTGRES_URL."""
    import os

    with fresh_postgres_schema(os.environ["EVOLVE_TEST_POSTGRES_URL"]) as url:
        yield url


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


Evolve = Callable[..., Result]


@pytest.fixture
def evolve(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Evolve:
    """Run ``evolve ARGS...`` as a user would, through ``evolve.cli.main`` and its error edge."""
    from evolve.cli import main

    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str | int) -> Result:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["evolve", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return Result(code, out, err)

    return run
