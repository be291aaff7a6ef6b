"""What the OS offers to fence in a candidate: namespaces, a read-only view of the file
system with a private /tmp, a minimal /dev and one writable scratch directory, no
capabilities, and resource limits. Every step is best effort: what could not be done is reported, so the
checker can warn instead of silently trusting a weaker sandbox.

Runs in the sandbox bootstrap, before any candidate code is loaded. Linux only.
"""

from __future__ import annotations

import ctypes
import os
import resource
from dataclasses import dataclass, field

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_SECUREBITS, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 1, 24, 28, 38, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_SECURE_NOROOT_ALL = 0x3F  # NOROOT, NO_SETUID_FIXUP, KEEP_CAPS_LOCKED and their locks
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
SANDBOX_DIR = "/tmp/sandbox"
_DEV_NODES = {"null", "zero", "full", "random", "urandom"}

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass
class Report:
    """Which protections are in place, and why any is missing."""

    done: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(src and src.encode(), target.encode(), fstype and fstype.encode(), flags,
                       data and data.encode()), f"mount {target}")


def enter_namespaces(report: Report) -> bool:
    """New mount, PID, network and IPC namespaces; as non-root through a user namespace."""
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC
    uid, gid = os.geteuid(), os.getegid()
    if uid != 0:
        flags |= CLONE_NEWUSER
    if _libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        report.missing.append(f"namespaces ({os.strerror(err)}): the candidate shares the network, "
                              "process table and file system view of the checker")
        return False
    if uid != 0:
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"0 {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"0 {gid} 1")
        report.done.append("user-namespace")
    report.done += ["pid-namespace", "net-namespace", "mount-namespace"]
    return True


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r + "/") for r in roots)


def _bind(src: str, dst: str, readonly: bool = False) -> None:
    _mount(src, dst, None, MS_BIND | MS_REC)
    if readonly:
        _mount(None, dst, None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def _private_dev() -> None:
    """A fresh /dev holding only what a CUDA program opens: no disks, no consoles."""
    os.mkdir("/tmp/.hostdev")
    _bind("/dev", "/tmp/.hostdev")
    _mount("tmpfs", "/dev", "tmpfs", MS_NOSUID, "mode=0755,size=1m")
    keep = [n for n in os.listdir("/tmp/.hostdev") if n in _DEV_NODES or n.startswith("nvidia")]
    for name in keep:
        src = f"/tmp/.hostdev/{name}"
        if os.path.isdir(src):
            os.mkdir(f"/dev/{name}")
        else:
            open(f"/dev/{name}", "w").close()
        _bind(src, f"/dev/{name}")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"/dev/{name}")
    os.mkdir("/dev/shm")
    _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=1g")
    _check(_libc.umount2(b"/tmp/.hostdev", MNT_DETACH), "umount /tmp/.hostdev")
    os.rmdir("/tmp/.hostdev")


def _outermost(paths: list[str], roots: tuple[str, ...]) -> list[str]:
    """The directories among ``paths`` under ``roots``, without those inside another one."""
    inside = sorted({os.path.realpath(p) for p in paths if os.path.isdir(p)})
    inside = [p for p in inside if _under(p, roots)]
    return [p for p in inside if not any(p != q and _under(p, (q,)) for q in inside)]


def fence_filesystem(scratch: str, keep: list[str], report: Report) -> str:
    """Private tmpfs for /tmp and /var/tmp, a minimal /dev, scratch bound at SANDBOX_DIR, every
    other mount read-only. Directories in ``keep`` (the interpreter, the project, its packages)
    that lie under /tmp or /var/tmp are bound back, read-only, where they were. Returns the
    path at which the child sees its scratch directory."""
    private = ("/tmp", "/var/tmp")
    try:
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        scratch_fd = os.open(scratch, os.O_RDONLY | os.O_DIRECTORY)
        kept = [(p, os.open(p, os.O_RDONLY | os.O_DIRECTORY)) for p in _outermost(keep, private)]
        for d in private:
            if os.path.isdir(d):
                _mount("tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=4g")
        os.mkdir(SANDBOX_DIR)
        _mount(f"/proc/self/fd/{scratch_fd}", SANDBOX_DIR, None, MS_BIND)
        os.close(scratch_fd)
        for path, fd in kept:
            os.makedirs(path, exist_ok=True)
            _bind(f"/proc/self/fd/{fd}", path, readonly=True)
            os.close(fd)
        _private_dev()
    except OSError as e:
        report.missing.append(f"private file system view ({e}): writes outside scratch are not blocked")
        return scratch
    failed = []
    for mp in _mount_points():
        if _under(mp, ("/tmp", "/var/tmp", "/dev", "/proc")):
            continue
        try:
            _mount(None, mp, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
        except OSError:
            failed.append(mp)
    if failed:
        report.missing.append(f"read-only remount of {', '.join(failed[:5])}")
    report.done += ["read-only-root", "private-tmp", "private-dev"]
    return SANDBOX_DIR


def mount_proc(report: Report) -> None:
    """A /proc of the new PID namespace (the host's processes are invisible from inside), with
    its kernel knobs read-only."""
    try:
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        for knob in ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"):
            if os.path.exists(knob):
                _bind(knob, knob, readonly=True)
        report.done.append("private-proc")
    except OSError as e:
        report.missing.append(f"private /proc ({e})")


def die_with_parent() -> None:
    import signal

    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities(report: Report) -> None:
    """Keep the user id but lose every capability, for good (as bubblewrap does): no remount,
    no signals across users, no raw devices; root's files are reachable only through mounts
    that are read-only by now. Securebits stop an exec from regaining what root would get."""
    try:
        _check(_libc.prctl(PR_SET_SECUREBITS, _SECURE_NOROOT_ALL, 0, 0, 0), "securebits")
    except OSError:
        pass  # without CAP_SETPCAP; the empty bounding set below still holds across exec
    cap = 0
    while _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0 or ctypes.get_errno() != 22 and cap < 64:
        cap += 1
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    try:
        _check(_libc.capset(ctypes.byref(header), data), "capset")
    except OSError as e:
        report.missing.append(f"capability drop ({e})")
        return
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    report.done.append("no-capabilities")


def limit_resources(report: Report, max_file_bytes: int) -> None:
    """Cap core dumps, file sizes and open files; never the address space, which CUDA needs."""
    for res, value in ((resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, max_file_bytes),
                       (resource.RLIMIT_NOFILE, 4096)):
        try:
            soft, hard = resource.getrlimit(res)
            cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(res, (cap, cap))
        except (ValueError, OSError):
            report.missing.append(f"rlimit {res}")
    report.done.append("rlimits")
