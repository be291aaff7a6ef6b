"""The parent's handle on one judge process (``harness.judge_process``): spawned beside the
sandbox for every check on a GPU, handed only validated plans and files, killed afterwards.

The judge runs the candidate's binaries, not its Python: it can crash or hang on them, never
lie. So its answers are believed, and what goes wrong in it is the candidate's fault except
where the judge itself says ``harness``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.cpu_share import ONE_THREAD_ENV
from harness.protocol import Channel, ChannelClosed, ChannelTimeout
from harness.sandbox import SECRET_NAME, CappedLog, reap


class JudgeFailed(Exception):
    """The judge died, hung or reported a failure; ``kind`` is ``candidate``, ``crash``,
    ``timeout`` or ``harness``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def default_cache() -> Path:
    """Where judges keep Triton's compiled launchers (C stubs built from validated signatures)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kernel-evolve" / "judge-triton"


class Judge:
    def __init__(self, task: str, *, cache: Path | None = None, start_timeout: float = 180.0) -> None:
        self.task, self._start_timeout = task, start_timeout
        self.workdir = Path(tempfile.mkdtemp(prefix="evolve-judge-"))
        self.cache = cache or default_cache()
        self.handed: set[str] = set()  # files already in the work directory
        self._proc: subprocess.Popen[bytes] | None = None
        self._chan: Channel | None = None
        self._log: CappedLog | None = None
        self._fds: tuple[int, ...] = ()
        self.hello: dict[str, Any] = {}

    def start(self) -> dict[str, Any]:
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        log_r, log_w = os.pipe()
        self.cache.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not SECRET_NAME.search(k)}
        env.pop("TRITON_INTERPRET", None)
        package_root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        env["TRITON_CACHE_DIR"] = str(self.cache)
        env.update(ONE_THREAD_ENV)
        cfg = {"task": self.task, "workdir": str(self.workdir), "req_fd": req_r, "resp_fd": resp_w}
        self._proc = subprocess.Popen([sys.executable, "-m", "harness.judge_process", json.dumps(cfg)],
                                      stdin=subprocess.DEVNULL, stdout=log_w, stderr=log_w, env=env,
                                      cwd=self.workdir, pass_fds=(req_r, resp_w), start_new_session=True)
        for fd in (req_r, resp_w, log_w):
            os.close(fd)
        self._chan, self._fds = Channel(resp_r, req_w), (resp_r, req_w)
        self._log = CappedLog(log_r, 64 << 10)
        self.hello = self._recv(self._start_timeout).get("hello", {})
        return self.hello

    def hand_over(self, name: str, data: bytes) -> None:
        """Put a validated file where the judge reads it."""
        if name not in self.handed:
            (self.workdir / name).write_bytes(data)
            self.handed.add(name)

    def request(self, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self._chan is not None
        try:
            self._chan.send(msg)
        except OSError:
            raise JudgeFailed("crash", self._death()) from None
        resp = self._recv(timeout)
        if not resp.get("ok"):
            raise JudgeFailed(str(resp.get("kind", "harness")), str(resp.get("error", "unknown error")))
        return resp

    def _recv(self, timeout: float) -> dict[str, Any]:
        assert self._chan is not None
        try:
            return self._chan.recv(timeout)
        except ChannelTimeout:
            raise JudgeFailed("timeout", f"the judge got no answer from the GPU within {timeout:g} s") from None
        except ChannelClosed:
            raise JudgeFailed("crash", self._death()) from None

    def _death(self) -> str:
        assert self._proc is not None
        try:
            code = self._proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            code = None
        tail = self.log()[-600:].strip()
        return f"the judge process ended (status {code}) while replaying the candidate's kernels" + (
            f"; its last output: {tail}" if tail else "")

    def log(self) -> str:
        return self._log.text() if self._log else ""

    def close(self) -> None:
        if self._proc is not None:
            reap(self._proc, self._fds)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
