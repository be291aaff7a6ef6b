"""``evolve ui`` as a user meets it: its help, one-line errors for bad input, a real server
process that prints its URL and stops cleanly, and a CLI that works without the web stack."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from archive import Archive
from tests.conftest import Evolve

from .data import fill


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("ui-cli") / "evolve.db")
    with Archive.open(path) as archive:
        fill(archive)
    return path


def test_help_explains_the_pages_and_the_options(evolve: Evolve) -> None:
    r = evolve("ui", "--help")
    assert r.code == 0
    for words in ("--db", "--host", "--port", "127.0.0.1", "8765", "Read-only", "/api/runs"):
        assert words in r.out
    assert "ui" in evolve("--help").out


def test_a_missing_archive_is_one_line_not_a_traceback(evolve: Evolve, tmp_path: Path) -> None:
    r = evolve("ui", "--db", str(tmp_path / "none.db"))
    assert r.code == 2
    assert r.err.strip() == f"Error: no archive at {tmp_path / 'none.db'}; start a run or pass --db"
    assert not (tmp_path / "none.db").exists()


def test_a_busy_port_is_one_line_naming_the_way_out(evolve: Evolve, db: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = evolve("ui", "--db", db, "--port", port)
    assert r.code == 2
    assert r.err.strip() == f"Error: port {port} on 127.0.0.1 is in use; pick another with --port (0: any free port)"


def test_a_host_that_does_not_resolve_is_one_line(evolve: Evolve, db: str) -> None:
    r = evolve("ui", "--db", db, "--host", "no-such-host.invalid", "--port", "0")
    assert r.code == 2 and r.err.startswith("Error: cannot listen on 'no-such-host.invalid'")
    assert evolve("ui", "--db", db, "--port", "70000").code == 2  # typer's range check


@pytest.fixture
def server(db: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen([sys.executable, "-m", "evolve", "ui", "--db", db, "--port", "0"],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+/)", line)
        assert match, line
        yield proc, match.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_server_prints_its_url_serves_and_stops_on_ctrl_c(server: tuple[subprocess.Popen[str], str], db: str) -> None:
    proc, url = server
    with urllib.request.urlopen(url, timeout=10) as page:
        assert page.status == 200 and "demo" in page.read().decode()
    with urllib.request.urlopen(url + "api/runs", timeout=10) as api:
        assert json.load(api)[0]["run"]["name"] == "demo"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) in (0, 130)
    assert proc.stderr is not None and "Traceback" not in proc.stderr.read()


def test_the_cli_works_without_the_web_stack_and_says_what_is_missing(db: str) -> None:
    blocked = ("import sys\n"
               "for name in ('starlette', 'uvicorn'):  # pygments comes with rich\n"
               "    sys.modules[name] = None  # as if not installed\n"
               "import evolve.cli\n"
               "assert not any(m.startswith(('starlette', 'uvicorn')) for m in sys.modules if sys.modules[m])\n"
               f"sys.argv = ['evolve', 'ui', '--db', {db!r}]\n"
               "evolve.cli.main()\n")
    r = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == ("Error: the web UI needs uvicorn, a dependency of kernel-evolve: pip install -e . "
                                "(or pip install starlette uvicorn)")
