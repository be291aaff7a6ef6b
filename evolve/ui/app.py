"""The web app: a read-only Starlette application over one ``Archive``.

Every request is its own read transaction through the archive's API, so the pages follow a
search that writes to the same archive. Only GET routes exist. Text from candidates and models
is escaped by the templates (autoescape) and by pygments; on top of that, every response
carries a Content-Security-Policy that allows no script at all, so markup that slipped through
would still not run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from archive import Archive, ArchiveError
from archive.records import plain
from evolve.commands import archive_views as fmt
from evolve.ui import pages

HERE = Path(__file__).parent
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
REFRESH_S = 5


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers += [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer")]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(speedup=fmt.speedup, interval=fmt.interval, number=fmt.number, when=fmt.when,
                       percent=lambda v: "-" if v is None else f"{100 * v:.1f}%")
    env.globals["shape_label"] = pages.shape_label
    return env


def _int(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise HTTPException(404, f"no {what} {value!r}") from None


def create_app(archive: Archive) -> Starlette:
    env = _environment()

    def render(name: str, request: Request, status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(name).render(archive=archive.where, path=request.url.path, refresh_s=REFRESH_S,
                                             **context)
        return HTMLResponse(html, status_code=status)

    def runs(request: Request) -> Response:
        return render("runs.html", request, **pages.runs_page(archive))

    def run(request: Request) -> Response:
        run_id = _int(request.path_params["run_id"], "run")
        x, y = request.query_params.get("x") or None, request.query_params.get("y") or None
        return render("run.html", request, **pages.run_page(archive, run_id, x, y))

    def program(request: Request) -> Response:
        return render("program.html", request, **pages.program_page(archive, _int(request.path_params["pid"], "program")))

    def highlight_css(request: Request) -> Response:
        return Response(pages.highlight_css(), media_type="text/css")

    def api_runs(request: Request) -> Response:
        return _json([{"summary": r.summary, "run": r.run, "stats": r.stats, "progress": r.progress}
                      for r in pages.runs_page(archive)["runs"]])

    def api_run(request: Request) -> Response:
        return _json(pages.run_json(archive, _int(request.path_params["run_id"], "run")))

    def api_program(request: Request) -> Response:
        return _json(pages.program_data(archive, _int(request.path_params["pid"], "program")))

    def archive_error(request: Request, exc: Exception) -> Response:
        message = str(exc)
        status = 404 if message.startswith("no ") else 400 if "dimension" in message else 503
        return _error(request, status, message)

    def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(request, exc.status_code, exc.detail)

    def _error(request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=status)
        return render("error.html", request, status=status, status_code=status, message=message)

    routes = [
        Route("/", runs),
        Route("/runs/{run_id}", run),
        Route("/programs/{pid}", program),
        Route("/highlight.css", highlight_css),
        Route("/api/runs", api_runs),
        Route("/api/runs/{run_id}", api_run),
        Route("/api/programs/{pid}", api_program),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={ArchiveError: archive_error, HTTPException: http_error})
    app.add_middleware(SecurityHeaders)
    return app


def _json(data: Any) -> Response:
    body = json.dumps(plain(data, properties=("fraction",), finite=True), allow_nan=False, default=str)
    return Response(body, media_type="application/json")
