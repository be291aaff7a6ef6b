"""The parent's handle on one disposable sandbox process.

Spawned fresh (never forked from a process holding CUDA), in its own session and process
group, with a scrubbed environment, a scratch directory of its own (Triton cache and HOME
included) and its output drained into a capped log. ``close`` kills the whole group and the
namespace's init process, so nothing the candidate started outlives it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from harness.cpu_share import ONE_THREAD_ENV
from harness.protocol import Channel, ChannelClosed, ChannelTimeout

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION", re.IGNORECASE)
_PASS_PREFIXES = ("CUDA_", "NVIDIA_", "NCCL_", "NVSHMEM_", "TORCH_", "TRITON_", "LC_")
_PASS_NAMES = {"PATH", "LD_LIBRARY_PATH", "LANG", "TZ", "TERM", "PYTHONPATH", "CC", "CXX"}
_CACHE_FILE_CAP = 64 << 20  # a Triton cache entry (a cubin, its JSON) is far smaller


def reap(proc: subprocess.Popen[bytes], fds: tuple[int, ...]) -> None:
    """Kill a spawned process's whole group (it started a session of its own), wait for it and
    close our ends of its pipes."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class SandboxDied(Exception):
    def __init__(self, message: str, exit_code: int | None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class SandboxTimeout(Exception):
    pass


def scrubbed_env(base: dict[str, str], scratch: Path, interpret: bool) -> dict[str, str]:
    """Only what a kernel needs, and nothing that looks like a credential."""
    env = {k: v for k, v in base.items()
           if (k in _PASS_NAMES or k.startswith(_PASS_PREFIXES)) and not SECRET_NAME.search(k)}
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    env.update({
        "HOME": str(scratch / "home"),
        "TMPDIR": str(scratch / "tmp"),
        "TRITON_CACHE_DIR": str(scratch / "triton"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONNOUSERSITE": "1",
        **ONE_THREAD_ENV,
    })
    env.pop("TRITON_INTERPRET", None)
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    libcuda = _libcuda_dir()
    if libcuda and "TRITON_LIBCUDA_PATH" not in env:
        env["TRITON_LIBCUDA_PATH"] = libcuda
    return env


@functools.cache
def _libcuda_dir() -> str | None:
    """The directory holding libcuda.so.1, found as Triton would (the loader's cache, then
    LD_LIBRARY_PATH). The child is told it, since inside the sandbox Triton's own search
    (``/sbin/ldconfig -p``) would depend on the loader's cache being readable there."""
    try:
        listing = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        listing = ""
    found = [line.rsplit("=>", 1)[-1].strip() for line in listing.splitlines()
             if line.strip().startswith("libcuda.so.1 ") and "=>" in line]
    found.sort(key=lambda path: "64" not in path)  # the 64-bit library before a 32-bit one
    dirs = [os.path.dirname(path) for path in found]
    dirs += [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    return next((d for d in dirs if os.path.exists(os.path.join(d, "libcuda.so.1"))), None)


def _code_paths() -> list[str]:
    """The directories the child sees beyond the system's: the Python installation, its
    package directories, the harness package and the CUDA driver's libraries. Not the project
    (its archive, .git, the user's files), nor the working directory, nor anything holding
    either, unless it is a Python prefix (a venv inside the project is one)."""
    harness = Path(__file__).resolve().parent
    prefixes = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
    named = {os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    hidden = (str(harness.parent), os.getcwd())

    def is_package_dir(path: str) -> bool:
        return (bool({"site-packages", "dist-packages"} & set(Path(path).parts))
                or any(path.startswith(prefix.rstrip("/") + "/") for prefix in prefixes) or path in named)

    packages = [p for p in map(os.path.abspath, filter(None, sys.path))
                if is_package_dir(p) and not any(h == p or h.startswith(p.rstrip("/") + "/") for h in hidden)]
    libraries = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    return (sorted(prefixes) + packages + [str(harness)] + libraries + list(filter(None, [_libcuda_dir()]))
            + _c_compiler_prefixes())


def _c_compiler_prefixes() -> list[str]:
    """The installation of the C compiler Triton builds its launcher with, chosen as
    triton.runtime.build does ($CC, else gcc, else clang on PATH), named and resolved: a gcc
    under /opt brings its own cc1 and headers there. Under /usr, it is kept anyway."""
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("clang")
    path = shutil.which(cc) if cc else None
    return [str(Path(p).parents[1]) for p in (os.path.abspath(path), os.path.realpath(path))] if path else []


class CappedLog:
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
                 max_file_bytes: int = 4 << 30, max_processes: int = 512, start_timeout: float = 120.0,
                 triton_cache: Path | None = None) -> None:
        self.task, self.device, self.isolate = task, device, isolate
        self.scratch = Path(tempfile.mkdtemp(prefix="evolve-sandbox-"))
        for sub in ("io", "home", "tmp", "triton"):
            (self.scratch / sub).mkdir()
        if triton_cache is not None:  # trusted kernels only: a shared cache is writable by the child
            shutil.copytree(triton_cache, self.scratch / "triton", dirs_exist_ok=True)
        self._shared_cache = triton_cache
        self._log_cap, self._max_file_bytes, self._start_timeout = log_cap, max_file_bytes, start_timeout
        self._max_processes = max_processes  # processes and threads; torch's thread pools take a few dozen
        self._proc: subprocess.Popen[bytes] | None = None
        self._child_pid: int | None = None
        self._chan: Channel | None = None
        self._log: CappedLog | None = None
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
               "max_file_bytes": self._max_file_bytes, "max_processes": self._max_processes,
               "keep_paths": _code_paths()}
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
        self._log = CappedLog(log_r, self._log_cap)
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
            reap(self._proc, self._fds)
            if self._log:
                self._log.text()
        if self._shared_cache is not None:
            _copy_regular_files(self.scratch / "triton", self._shared_cache)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _copy_regular_files(src: Path, dst: Path) -> None:
    """Copy the regular files under ``src`` (written by the child) into ``dst``, each replaced
    whole. Never follows a symlink the child planted (not even as a directory on the way), never
    opens a FIFO or device so as to block on it, skips files over ``_CACHE_FILE_CAP``."""
    for dirpath, _dirs, files, dir_fd in os.fwalk(src, follow_symlinks=False):
        into = dst / os.path.relpath(dirpath, src)
        for name in files:
            data = _read_regular_file(name, dir_fd)
            if data is None:
                continue
            part = into / f".{name}.{os.getpid()}.part"
            try:
                into.mkdir(parents=True, exist_ok=True)
                part.write_bytes(data)
                os.replace(part, into / name)
            except OSError:  # a name the shared cache holds as another kind of file: left out
                with contextlib.suppress(OSError):
                    part.unlink()


def _read_regular_file(name: str, dir_fd: int) -> bytes | None:
    """The bytes of ``name`` in ``dir_fd`` if it is a regular file of at most ``_CACHE_FILE_CAP``."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=dir_fd)
    except OSError:
        return None  # a symlink (ELOOP), or gone
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _CACHE_FILE_CAP:
            return None
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            size += len(chunk)
            if size > _CACHE_FILE_CAP:
                return None
        return b"".join(chunks)
    finally:
        os.close(fd)
