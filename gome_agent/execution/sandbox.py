"""The first process of every solution run: it fences the solution in, then starts it.

The executor starts `python -m gome_agent.execution.sandbox --error-fd N` and writes a
`SandboxSpec` (JSON) to its stdin. Two modes:

- ``namespace``: started by ``unshare --user --map-root-user --mount --pid``,
  so the init is root of fresh user and mount namespaces and its first child
  opens a fresh PID namespace. The init makes every mount read-only except the
  workdir and the cache, binds the data folder read-only, covers the hidden
  paths (private answers, a leaderboard) with empty read-only mounts, puts
  private tmpfs on /tmp and /dev/shm and brings up loopback (when the network
  is private). Its
  child, PID 1 of the new PID namespace, mounts a /proc that shows only the
  solution's processes, locks all mounts by entering a nested user namespace
  (so the solution cannot undo them), and `execvpe`s the solution: the solution
  is PID 1, and when it exits the kernel kills every process it left behind.
- ``reaper``: no namespaces available. The init marks itself a child subreaper,
  forks the solution, and once the solution exits kills whatever it left
  behind (orphans, double-forked daemons and `setsid` children are all
  reparented to it).

In both modes the init waits for the solution and exits the way it did (same
exit code or signal), and it dies with the agent: if the agent goes, the
solution goes too. Status goes back to the executor over the pipe named by
``--error-fd``: the init writes ``+`` as soon as it runs, then an error message
if it cannot start the solution. The pipe is close-on-exec, so a started
solution never holds it.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import os
import re
import resource
import signal
import socket
import struct
import sys
from pathlib import Path
from typing import Literal

import psutil
from pydantic import BaseModel

# Exit code of the init when it could not start the solution (the reason is on the error pipe).
SETUP_FAILED = 125
STARTED = b"+"

_MS_RDONLY = 0x1
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_NOEXEC = 0x8
_MS_REMOUNT = 0x20
_MS_NOATIME = 0x400
_MS_NODIRATIME = 0x800
_MS_BIND = 0x1000
_MNT_DETACH = 0x2
_MS_REC = 0x4000
_MS_PRIVATE = 0x40000
_MS_RELATIME = 0x200000
_MS_STRICTATIME = 0x1000000
# Mount options that a user namespace may not drop on remount: they must be passed again.
_KEPT_OPTIONS = {
    "nosuid": _MS_NOSUID, "nodev": _MS_NODEV, "noexec": _MS_NOEXEC,
    "noatime": _MS_NOATIME, "nodiratime": _MS_NODIRATIME, "relatime": _MS_RELATIME,
}
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
# Mounts the solution needs writable and that are private to it or harmless (devices, proc).
_LEFT_WRITABLE = ("/proc", "/dev")
_PRIVATE_TMPFS = ("/tmp", "/dev/shm")


class SandboxSpec(BaseModel):
    """What the init needs to start one solution."""

    mode: Literal["namespace", "reaper"]
    command: list[str]
    env: dict[str, str]
    workdir: Path
    writable: list[Path] = []
    readonly: list[Path] = []
    hidden: list[Path] = []  # namespace mode: shown empty (folders) or as an empty file, read-only
    private_network: bool = False
    parent_pid: int | None = None


class SetupError(Exception):
    """The sandbox could not be set up; the message says which step and path failed."""


# Killing process trees ----------------------------------------------------------


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _signal(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except psutil.Error:
        pass


def kill_descendants(root_pid: int, extra: list[psutil.Process] | None = None) -> int:
    """SIGKILL every descendant of `root_pid` (and `extra`), without letting any escape.

    Processes are stopped first, round after round until no new one shows up, so
    none can fork or get reparented out of reach while the tree is being killed.
    Returns how many processes were signalled.
    """
    frozen: set[psutil.Process] = set()
    for _ in range(100):
        fresh = [p for p in _descendants(root_pid) if p not in frozen]
        if not fresh:
            break
        for proc in fresh:
            _signal(proc, signal.SIGSTOP)
        frozen.update(fresh)
    frozen.update(extra or [])
    for proc in frozen:
        _signal(proc, signal.SIGKILL)
    return len(frozen)


# Namespace setup ----------------------------------------------------------------


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> None:
    """Have the kernel send this process `sig` when the thread that started it exits (even by
    SIGKILL), so that no helper outlives gome. Call it in the child (as a `preexec_fn`)."""
    _libc().prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)


def _libc() -> ctypes.CDLL:
    # The C library already loaded into this process; ctypes.util.find_library would fork a
    # helper, and in namespace mode the first fork must be the solution's PID 1.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    libc.unshare.argtypes = [ctypes.c_int]
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return libc


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def _mount(
    libc: ctypes.CDLL, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    if libc.mount(_bytes(source), _bytes(target), _bytes(fstype), flags, _bytes(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _mount_table() -> dict[str, set[str]]:
    """Mount point -> its per-mount options; for stacked mounts the top one wins."""
    table: dict[str, set[str]] = {}
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            table[_unescape(fields[4])] = set(fields[5].split(","))
    return table


def _remount_readonly(libc: ctypes.CDLL, target: str, options: set[str]) -> None:
    flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY
    for name, bit in _KEPT_OPTIONS.items():
        if name in options:
            flags |= bit
    if not options & {"noatime", "relatime"}:
        flags |= _MS_STRICTATIME
    _mount(libc, None, target, None, flags)


def _is_under(path: str, roots: tuple[str, ...] | list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _setup_mounts(libc: ctypes.CDLL, spec: SandboxSpec) -> None:
    try:
        _mount(libc, None, "/", None, _MS_REC | _MS_PRIVATE)
    except OSError as exc:
        raise SetupError(f"cannot make the mounts private: {exc}") from exc
    # Open the folders first: the tmpfs below hides any of them that live under /tmp.
    binds: list[tuple[str, int, bool]] = []
    for path, rw in [(p, True) for p in spec.writable] + [(p, False) for p in spec.readonly]:
        try:
            fd = os.open(path, os.O_PATH | os.O_DIRECTORY)
        except OSError as exc:
            raise SetupError(f"cannot open {path}: {exc}") from exc
        binds.append((str(path), fd, rw))
    for target in _PRIVATE_TMPFS:
        try:
            _mount(libc, "tmpfs", target, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=1777")
        except OSError as exc:
            raise SetupError(f"cannot mount a private tmpfs on {target}: {exc}") from exc
    # A folder deep under /tmp needs its parents recreated; they live on a small tmpfs of
    # their own that turns read-only below, so nothing can be written next to the folder.
    skeletons = sorted({
        f"{root}/{Path(t).relative_to(root).parts[0]}"
        for t, _, _ in binds for root in _PRIVATE_TMPFS
        if _is_under(t, [root]) and len(Path(t).relative_to(root).parts) > 1
    })
    for skeleton in skeletons:
        try:
            os.makedirs(skeleton, exist_ok=True)
            _mount(libc, "tmpfs", skeleton, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=755,size=1m")
        except OSError as exc:
            raise SetupError(f"cannot recreate {skeleton} in the private /tmp: {exc}") from exc
    # Parents before children, so a nested bind is not hidden by its parent's bind.
    for target, fd, _ in sorted(binds, key=lambda b: b[0].count("/")):
        try:
            os.makedirs(target, exist_ok=True)
            _mount(libc, f"/proc/self/fd/{fd}", target, None, _MS_BIND | _MS_REC)
        except OSError as exc:
            raise SetupError(f"cannot bind {target} into the sandbox: {exc}") from exc
        os.close(fd)
    masks = _mask_hidden(libc, spec.hidden)
    writable = [t for t, _, w in binds if w]
    readonly = [t for t, _, w in binds if not w] + skeletons + masks
    for target, options in _mount_table().items():
        if target in writable:
            continue
        if target in readonly or target == "/":
            try:
                _remount_readonly(libc, target, options)
            except OSError as exc:
                raise SetupError(f"cannot make {target} read-only: {exc}") from exc
        elif not _is_under(target, _LEFT_WRITABLE) and target not in _PRIVATE_TMPFS:
            # Best effort: host mounts hidden under the new /tmp are no longer reachable anyway.
            try:
                _remount_readonly(libc, target, options)
            except OSError:
                pass


def _mask_hidden(libc: ctypes.CDLL, hidden: list[Path]) -> list[str]:
    """Cover each hidden path that the sandbox can see: an empty read-only tmpfs over a folder, an
    empty file over a file (made read-only with the other mounts). Returns the file masks."""
    files = [str(p) for p in hidden if os.path.lexists(p) and not os.path.isdir(p)]
    for path in (str(p) for p in hidden if os.path.isdir(p)):
        try:
            _mount(libc, "tmpfs", path, "tmpfs", _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, "size=4k,mode=555")
        except OSError as exc:
            raise SetupError(f"cannot hide {path} from the solution: {exc}") from exc
    if not files:
        return []
    # The empty file lives on a tmpfs of its own, detached once bound, so nothing can write to it.
    staging = "/tmp/.gome-mask"
    try:
        os.mkdir(staging)
        _mount(libc, "tmpfs", staging, "tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, "size=4k,mode=700")
        empty = os.path.join(staging, "empty")
        os.close(os.open(empty, os.O_CREAT | os.O_WRONLY, 0o444))
        for path in files:
            _mount(libc, empty, path, None, _MS_BIND)
        if libc.umount2(staging.encode(), _MNT_DETACH) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        os.rmdir(staging)
    except OSError as exc:
        raise SetupError(f"cannot hide {', '.join(files)} from the solution: {exc}") from exc
    return files


def _loopback_up() -> None:
    """A fresh network namespace has loopback down; solutions may still talk to localhost."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request)[:18])[1]
        fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | _IFF_UP))


def _lock_mounts(libc: ctypes.CDLL) -> None:
    """Enter a nested user and mount namespace: every mount becomes locked, read-only ones stay so."""
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    for name, content in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w", encoding="ascii") as f:
            f.write(content)


def _enter_pid_namespace(libc: ctypes.CDLL, spec: SandboxSpec) -> None:
    """Runs in PID 1 of the new PID namespace, before the solution is exec'd."""
    try:
        _mount(libc, "proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    except OSError as exc:
        raise SetupError(f"cannot mount /proc for the private PID namespace: {exc}") from exc
    try:
        _lock_mounts(libc)
    except OSError as exc:
        raise SetupError(f"cannot lock the sandbox mounts in a nested user namespace: {exc}") from exc
    os.chdir(spec.workdir)  # again: the workdir is now a bind mount at the same path


def _exec(spec: SandboxSpec, error_fd: int) -> None:
    fcntl.fcntl(error_fd, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
    try:
        os.execvpe(spec.command[0], spec.command, spec.env)
    except OSError as exc:
        raise SetupError(f"cannot start {spec.command[0]!r}: {exc.strerror}") from exc


# The init ------------------------------------------------------------------------


def _exit_like(status: int) -> None:
    """Leave with the same exit code or signal as the solution did."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def _reap_all() -> None:
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _supervise(spec: SandboxSpec, error_fd: int) -> None:
    libc = _libc()
    reaper = spec.mode == "reaper"
    if reaper:
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    else:
        _setup_mounts(libc, spec)
        if spec.private_network:
            try:
                _loopback_up()
            except OSError as exc:
                raise SetupError(f"cannot bring up loopback in the private network: {exc}") from exc
    child = 0

    def forward(signum: int, _frame: object) -> None:
        if child:
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    def abandoned(_signum: int, _frame: object) -> None:
        # The agent is gone: nobody will collect this run, so end it.
        if reaper:
            kill_descendants(os.getpid())
        elif child:
            os.kill(child, signal.SIGKILL)
        _reap_all()
        os._exit(128 + signal.SIGHUP)

    # Handlers go first: a signal between fork and their setup would orphan the solution.
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, abandoned)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGHUP, 0, 0, 0)
    if spec.parent_pid is not None and os.getppid() != spec.parent_pid:
        raise SetupError("the agent process exited before the solution could start")
    child = os.fork()
    if child == 0:
        try:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            if not reaper:
                # If the init is killed outright, PID 1 and with it the whole namespace go too.
                libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                _enter_pid_namespace(libc, spec)
            _exec(spec, error_fd)
        except SetupError as exc:
            os.write(error_fd, str(exc).encode()[:4000])
        except BaseException as exc:  # the forked child must never return into the init's code
            os.write(error_fd, f"{type(exc).__name__}: {exc}".encode()[:4000])
        os._exit(SETUP_FAILED)
    os.close(error_fd)
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == child:
            break
    if reaper:
        kill_descendants(os.getpid())
    _reap_all()
    _exit_like(status)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gome_agent.execution.sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--error-fd", type=int, required=True, help="pipe for start-up status (see module doc)")
    args = parser.parse_args(argv)
    error_fd = args.error_fd
    os.write(error_fd, STARTED)
    try:
        spec = SandboxSpec.model_validate_json(sys.stdin.buffer.read())
        # The solution reads nothing from stdin; the spec came that way only.
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.chdir(spec.workdir)
        _supervise(spec, error_fd)
    except Exception as exc:  # every failure must reach the executor as a message, not a traceback
        reason = str(exc) if isinstance(exc, SetupError) else f"{type(exc).__name__}: {exc}"
        os.write(error_fd, reason.encode()[:4000])
        os._exit(SETUP_FAILED)


if __name__ == "__main__":
    main()
