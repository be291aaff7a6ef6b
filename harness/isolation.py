"""What the OS offers to fence in a candidate. Every step is best effort: what could not be done
is reported, so the checker can warn instead of silently trusting a weaker sandbox.

Runs in the sandbox bootstrap (``harness.boot``), before any candidate code is loaded. Linux only.

**What the child sees.** A minimal root, built on a tmpfs and pivoted into, read-only: the
system's program and library directories (/usr, /bin, /lib...; on merged-/usr systems the
symlinks recreated), from /etc only the loader's cache and configuration and the alternatives
(``cc`` goes through them) plus a passwd and group naming the sandbox user alone, the Python
installation and its package directories, the ``harness`` package (nothing else of the
project: not its archive, .git or venv beyond the Python installation itself), the directories
of LD_LIBRARY_PATH and libcuda's, /sys, a /proc of its own PID namespace, a minimal /dev, a
private writable /tmp and its scratch directory at ``SANDBOX_DIR``. The user's files (HOME,
/root, /home, the working directory, /etc/shadow) are not hidden: they are not there. A path
that lives under a hidden place (a pyenv under /root) is bound alone, its parents empty.

**Who it runs as.** When boot runs as root, the child enters a user namespace whose uid and gid
0 are ``SANDBOX_UID`` outside: what it writes belongs to that uid, it holds capabilities only
over its own namespaces, and RLIMIT_NPROC, which the kernel never applies to the real root,
caps its processes and threads. Since Linux 5.14 that count is kept per (user namespace, uid)
(kernel/ucount.c: ``is_rlimit_overlimit`` checks the namespace's own count, then each parent's
against the limit its creator had, unlimited for root; user_namespace.c:
``enforced_nproc_rlimit``), so concurrent sandboxes do not share it. Older kernels count per
uid over the whole system; there the limit is left unset and reported. A process cannot map
another uid for itself, so boot forks: the inner process unshares, the outer one, still root
outside, writes its uid and gid maps and hands the scratch directory over, then only waits.
Run as another user, boot maps that user to 0 inside, as before.

**Order.** As root the minimal root is built first, in a mount namespace of its own and with
root's reach (a venv in a 0700 home stays readable), and the user namespace entered after: the
kernel locks the mounts it copies into a less privileged namespace, so nothing inside can
remount them writable or unmount them to see what they cover. As another user the user
namespace comes first, as mounting needs it. The root is entered (``enter_root``) by PID 1 of
the new PID namespace, which is the only process whose fresh /proc shows that namespace, and
while the host's /proc is still mounted (the kernel lets a user namespace mount a proc only
where one is fully visible already); the host's root is then detached, not merely hidden.

**Then** capabilities are dropped for good, no_new_privs set, and a seccomp filter refuses the
system calls that reach beyond the sandbox or into the kernel's attack surface (ptrace, mount,
new namespaces, keys, BPF, perf, modules...): defence in depth, as bubblewrap's users do.

**Why not bubblewrap.** bwrap would do the namespaces, the minimal root and a seccomp filter,
but it would have to be carried to every GPU worker (their image has no package manager), it
maps only its caller's own uid (run as root, the candidate would stay root outside, where no
process limit holds), and its seccomp filter comes as a compiled program to pass it. This
module already did namespaces, capabilities and rlimits; what it copies of bubblewrap are
ideas, not code: a tmpfs root holding binds, entered by pivot_root, remounts that keep the
flags the kernel locks, a deny-list filter that checks the architecture first.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import resource
import signal
import stat
from dataclasses import dataclass, field
from typing import NoReturn

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_SECUREBITS, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 1, 24, 28, 38, 47
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
_SECURE_NOROOT_ALL = 0x3F  # NOROOT, NO_SETUID_FIXUP, KEEP_CAPS_LOCKED and their locks
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# The uid and gid that the sandbox's root is outside its user namespace when boot runs as root:
# 0x7F000, far above the ids distributions give users (from 1000) and systemd's dynamic users
# (61184-65519). Nothing on the host should own files as it; pick another if /etc/subuid hands
# a range holding it to a rootless container.
SANDBOX_UID = 0x7F000
SANDBOX_DIR = "/tmp/sandbox"
# Where the new root is built before the child pivots into it: a tmpfs over the host's /tmp,
# the one directory sure to exist. Paths inside the new root are ``_NEWROOT + path``.
_NEWROOT = "/tmp"
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives")
_DEV_NODES = {"null", "zero", "full", "random", "urandom"}
_PROC_KNOBS = ("/sys", "/sysrq-trigger", "/irq", "/bus")
_NPROC_PER_NAMESPACE_SINCE = (5, 14)
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")

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


def _umount(target: str) -> None:
    _check(_libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")


def _at(path: str) -> str:
    """Where ``path`` of the new root is while it is being built."""
    return _NEWROOT + path


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


# -- namespaces --------------------------------------------------------------------------------

def fence(report: Report, scratch: str, keep: list[str]) -> bool:
    """Enter new mount, PID, network, IPC and user namespaces and build the minimal root, in the
    order the module's docstring explains. ``keep``: directories the child needs beyond the
    system's (the Python installation, its packages, the harness). Returns whether a root was
    built, for the child to ``enter_root`` once it is PID 1."""
    rest = CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC
    if os.geteuid() != 0:
        if not _unshare(CLONE_NEWUSER | CLONE_NEWNS | rest, report):
            return False
        _map_self()
        report.done += ["user-namespace", "mount-namespace", "pid-namespace", "net-namespace"]
        return build_root(scratch, keep, report)
    if not _unshare(CLONE_NEWNS, report):
        return False
    report.done.append("mount-namespace")
    scratch_fd = os.open(scratch, os.O_RDONLY | os.O_DIRECTORY)  # the root about to be built covers /tmp
    try:
        built = build_root(scratch, keep, report)
        why = _unshare_as_sandbox_user(CLONE_NEWNS | rest, scratch_fd)
    finally:
        os.close(scratch_fd)
    if why is None:
        report.done += ["user-namespace", "pid-namespace", "net-namespace"]
    else:
        report.missing.append(f"user namespace for uid {SANDBOX_UID} ({why}): the candidate runs as root, "
                              "without capabilities")
        if _unshare(rest, report):
            report.done += ["pid-namespace", "net-namespace"]
    return built


def _unshare(flags: int, report: Report) -> bool:
    if _libc.unshare(flags) == 0:
        return True
    report.missing.append(f"namespaces ({os.strerror(ctypes.get_errno())}): the candidate shares the network, "
                          "process table and file system view of the checker")
    return False


def _map_self() -> None:
    """Map the calling user to root inside the namespace it just unshared: the only mapping a
    process without CAP_SETUID outside may write for itself."""
    uid, gid = os.geteuid(), os.getegid()
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


def _unshare_as_sandbox_user(flags: int, scratch_fd: int) -> str | None:
    """Fork; the inner process unshares ``flags`` with a new user namespace, the outer one (still
    root outside) maps the namespace's 0 to SANDBOX_UID and gives it the scratch directory.
    Returns None in the inner process, which is then root inside and SANDBOX_UID outside; the
    outer one never returns but waits for it and exits as it does. When the namespace cannot be
    had, the inner process is gone and the outer one returns why, unchanged."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(go_w)
        _become_sandbox_user(flags, ready_w, go_r)
        return None
    os.close(ready_w)
    os.close(go_r)
    why = _map_sandbox_user(pid, ready_r, scratch_fd)
    if why is None:
        os.write(go_w, b"\0")
    os.close(ready_r)
    os.close(go_w)
    if why is not None:
        os.waitpid(pid, 0)
        return why
    os.closerange(3, max(map(int, os.listdir("/proc/self/fd"))) + 1)  # hold none of the sandbox's pipes open
    wait_and_exit(pid)


def _become_sandbox_user(flags: int, ready_w: int, go_r: int) -> None:
    """The inner half of ``_unshare_as_sandbox_user``: exits unless it ends up mapped."""
    os.setgroups([])  # the supplementary groups would otherwise stay root's, outside
    if _libc.unshare(flags | CLONE_NEWUSER) != 0:
        os.write(ready_w, os.strerror(ctypes.get_errno()).encode())
        os._exit(0)
    os.write(ready_w, b"\0")
    mapped = os.read(go_r, 1) == b"\0"
    os.close(ready_w)
    os.close(go_r)
    if not mapped:
        os._exit(0)
    os.setresgid(0, 0, 0)  # still the unmapped root outside until now
    os.setresuid(0, 0, 0)


def _map_sandbox_user(pid: int, ready_r: int, scratch_fd: int) -> str | None:
    """The outer half: None once ``pid`` is mapped and owns the scratch directory, else why not."""
    answer = os.read(ready_r, 256)
    if answer != b"\0":
        return answer.decode(errors="replace") or "the namespace process died"
    try:
        for name, text in (("setgroups", "deny"), ("uid_map", f"0 {SANDBOX_UID} 1"),
                           ("gid_map", f"0 {SANDBOX_UID} 1")):
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(text)
        _chown_tree(scratch_fd, SANDBOX_UID)
    except OSError as e:
        return f"mapping it: {e}"
    return None


def _chown_tree(dir_fd: int, uid: int) -> None:
    """Give the directory ``dir_fd`` and everything in it (made by the parent: no links to
    follow) to ``uid``, which the child then is outside."""
    os.chown(dir_fd, uid, uid)
    for _, dirs, files, fd in os.fwalk(".", dir_fd=dir_fd):
        for name in dirs + files:
            os.chown(name, uid, uid, dir_fd=fd, follow_symlinks=False)


def wait_and_exit(pid: int) -> NoReturn:
    """Wait for ``pid`` and exit with its status; a signal reads as 128 + its number, as in a shell."""
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    os._exit(128 - code if code < 0 else code)


# -- the minimal root ---------------------------------------------------------------------------

@dataclass
class _Sources:
    """What the new root shows, each opened (O_PATH) before the tmpfs covers the host's /tmp."""

    binds: list[tuple[str, int]] = field(default_factory=list)  # read-only, at the same path
    links: list[tuple[str, str]] = field(default_factory=list)  # symlinks recreated: merged /usr
    devices: list[tuple[str, int]] = field(default_factory=list)  # bound writable into a fresh /dev
    scratch: int = -1

    def close(self) -> None:
        """Close every descriptor: one left to the child would lead it back to the host's tree."""
        for fd in [fd for _, fd in self.binds + self.devices] + [self.scratch]:
            if fd >= 0:
                os.close(fd)


def build_root(scratch: str, keep: list[str], report: Report) -> bool:
    """Build the root the child will enter (what it holds: the module's docstring) on a tmpfs at
    ``_NEWROOT``. A path that cannot be shown is reported and left out; if the root itself
    cannot be made, the host's view stays, and that is reported."""
    sources = _Sources()
    try:
        _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here reaches the host
        _open_sources(sources, scratch, keep, report)
        _mount("tmpfs", _NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    except OSError as e:
        sources.close()
        report.missing.append(f"minimal root ({e}): the candidate sees the host's file system")
        return False
    try:
        _populate(sources, report)
        _mount(None, _NEWROOT, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    except OSError as e:
        _umount(_NEWROOT)
        report.missing.append(f"minimal root ({e}): the candidate sees the host's file system")
        return False
    finally:
        sources.close()
    return True


def _open_sources(sources: _Sources, scratch: str, keep: list[str], report: Report) -> None:
    """Open what the root will show. Each directory of ``keep`` is bound where it is named and
    where it really is (a symlink above it is not recreated), once: nothing inside another."""
    present = [d for d in _SYSTEM_DIRS if os.path.lexists(d)]
    sources.links = [(d, os.readlink(d)) for d in present if os.path.islink(d)]
    dirs = [d for d in present if not os.path.islink(d)] + ["/sys"]
    for path in keep:
        if os.path.isdir(path):
            dirs += [os.path.abspath(path), os.path.realpath(path)]
    elsewhere = tuple(link for link, _ in sources.links) + ("/proc", "/dev")  # reached through a link, or made anew
    dirs = [d for d in dirs if d not in ("/", "/tmp") and not _under(d, elsewhere)]
    paths = _outermost(dirs) + [f"/etc/{name}" for name in _ETC_FILES if os.path.exists(f"/etc/{name}")]
    devices = [name for name in sorted(os.listdir("/dev")) if name in _DEV_NODES or name.startswith("nvidia")]
    for path, into in [(p, sources.binds) for p in paths] + [(f"/dev/{n}", sources.devices) for n in devices]:
        try:
            into.append((path, os.open(path, os.O_PATH)))
        except OSError as e:
            report.missing.append(f"{path} is not visible in the sandbox ({e.strerror})")
    sources.scratch = os.open(scratch, os.O_PATH | os.O_DIRECTORY)


def _outermost(paths: list[str]) -> list[str]:
    """``paths`` without duplicates and without those inside another one, sorted."""
    unique = sorted(set(paths))
    return [p for p in unique if not any(p != q and _under(p, (q,)) for q in unique)]


def _populate(sources: _Sources, report: Report) -> None:
    for path, target in sources.links:
        os.symlink(target, _at(path))
    os.mkdir(_at("/tmp"))
    _mount("tmpfs", _at("/tmp"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=4g")
    for path, fd in sources.binds:
        try:
            _bind_fd(fd, path)
        except OSError as e:
            report.missing.append(f"{path} is not visible in the sandbox ({e})")
    _bind_fd(sources.scratch, SANDBOX_DIR, writable=True)
    _write_users()
    _private_dev(sources.devices, report)
    os.mkdir(_at("/proc"))


def _bind_fd(fd: int, path: str, writable: bool = False) -> None:
    """Bind what ``fd`` names, and every mount below it, at ``path`` of the new root (its
    parents made empty); read-only unless ``writable``, or not at all."""
    target = _at(path)
    if stat.S_ISDIR(os.fstat(fd).st_mode):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
    _mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)
    if not writable:
        try:
            _remount_readonly(target)
        except OSError:
            _umount(target)  # never left writable
            raise


def _remount_readonly(target: str) -> None:
    """Every mount at or under ``target`` read-only, keeping its nosuid, nodev and noexec: in a
    user namespace those are locked on mounts copied from the host, and a remount that dropped
    one would be refused."""
    for point in _mount_points():
        if not _under(point, (target,)):
            continue
        try:
            kept = os.statvfs(point).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)
        except PermissionError:
            continue  # below a directory this user may not search: beyond the candidate's reach too
        _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [_OCTAL_ESCAPE.sub(lambda m: chr(int(m[1], 8)), line.split()[4]) for line in f]


def _write_users() -> None:
    """A passwd and group that name the sandbox user alone (uid 0 inside), home in its scratch:
    getpwuid() answers, and no host account is listed."""
    os.makedirs(_at("/etc"), exist_ok=True)
    for name, text in (("passwd", f"sandbox:x:0:0:kernel-evolve sandbox:{SANDBOX_DIR}/home:/bin/false\n"),
                       ("group", "sandbox:x:0:\n")):
        with open(_at(f"/etc/{name}"), "w") as f:
            f.write(text)


def _private_dev(devices: list[tuple[str, int]], report: Report) -> None:
    """A fresh /dev holding only what a CUDA program opens: no disks, no consoles."""
    dev = _at("/dev")
    os.mkdir(dev)
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=0755,size=1m")
    for path, fd in devices:
        try:
            _bind_fd(fd, path, writable=True)
        except OSError as e:
            report.missing.append(f"{path} is not visible in the sandbox ({e})")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{dev}/{name}")
    os.mkdir(f"{dev}/shm")
    _mount("tmpfs", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=1g")


def enter_root(report: Report) -> str:
    """Make the root ``build_root`` built the child's /, with a /proc of its PID namespace, and
    detach the host's. Run by PID 1 of the new PID namespace. Falls back to chroot where
    pivot_root is refused. Returns where the child sees its scratch directory."""
    _private_proc(report)
    try:
        # A user namespace gets its mounts locked, and pivot_root refuses a locked new root:
        # a bind of it onto itself is a mount of this namespace's own.
        _mount(_NEWROOT, _NEWROOT, None, MS_BIND | MS_REC)
        os.chdir(_NEWROOT)
        _pivot_root_here()
    except OSError as e:
        return _chroot_instead(report, e)
    try:
        _umount(".")  # the host's root, which pivot_root(".", ".") stacked on top of the new one
    except OSError as e:
        report.missing.append(f"the host's root stays mounted ({e}): the candidate sees the host's file system")
        return SANDBOX_DIR
    os.chdir("/")
    report.done += ["minimal-root", "private-tmp", "private-dev"]
    return SANDBOX_DIR


def _pivot_root_here() -> None:
    """pivot_root(".", "."): glibc has no wrapper, so by number."""
    machine = os.uname().machine
    if machine not in _SECCOMP:
        raise OSError(errno.ENOSYS, f"pivot_root: no system call number known for {machine}")
    _check(_libc.syscall(ctypes.c_long(_SECCOMP[machine][1]["pivot_root"]), b".", b"."), "pivot_root")


def _chroot_instead(report: Report, why: OSError) -> str:
    try:
        os.chroot(_NEWROOT)
        os.chdir("/")
    except OSError as e:
        report.missing.append(f"minimal root not entered ({why}; chroot: {e}): the candidate sees the host's "
                              "file system")
        return _at(SANDBOX_DIR)
    report.missing.append(f"pivot_root ({why}): the minimal root is entered with chroot, the host's root stays "
                          "mounted behind it")
    report.done += ["minimal-root", "private-tmp", "private-dev"]
    return SANDBOX_DIR


def _private_proc(report: Report) -> None:
    """A /proc of the new PID namespace (the host's processes are invisible from inside), with
    its kernel knobs read-only; the host's, read-only, where a fresh one is refused (a container
    that masks parts of its /proc makes the kernel refuse one to a user namespace)."""
    target = _at("/proc")
    try:
        _mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError as e:
        try:
            _mount("/proc", target, None, MS_BIND | MS_REC)
            _remount_readonly(target)
        except OSError as e2:
            report.missing.append(f"no /proc ({e}; the host's: {e2})")
            return
        report.missing.append(f"private /proc ({e}): the host's /proc is shown, read-only")
        return
    try:
        for knob in _PROC_KNOBS:
            if os.path.exists(target + knob):
                _mount(target + knob, target + knob, None, MS_BIND | MS_REC)
                _remount_readonly(target + knob)
    except OSError as e:
        report.missing.append(f"read-only kernel knobs in /proc ({e})")
    report.done.append("private-proc")


# -- the process --------------------------------------------------------------------------------

def die_with_parent() -> None:
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities(report: Report) -> None:
    """Lose every capability, for good (as bubblewrap does): no remount, no signals across
    users, no raw devices. Securebits stop an exec from regaining what root would get, and
    no_new_privs stops setuid programs (and lets an unprivileged process install seccomp)."""
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
        report.done.append("no-capabilities")
    except OSError as e:
        report.missing.append(f"capability drop ({e})")
    try:
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    except OSError as e:
        report.missing.append(str(e))


def limit_resources(report: Report, max_file_bytes: int, max_processes: int) -> None:
    """Cap core dumps, file sizes, open files and, inside a user namespace, processes (threads
    included); never the address space, which CUDA needs. Outside one, or on a kernel counting
    per uid over the whole system, a process limit would be shared with every process of the
    user (other sandboxes, a desktop session), so it is left unset and reported."""
    limits = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, max_file_bytes), (resource.RLIMIT_NOFILE, 4096)]
    release = os.uname().release
    version = re.match(r"(\d+)\.(\d+)", release)
    if "user-namespace" not in report.done:
        report.missing.append("process limit not enforced: no user namespace")
    elif version is None or (int(version[1]), int(version[2])) < _NPROC_PER_NAMESPACE_SINCE:
        report.missing.append(f"process limit not enforced: Linux {release} counts processes per uid, not per "
                              "user namespace (5.14 and later)")
    else:
        limits.append((resource.RLIMIT_NPROC, max_processes))
    done = ["rlimits"]
    for res, value in limits:
        try:
            _, hard = resource.getrlimit(res)
            cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(res, (cap, cap))
        except (ValueError, OSError) as e:
            done = []
            report.missing.append(f"rlimit {res} ({e})")
        else:
            if res == resource.RLIMIT_NPROC:
                done.append("process-limit")
    report.done += done


# -- seccomp ------------------------------------------------------------------------------------

# Refused with EPERM: tracing and reading other processes, mounts and namespaces (by unshare,
# setns or clone's flags), keys, BPF, perf, kexec, modules, reboot, swap, userfaultfd, file
# handles (which open by inode, past any mount), quotas. clone3 answers ENOSYS, as in Docker's
# profile: its flags lie in memory a filter cannot read, and glibc then falls back to clone.
_DENIED = ("ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2", "pivot_root", "chroot",
           "unshare", "setns", "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "kexec_load",
           "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff",
           "userfaultfd", "open_by_handle_at", "name_to_handle_at", "quotactl", "open_tree", "move_mount",
           "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr")
_NAMESPACE_FLAGS = (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID
                    | CLONE_NEWNET)
_NEW_SYSCALLS = {"clone3": 435, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
                 "fsmount": 432, "fspick": 433, "mount_setattr": 442}  # one number on every architecture
# machine: (AUDIT_ARCH_*, system call numbers, the x32 ABI's bit: its calls are refused whole)
_SECCOMP: dict[str, tuple[int, dict[str, int], int]] = {
    "x86_64": (0xC000003E, {
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "mount": 165, "umount2": 166,
        "pivot_root": 155, "chroot": 161, "unshare": 272, "setns": 308, "keyctl": 250, "add_key": 248,
        "request_key": 249, "bpf": 321, "perf_event_open": 298, "kexec_load": 246, "kexec_file_load": 320,
        "init_module": 175, "finit_module": 313, "delete_module": 176, "reboot": 169, "swapon": 167,
        "swapoff": 168, "userfaultfd": 323, "open_by_handle_at": 304, "name_to_handle_at": 303, "quotactl": 179,
        "clone": 56, **_NEW_SYSCALLS}, 0x40000000),
    "aarch64": (0xC00000B7, {
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "mount": 40, "umount2": 39,
        "pivot_root": 41, "chroot": 51, "unshare": 97, "setns": 268, "keyctl": 219, "add_key": 217,
        "request_key": 218, "bpf": 280, "perf_event_open": 241, "kexec_load": 104, "kexec_file_load": 294,
        "init_module": 105, "finit_module": 273, "delete_module": 106, "reboot": 142, "swapon": 224,
        "swapoff": 225, "userfaultfd": 282, "open_by_handle_at": 265, "name_to_handle_at": 264, "quotactl": 60,
        "clone": 220, **_NEW_SYSCALLS}, 0),
}
_BPF_LD_W_ABS, _BPF_JEQ, _BPF_JGE, _BPF_JSET, _BPF_RET = 0x20, 0x15, 0x35, 0x45, 0x06
_RET_KILL_PROCESS, _RET_ERRNO, _RET_ALLOW = 0x80000000, 0x00050000, 0x7FFF0000


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def seccomp_program(audit_arch: int, numbers: dict[str, int], x32_bit: int) -> list[tuple[int, int, int, int]]:
    """The classic-BPF filter as (code, jt, jf, k): a foreign architecture (i386 calls from an
    x86-64 process) kills, a denied call or clone with a namespace flag gets EPERM, clone3
    ENOSYS, anything else passes. Jumps are written to labels and resolved at the end."""
    code: list[tuple[int, int | str, int | str, int]] = [
        (_BPF_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        (_BPF_JEQ, 0, "kill", audit_arch),
        (_BPF_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
    ]
    if x32_bit:
        code.append((_BPF_JGE, "deny", 0, x32_bit))
    code += [(_BPF_JEQ, "deny", 0, numbers[name]) for name in _DENIED]
    code += [
        (_BPF_JEQ, "enosys", 0, numbers["clone3"]),
        (_BPF_JEQ, 0, "allow", numbers["clone"]),
        (_BPF_LD_W_ABS, 0, 0, 16),  # clone's flags: the low half of args[0] (little-endian)
        (_BPF_JSET, "deny", "allow", _NAMESPACE_FLAGS),
    ]
    exits = {"allow": _RET_ALLOW, "deny": _RET_ERRNO | errno.EPERM, "enosys": _RET_ERRNO | errno.ENOSYS,
             "kill": _RET_KILL_PROCESS}
    at = {label: len(code) + i for i, label in enumerate(exits)}
    code += [(_BPF_RET, 0, 0, k) for k in exits.values()]

    def offset(i: int, to: int | str) -> int:
        return to if isinstance(to, int) else at[to] - i - 1

    return [(c, offset(i, jt), offset(i, jf), k) for i, (c, jt, jf, k) in enumerate(code)]


def install_seccomp(report: Report) -> None:
    """Install the filter on this process and all it will start (needs no_new_privs first).
    CUDA, Triton's compilers (ptxas and gcc run as subprocesses), torch and Python need none
    of the calls it refuses."""
    machine = os.uname().machine
    if machine not in _SECCOMP:
        report.missing.append(f"seccomp (no filter for {machine})")
        return
    program = seccomp_program(*_SECCOMP[machine])
    filters = (_SockFilter * len(program))(*program)
    prog = _SockFprog(len(program), filters)
    if _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        report.missing.append(f"seccomp ({os.strerror(ctypes.get_errno())})")
        return
    report.done.append("seccomp")
