"""Properties of the sandbox itself, beyond what the adversarial suite shows."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from harness.checker import Checker
from harness.isolation import SANDBOX_DIR, SANDBOX_UID
from harness.sandbox import Sandbox, _code_paths
from harness.verdict import Outcome

from .conftest import ROOT, SEED


def test_a_project_living_under_tmp_still_runs_inside_the_private_tmp(tmp_path: Path) -> None:
    """The sandbox mounts a private /tmp; code and packages that live under /tmp (a CI clone,
    a venv) are bound back read-only, or the child could not even import the harness."""
    for package in ("harness", "seeds"):
        shutil.copytree(ROOT / package, tmp_path / package)
    script = (
        "from harness.checker import Checker\n"
        "from harness.device import detect\n"
        "import harness, sys\n"
        f"assert harness.__file__.startswith({str(tmp_path)!r})\n"
        "v = Checker('mha_fwd', platform=detect(force_interpreter=True)).check(open(sys.argv[1]).read())\n"
        "print(v.outcome.value, v.sandbox, v.reason)\n"
    )
    r = subprocess.run([sys.executable, "-c", script, str(SEED)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("passed") and "private-tmp" in r.stdout, r.stdout


@pytest.fixture
def ungated(checker: Checker) -> Checker:
    """The interpreter-mode checker with the static gate off: these candidates import os."""
    return Checker(checker.task, replace(checker.opt, static_gate=False), checker.platform)


def _seed_plus(code: str) -> str:
    return SEED.read_text() + "\n\n" + code


@pytest.fixture
def user_files(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """A HOME and a working directory of the user's, outside /tmp (in the real home), each
    holding a secret; the checker runs with them as its HOME and working directory."""
    base = Path(tempfile.mkdtemp(prefix=".evolve-sandbox-test-", dir=Path.home()))
    files = {"home": base / "home" / "secret.txt", "cwd": base / "work" / "secret.txt"}
    for f in files.values():
        f.parent.mkdir()
        f.write_text("sk-do-not-leak")
    monkeypatch.setenv("HOME", str(files["home"].parent))
    monkeypatch.chdir(files["cwd"].parent)
    try:
        yield files
    finally:
        shutil.rmtree(base)


_PROBE = """
import json as _json
import os as _os


def _probe(paths):
    seen = {}
    for p in paths:
        if _os.path.lexists(p):
            seen[p] = sorted(_os.listdir(p)) if _os.path.isdir(p) else "file"
    return seen


print("PROBE " + _json.dumps(_probe(PATHS)))
"""


def test_a_candidate_sees_none_of_the_users_files_yet_runs(ungated: Checker, user_files: dict[str, Path]) -> None:
    """The child's root is built from the system's directories, the Python installation and the
    harness package alone: the user's HOME and working directory, /root, /home, the project's
    README and .git, /etc/shadow and /etc/hostname are not there to read. A directory above a
    kept one (a pyenv under /root, a venv inside the project) shows only the way to it. The
    seed still imports torch and triton and passes."""
    secrets = [str(p) for p in user_files.values()] + [str(p.parent) for p in user_files.values()] + [
        str(ROOT / "README.md"), str(ROOT / ".git"), str(ROOT / "seeds"), "/etc/shadow", "/etc/hostname",
        "/etc/ssh", "/var", "/run", "/srv", "/mnt", "/media"]
    parents = ["/root", "/home", "/opt", str(ROOT), str(ROOT.parent)]
    verdict = ungated.check(_seed_plus(_PROBE.replace("PATHS", repr(secrets + parents))))
    assert verdict.outcome is Outcome.PASSED, verdict.reason
    seen = json.loads(re.search(r"^PROBE (.*)$", verdict.log, re.MULTILINE)[1])
    assert [p for p in secrets if p in seen] == []
    kept = {q for p in _code_paths() for q in (os.path.abspath(p), os.path.realpath(p))} | {SANDBOX_DIR}
    for parent, entries in seen.items():
        strays = [e for e in entries if not any(_under(k, f"{parent.rstrip('/')}/{e}") for k in kept)]
        assert strays == [], f"{parent} shows {strays}"
    assert {"minimal-root", "user-namespace", "seccomp", "process-limit"} <= set(verdict.sandbox), verdict.sandbox


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


def test_the_project_contributes_only_its_harness_package() -> None:
    paths = _code_paths()
    assert str(ROOT / "harness") in paths
    assert not [p for p in paths if os.path.abspath(p) in (str(ROOT), os.getcwd(), "/")]


_FORK_BOMB = """
import os


def forward(q, k, v, causal, sm_scale):
    n = 0
    try:
        while n < 3000:
            if os.fork() == 0:
                os.execv("/bin/sleep", ["sleep", "60"])
            n += 1
    except OSError as e:
        raise RuntimeError(f"forked {n}, then: {e}") from None
    raise RuntimeError(f"forked {n} without a limit")
"""


def test_forking_without_end_hits_the_process_limit_and_the_checker_keeps_answering(
        ungated: Checker, seed_source: str) -> None:
    """RLIMIT_NPROC applies to the sandbox user (it never does to root) and is counted in the
    sandbox's own user namespace: the fork loop fails long before 2000 processes, and the next
    candidate's sandbox has its own count."""
    verdict = ungated.check(_seed_plus(_FORK_BOMB))
    forked = re.search(r"forked (\d+)", verdict.reason)
    assert forked and "Resource temporarily unavailable" in verdict.reason, verdict.reason
    assert int(forked[1]) < 2000
    assert "process-limit" in verdict.sandbox
    assert ungated.check(seed_source).outcome is Outcome.PASSED


_SYSCALLS = """
import ctypes
import errno
import os
import subprocess
import threading

_libc = ctypes.CDLL(None, use_errno=True)


def _errno(ret):
    return "ok" if ret >= 0 else errno.errorcode[ctypes.get_errno()]


def forward(q, k, v, causal, sm_scale):
    seen = {"ptrace": _errno(_libc.ptrace(0, 0, None, None)),  # PTRACE_TRACEME
            "unshare": _errno(_libc.unshare(0x10000000)),  # CLONE_NEWUSER: unprivileged, were it let through
            "mount": _errno(_libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))}
    clone = {"x86_64": 56, "aarch64": 220}[os.uname().machine]
    ret = _libc.syscall(ctypes.c_long(clone), ctypes.c_ulong(0x10000000 | 17), None, None, None, None)
    if ret == 0:
        os._exit(0)
    seen["clone_newuser"] = _errno(ret)
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join()
    seen["subprocess"] = subprocess.run(["/bin/echo", "ok"], capture_output=True, text=True).stdout.strip()
    seen["seccomp"] = [line.split()[1] for line in open("/proc/self/status") if line.startswith("Seccomp:")][0]
    raise RuntimeError(" ".join(f"{k}={v}" for k, v in seen.items()))
"""


def test_seccomp_refuses_tracing_mounts_and_new_namespaces_but_not_threads_or_subprocesses(
        ungated: Checker) -> None:
    verdict = ungated.check(_seed_plus(_SYSCALLS))
    assert "ptrace=EPERM unshare=EPERM mount=EPERM clone_newuser=EPERM subprocess=ok seccomp=2" in verdict.reason, \
        verdict.reason
    assert "seccomp" in verdict.sandbox


def _load_in_sandbox(module: str, **kwargs: object) -> Sandbox:
    """A started sandbox that has imported ``module`` (given a ``forward``) as its candidate;
    the caller closes it."""
    sb = Sandbox("mha_fwd", "cpu", **kwargs)  # type: ignore[arg-type]
    (sb.scratch / "candidate.py").write_text(module + "\n\ndef forward(q, k, v, causal, sm_scale):\n    return q\n")
    try:
        sb.start()
        loaded = sb.request({"op": "load", "path": "candidate.py"}, timeout=60)
        assert loaded.get("ok"), loaded
    except BaseException:
        sb.close()
        raise
    return sb


def test_what_the_child_writes_belongs_to_the_sandbox_user_outside() -> None:
    """As root, the child's uid 0 is SANDBOX_UID outside (otherwise the user running the checker)."""
    sb = _load_in_sandbox("import os\nopen(os.path.join(os.environ['HOME'], 'mine'), 'w').close()\n")
    try:
        owner = (sb.scratch / "home" / "mine").stat().st_uid
    finally:
        sb.close()
    assert owner == (SANDBOX_UID if os.geteuid() == 0 else os.geteuid())


def test_the_shared_triton_cache_takes_back_regular_files_only(tmp_path: Path) -> None:
    """What the child leaves in its Triton cache is copied into the shared one without following
    a symlink it planted (to a host file, which would then reach every later candidate), without
    blocking on a FIFO and without files over the size cap."""
    shared = tmp_path / "cache"
    shared.mkdir()
    plant = (
        "import os\n"
        "d = os.path.join(os.environ['TRITON_CACHE_DIR'], 'entry')\n"
        "os.makedirs(d)\n"
        "open(os.path.join(d, 'kernel.json'), 'w').write('{}')\n"
        f"os.symlink({str(ROOT / 'README.md')!r}, os.path.join(d, 'readme'))\n"
        "os.symlink('/etc', os.path.join(os.environ['TRITON_CACHE_DIR'], 'etc'))\n"
        "os.mkfifo(os.path.join(d, 'fifo'))\n"
        "with open(os.path.join(d, 'huge'), 'w') as f:\n"
        "    f.truncate(65 << 20)\n"
    )
    sb = _load_in_sandbox(plant, triton_cache=shared)
    closing = threading.Thread(target=sb.close)
    closing.start()
    closing.join(timeout=60)
    assert not closing.is_alive(), "close() blocked on what the child left"
    copied = sorted(str(p.relative_to(shared)) for p in shared.rglob("*"))
    assert copied == ["entry", "entry/kernel.json"]


def test_a_check_started_from_tmp_as_working_directory_passes(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """On the H200, ``evolve run`` started with its working directory at /tmp once rejected the
    seed ("the sandbox failed to start"): Ray puts that directory on its workers' sys.path, and
    the sandbox bound /tmp itself back over its private /tmp as a package directory."""
    from harness.checker import Checker
    from harness.device import detect

    monkeypatch.chdir("/tmp")
    monkeypatch.syspath_prepend("/tmp")
    verdict = Checker("mha_fwd", platform=detect(force_interpreter=True)).check(SEED.read_text())
    assert verdict.passed, verdict.reason
