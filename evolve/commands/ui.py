"""``evolve ui``: serve a read-only web view of the archive.

The web stack (starlette, uvicorn, pygments) is imported inside the command, so the rest of
the CLI runs where it is not installed (the GPU workers' image, say)."""

from __future__ import annotations

import errno
import socket
from typing import Annotated

import typer

from evolve.errors import UserError


def ui(
    db: Annotated[str | None, typer.Option("--db", metavar="URL", help="Archive URL or SQLite file (default: $EVOLVE_DB, else ./evolve.db).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on; the default serves this machine only. Pages are not authenticated: listen elsewhere only on a trusted network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free port).")] = 8765,
) -> None:
    """Browse the archive in a web browser: runs with their progress, a run's MAP-Elites grid,
    progress charts, operators, models and failures, and each program's source, diffs, lineage,
    speed per shape, verdict, log and the LLM calls that made it.

    Read-only, and live: the pages of a running search refresh themselves.

    The same data as JSON: /api/runs, /api/runs/RUN, /api/programs/PROGRAM. Stop with Ctrl-C.
    """
    try:
        import uvicorn

        from evolve.ui.app import create_app
    except ImportError as e:
        raise UserError(f"the web UI needs {e.name}, a dependency of kernel-evolve: pip install -e . "
                        "(or pip install starlette uvicorn)") from None
    from archive import Archive

    archive = Archive.open(db, create=False)
    try:
        sock = _listen(host, port)
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        typer.echo(f"Serving the archive at {archive.where} on http://{shown}:{bound_port}/ (Ctrl-C to stop)", err=True)
        config = uvicorn.Config(create_app(archive), log_level="warning", access_log=False, lifespan="off")
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        archive.close()


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound here so that a busy port or a bad address is a one-line error."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UserError(f"cannot listen on {host!r}: {e.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is in use; pick another with --port (0: any free port)") from None
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    return sock


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)
