"""An OpenAI-compatible Chat Completions server of the tests' own, on loopback: real HTTP, so
the real ``openai`` client (its retries, timeouts and parsing) is what the tests exercise.

It answers from a script: a list of ``Reply`` consumed in order, or a function of the request.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    content: str | None = ""
    status: int = 200
    finish_reason: str = "stop"
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent as the body, as is (a malformed answer)
    usage: bool = True


@dataclass
class Request:
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body["messages"]

    @property
    def system(self) -> str:
        return next((m["content"] for m in self.messages if m["role"] == "system"), "")

    @property
    def user(self) -> str:
        """The last user message."""
        return next(m["content"] for m in reversed(self.messages) if m["role"] == "user")

    @property
    def model(self) -> str:
        return self.body["model"]


Script = Callable[[Request], Reply]


def rate_limited(times: int, then: Reply) -> list[Reply]:
    return [Reply(status=429, content=None, headers={"retry-after-ms": "20"})] * times + [then]


class FakeLLM:
    def __init__(self, script: Script | list[Reply]) -> None:
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        if isinstance(script, list):
            queue = list(script)

            def pop(_: Request) -> Reply:
                with self._lock:
                    if not queue:
                        return Reply(status=500, content=None, headers={"x-should-retry": "false"})
                    return queue.pop(0)

            self._script: Script = pop
        else:
            self._script = script
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                req = Request(json.loads(self.rfile.read(length)), {k.lower(): v for k, v in self.headers.items()})
                with fake._lock:
                    fake.requests.append(req)
                reply = fake._script(req)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.raw is not None:
                    body = reply.raw
                elif reply.status != 200:
                    error = {"message": f"scripted status {reply.status}", "type": "scripted"}
                    body = json.dumps({"error": error}).encode()
                else:
                    body = json.dumps(completion(req, reply)).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    pass

        return Handler

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def completion(req: Request, reply: Reply) -> dict[str, Any]:
    prompt_chars = sum(len(m["content"] or "") for m in req.messages)
    out: dict[str, Any] = {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": req.model,
        "choices": [{"index": 0, "finish_reason": reply.finish_reason,
                     "message": {"role": "assistant", "content": reply.content}}],
    }
    if reply.usage:
        completion_tokens = len(reply.content or "") // 4 + 1
        out["usage"] = {"prompt_tokens": prompt_chars // 4, "completion_tokens": completion_tokens,
                        "total_tokens": prompt_chars // 4 + completion_tokens}
    return out


@contextmanager
def serving(script: Script | list[Reply]) -> Iterator[FakeLLM]:
    with FakeLLM(script) as fake:
        yield fake


def diff(search: str, replace: str, summary: str = "") -> str:
    """A SEARCH/REPLACE block as a model writes it."""
    head = f"Summary: {summary}\n\n" if summary else ""
    return f"{head}<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


def rewrite(source: str, summary: str = "a rewrite") -> str:
    return f"Summary: {summary}\n\n```python\n{source}```\n"
