"""The parent's handle on one disposable sandbox process.

Spawned fresh (never forked from a process holding CUDA), in its own session and process
group, with a scrubbed environment, a scratch directory of its own (Triton cache and HOME
included) and its output drained into a capped log. ``close`` kills the whole group and the
namespace's init process, so nothing the candidate started outlives it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from harness.protocol import Channel, ChannelClosed, ChannelTimeout

_SECRET = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION", re.IGNORECASE)
_PASS_PREFIXES = ("CUDA_", "NVIDIA_", "NCCL_", "NVSHMEM_", "TORCH_", "TRITON_", "LC_")
_PASS_NAMES = {"PATH", "LD_LIBRARY_PATH", "LANG", "TZ", "TERM", "PYTHONPATH", "CC", "CXX"}


class SandboxDied(Exception):
    def __init__(self, message: str, exit_code: int | None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class SandboxTimeout(Exception):
    pass


def scrubbed_env(base: dict[str, str], scratch: Path, interpret: bool) -> dict[str, str]:
    """Only what a kernel needs, and nothing that looks like a credential."""
    env = {k: v for k, v in base.items()
           if (k in _PASS_NAMES or k.startswith(_PASS_PREFIXES)) and not _SECRET.search(k)}
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    env.update({
        "HOME": str(scratch / "home"),
        "TMPDIR": str(scratch / "tmp"),
        "TRITON_CACHE_DIR": str(scratch / "triton"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONNOUSERSITE": "1",
    })
    env.pop("TRITON_INTERPRET", None)
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    return env


def _code_paths() -> list[str]:
    """Where the child's interpreter, this project and their packages live: they must stay
    visible inside the sandbox, even when they sit under a /tmp that it makes private."""
    roots = [sys.prefix, sys.exec_prefix, sys.base_prefix, str(Path(__file__).resolve().parents[1])]
    return [p for p in roots + sys.path if p]


class _CappedLog:
    """Keeps the head and tail of a stream that may be flooded; drains it so the child never blocks."""

    def __init__(self, fd: int, cap: int) -> None:
        self._fd, self._cap = fd, cap
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        half = self._cap // 2
        while chunk := os.read(self._fd, 1 << 16):
            room = half - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            self.tail += chunk
            if len(self.tail) > half:
                self.dropped += len(self.tail) - half
                del self.tail[: len(self.tail) - half]
        os.close(self._fd)

    @property
    def total(self) -> int:
        return len(self.head) + len(self.tail) + self.dropped

    def text(self) -> str:
        self._thread.join(timeout=1.0)
        middle = f"\n[... {self.dropped} bytes of output dropped ...]\n" if self.dropped else ""
        return (bytes(self.head).decode(errors="replace") + middle + bytes(self.tail).decode(errors="replace"))


class Sandbox:
    def __init__(self, task: str, device: str, *, isolate: bool = True, log_cap: int = 64 << 10,
                 max_file_bytes: int = 4 << 30, start_timeout: float = 120.0,
                 triton_cache: Path | None = None) -> None:
        self.task, self.device, self.isolate = task, device, isolate
        self.scratch = Path(tempfile.mkdtemp(prefix="evolve-sandbox-"))
        for sub in ("io", "home", "tmp", "triton"):
            (self.scratch / sub).mkdir()
        if triton_cache is not None:  # trusted kernels only: a shared cache is writable by the child
            shutil.copytree(triton_cache, self.scratch / "triton", dirs_exist_ok=True)
        self._shared_cache = triton_cache
        self._log_cap, self._max_file_bytes, self._start_timeout = log_cap, max_file_bytes, start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._child_pid: int | None = None
        self._chan: Channel | None = None
        self._log: _CappedLog | None = None
        self.hello: dict[str, Any] = {}

    @property
    def io(self) -> Path:
        return self.scratch / "io"

    def start(self) -> dict[str, Any]:
        """Spawn the child and wait until it has imported torch and fenced itself in."""
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        log_r, log_w = os.pipe()
        cfg = {"task": self.task, "device": self.device, "scratch": str(self.scratch),
               "isolate": self.isolate, "req_fd": req_r, "resp_fd": resp_w,
               "max_file_bytes": self._max_file_bytes, "keep_paths": _code_paths()}
        env = scrubbed_env(dict(os.environ), self.scratch, interpret=self.device == "cpu")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "harness.boot", json.dumps(cfg)],
            stdin=subprocess.DEVNULL, stdout=log_w, stderr=log_w, env=env, cwd=self.scratch,
            pass_fds=(req_r, resp_w), start_new_session=True, close_fds=True,
        )
        for fd in (req_r, resp_w, log_w):
            os.close(fd)
        self._chan = Channel(resp_r, req_w)
        self._fds = (resp_r, req_w)
        self._log = _CappedLog(log_r, self._log_cap)
        boot = self._recv(self._start_timeout)
        self._child_pid = int(boot.get("boot", {}).get("child_pid", 0)) or None
        self.hello = self._recv(self._start_timeout).get("hello", {})
        return self.hello

    def _recv(self, timeout: float) -> dict[str, Any]:
        assert self._chan is not None
        try:
            return self._chan.recv(timeout)
        except ChannelTimeout:
            raise SandboxTimeout(f"no answer within {timeout:g} s") from None
        except ChannelClosed:
            raise SandboxDied(self._death_reason(), self._exit_code()) from None

    def request(self, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self._chan is not None
        try:
            self._chan.send(msg)
        except (BrokenPipeError, OSError):
            raise SandboxDied(self._death_reason(), self._exit_code()) from None
        return self._recv(timeout)

    def _exit_code(self) -> int | None:
        assert self._proc is not None
        try:
            return self._proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            return None

    def _death_reason(self) -> str:
        code = self._exit_code()
        if code is None:
            return "the sandbox closed its message pipe but is still running"
        if code == 0:
            return "the candidate's process exited (status 0) before answering"
        if code < 0 or code > 128:
            num = -code if code < 0 else code - 128
            try:
                name = signal.Signals(num).name
            except ValueError:
                name = f"signal {num}"
            return f"the candidate's process was killed by {name}"
        return f"the candidate's process exited with status {code}"

    @property
    def output_bytes(self) -> int:
        """How much the child has written to stdout and stderr so far."""
        return self._log.total if self._log else 0

    def log(self) -> str:
        return self._log.text() if self._log else ""

    def close(self) -> None:
        """Kill everything the sandbox started, then remove its scratch directory (after saving
        its Triton cache to a shared cache directory, if one was given)."""
        if self._proc is not None:
            for target in filter(None, (self._child_pid,)):
                try:
                    os.kill(target, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self._proc.wait()
            for fd in self._fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            if self._log:
                self._log.text()
        if self._shared_cache is not None:
            shutil.copytree(self.scratch / "triton", self._shared_cache, dirs_exist_ok=True)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

