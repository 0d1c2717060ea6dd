"""Running one generated solution safely: limits, captured logs, and nothing left behind.

A solution is untrusted code written by an LLM. `Executor.run` starts it through
`gome_agent.execution.sandbox` (inside user/mount/PID namespaces when the host allows
them, else as a plain process under a reaper), enforces a wall-clock limit, a
memory limit on the whole process tree and a process-count limit, caps what it
may write to stdout/stderr, and makes sure that when `run` returns no process
of the run is still alive and nothing the solution left in its step folder can
lead the agent, which reads that folder unsandboxed, anywhere else (links out of
the folder, FIFOs and sockets are removed).
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Literal

import psutil
from pydantic import BaseModel, ConfigDict, Field

import gome_agent
from gome_agent.errors import ExecutorError
from gome_agent.execution.sandbox import STARTED, SandboxSpec, kill_descendants
from gome_agent.secrets import scrubbed_env

log = logging.getLogger(__name__)

SandboxMode = Literal["namespace", "none"]

POLL_S = 0.5  # how often the process tree's memory and size are measured
TERM_GRACE_S = 5.0  # between SIGTERM and SIGKILL on a timeout or cancel
TAIL_BYTES = 64 * 1024  # kept from the end of each stream, appended to the log when output was dropped
TAIL_CHARS = 3000  # of each stream, for prompts
_READ_CHUNK = 64 * 1024
_DRAIN_S = 2.0  # how long output is still read once every process of the run is gone
_PROBE_TIMEOUT_S = 30.0
_UNSHARE = ["--user", "--map-root-user", "--mount", "--pid"]


class RunSpec(BaseModel):
    """One run of a solution."""

    model_config = ConfigDict(extra="forbid")

    workdir: Path
    command: list[str] | None = None
    timeout_s: float = Field(gt=0)
    memory_limit_bytes: int | None = Field(default=None, gt=0)
    env: dict[str, str] = {}
    # What the solution sees as ./input (a smoke run's sampled view); default: the executor's data folder.
    input_dir: Path | None = None


class RunResult(BaseModel):
    """What happened to a run; `message` is one sentence for logs and prompts."""

    status: Literal["ok", "failed", "timeout", "memory_exceeded", "killed"]
    exit_code: int | None
    duration_s: float
    peak_rss_bytes: int
    stdout_path: Path
    stderr_path: Path
    stdout_bytes: int
    stderr_bytes: int
    stdout_tail: str
    stderr_tail: str
    sandbox: SandboxMode
    message: str


def _size(n: float) -> str:
    if n >= 2**30:
        return f"{n / 2**30:.1f} GiB"
    if n >= 2**20:
        return f"{n / 2**20:.0f} MiB"
    if n >= 2**10:
        return f"{n / 2**10:.0f} KiB"
    return f"{n:.0f} bytes"


# Namespace availability -----------------------------------------------------------

_probe_lock = threading.Lock()
_probe_result: list[str | None] = []  # empty until probed; then [None] (available) or [reason]


def _wrapper_prefix(network: bool) -> list[str]:
    """The command line that starts the init in fresh namespaces (its first child opens the PID namespace)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise ExecutorError("the unshare command (util-linux) is not installed")
    return [unshare, *_UNSHARE] + ([] if network else ["--net"]) + ["--"]


def _init_command() -> list[str]:
    return [sys.executable, "-s", "-m", "gome_agent.execution.sandbox"]


def _init_env() -> dict[str, str]:
    """The init's own environment (the solution gets the one in the spec).

    It runs this interpreter and must import what the agent imports, however the
    agent found its packages (installed, PYTHONPATH, a source checkout).
    """
    package_root = str(Path(gome_agent.__file__).resolve().parent.parent)
    path = [package_root, *(p for p in sys.path if p and p != package_root)]
    return {"PATH": os.environ.get("PATH", os.defpath), "PYTHONPATH": os.pathsep.join(path)}


def _probe_namespaces() -> str | None:
    """None when a trivial command runs through the full namespace sandbox, else the reason it does not."""
    try:
        prefix = _wrapper_prefix(network=False)
    except ExecutorError as exc:
        return str(exc)
    true = shutil.which("true")
    if true is None:
        return "the true command is not installed, so namespaces cannot be probed"
    with tempfile.TemporaryDirectory(prefix="gome-probe-") as tmp:
        workdir = Path(tmp).resolve()
        spec = SandboxSpec(mode="namespace", command=[true], env={"PATH": os.defpath}, workdir=workdir,
                           writable=[workdir], private_network=True)
        read_fd, write_fd = os.pipe()
        try:
            with tempfile.TemporaryFile() as spec_file:
                spec_file.write(spec.model_dump_json().encode())
                spec_file.seek(0)
                proc = subprocess.run(
                    [*prefix, *_init_command(), "--error-fd", str(write_fd)], stdin=spec_file,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_init_env(), cwd=workdir,
                    pass_fds=(write_fd,), timeout=_PROBE_TIMEOUT_S, check=False,
                )
            os.close(write_fd)
            write_fd = -1
            status = _read_all(read_fd)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"the namespace probe failed: {exc}"
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
    if proc.returncode == 0 and status == STARTED:
        return None
    detail = status[len(STARTED):].decode(errors="replace") if status.startswith(STARTED) else ""
    detail = detail or proc.stderr.decode(errors="replace").strip() or f"exit code {proc.returncode}"
    return f"user namespaces are not usable here ({detail})"


def _namespace_problem() -> str | None:
    with _probe_lock:
        if not _probe_result:
            _probe_result.append(_probe_namespaces())
        return _probe_result[0]


def namespaces_available() -> bool:
    """Whether solutions can run inside user/mount/PID namespaces on this host (probed once per process)."""
    return _namespace_problem() is None


def _read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


# Output capture -------------------------------------------------------------------


class _Capture(threading.Thread):
    """Copies one pipe to a file, at most `limit` bytes, keeping a count and a rolling tail."""

    def __init__(self, fd: int, out: BinaryIO, limit: int) -> None:
        super().__init__(daemon=True, name="capture")
        self.fd, self.out, self.limit = fd, out, limit
        self.total = 0
        self.tail = bytearray()
        # Set when the run is over: a writer that somehow survived must not keep this thread alive.
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            self._copy()
        finally:
            os.close(self.fd)
            self.out.close()

    def _copy(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        drain_until: float | None = None
        while True:
            if self.stop.is_set():
                drain_until = drain_until or time.monotonic() + _DRAIN_S
                if time.monotonic() > drain_until:
                    break
            if not poller.poll(200):
                if self.stop.is_set():
                    break
                continue
            chunk = os.read(self.fd, _READ_CHUNK)
            if not chunk:
                break
            room = self.limit - self.total
            if room > 0:
                try:
                    self.out.write(chunk[:room])
                except OSError:  # disk full: keep draining the pipe, keep only the tail
                    self.limit = self.total
            self.total += len(chunk)
            self.tail += chunk
            if len(self.tail) > 2 * TAIL_BYTES:
                del self.tail[:-TAIL_BYTES]
        dropped = self.total - min(self.total, self.limit)
        if dropped:
            kept = bytes(self.tail[-min(dropped, TAIL_BYTES):])
            note = f"\n[gome: {dropped:,} bytes of output dropped; the last {_size(len(kept))} follow]\n"
            try:
                self.out.write(note.encode() + kept)
            except OSError:
                pass

    def text_tail(self) -> str:
        return bytes(self.tail[-4 * TAIL_CHARS:]).decode("utf-8", errors="replace")[-TAIL_CHARS:]


# One run ----------------------------------------------------------------------------


class _Run:
    """A started process tree and what is known about it; shared with `cancel_all`."""

    def __init__(self, proc: subprocess.Popen[bytes], namespace: bool) -> None:
        self.proc = proc
        self.namespace = namespace
        self.reason: Literal["timeout", "memory_exceeded", "killed"] | None = None
        self.message = ""
        self.lock = threading.Lock()
        self.seen: set[psutil.Process] = set()  # every process of the run seen alive, to kill escapees
        self.pids: list[int] = []  # the tree's processes at the last sample
        self.peak_rss = 0
        self.exit_status: int | None = None
        self.maxrss_children = 0

    def stop(self, reason: Literal["timeout", "memory_exceeded", "killed"], message: str) -> None:
        """Record why the run is being stopped; the first reason stands."""
        with self.lock:
            if self.reason is None:
                self.reason, self.message = reason, message

    def sample(self) -> tuple[int, int]:
        """(total RSS, process count) of the solution's tree, not counting the wrapper."""
        procs = _tree(self.proc.pid)
        self.pids = [proc.pid for proc in procs]
        self.seen.update(procs)
        if len(self.seen) > 8192:
            self.seen = {p for p in self.seen if p.is_running()}
        rss = 0
        for proc in procs:
            try:
                rss += proc.memory_info().rss
            except psutil.Error:
                pass
        self.peak_rss = max(self.peak_rss, rss)
        return rss, len(procs)

    def kill(self) -> None:
        """SIGKILL everything of the run, the wrapper last."""
        with self.lock:
            if self.exit_status is not None:
                # The wrapper is reaped and its pid may belong to someone else now: only
                # processes seen earlier (known by pid and start time) can still be ours.
                for proc in self.seen:
                    _send(proc, signal.SIGKILL)
                return
            if self.namespace:
                # SIGKILL to PID 1 of the namespace takes every process in it down at once.
                for child in _children(self.proc.pid):
                    _send(child, signal.SIGKILL)
            kill_descendants(self.proc.pid, extra=list(self.seen))
            # Not Popen.send_signal: it would reap the wrapper behind `wait`'s back.
            os.kill(self.proc.pid, signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM the tree; SIGKILL at once a PID 1 that would ignore it, rather than wait out the grace."""
        for proc in _tree(self.proc.pid):
            _send(proc, signal.SIGTERM)
        if self.namespace:
            for pid1 in _children(self.proc.pid):
                if not _catches(pid1.pid, signal.SIGTERM):
                    self.kill()

    def wait(self, timeout: float) -> bool:
        """Reap the wrapper if it exits within `timeout`; records its status and the children's max RSS."""
        deadline = time.monotonic() + timeout
        while self.exit_status is None:
            with self.lock:  # so that `kill` never signals a reaped (and maybe reused) pid
                pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
                if pid:
                    self.exit_status = status
                    self.maxrss_children = usage.ru_maxrss * 1024
                    self.proc.returncode = os.waitstatus_to_exitcode(status)
                    return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(0.05, left))
        return True


def _disarm(workdir: Path, data_dir: Path) -> None:
    """Remove what the solution left in its folder that would make the agent read elsewhere or block:
    links that lead out of the folder (but the `input` link to the data) and FIFOs, sockets, devices.

    A link `submission.csv -> .../private/answers.csv` or `main.py -> /proc/self/environ` would
    otherwise be followed by the agent, which is not fenced in.
    """
    removed = []
    for folder, dirs, files in os.walk(workdir):
        for name in dirs + files:
            path = os.path.join(folder, name)
            try:
                mode = os.lstat(path).st_mode
                if stat.S_ISLNK(mode):
                    target = Path(os.path.realpath(path))
                    keep = target.is_relative_to(workdir) or (path == str(workdir / "input") and target == data_dir)
                elif stat.S_ISDIR(mode) or stat.S_ISREG(mode):
                    continue
                else:
                    keep = False
                if not keep:
                    os.unlink(path)
                    removed.append(os.path.relpath(path, workdir))
            except OSError:
                continue
    if removed:
        log.warning("removed %d link(s) or special file(s) left by the solution in %s: %s",
                    len(removed), workdir, ", ".join(removed[:10]))


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children()
    except psutil.Error:
        return []


def _tree(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _catches(pid: int, sig: int) -> bool:
    """Whether the process has a handler for `sig` (PID 1 of a namespace ignores signals it does not catch)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    except OSError:
        pass
    return False


def _send(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except psutil.Error:
        pass


class Executor:
    """Runs solutions of one agent run; `run` may be called from several threads at once."""

    def __init__(
        self,
        *,
        data_dir: Path,
        cache_dir: Path,
        python: str = sys.executable,
        sandbox: Literal["auto", "namespace", "none"] = "auto",
        network: bool = True,
        max_log_bytes: int = 20_000_000,
        max_processes: int = 512,
        hidden: list[Path] | None = None,
        readable: list[Path] | None = None,
    ) -> None:
        if not data_dir.is_dir():
            raise ExecutorError(f"data folder {data_dir} does not exist or is not a folder")
        resolved = shutil.which(python)
        if resolved is None:
            raise ExecutorError(f"python interpreter {python!r} (execution.python) does not exist or is not executable")
        if max_log_bytes < 0 or max_processes < 1:
            raise ExecutorError(
                f"max_log_bytes must be >= 0 and max_processes >= 1 (got {max_log_bytes}, {max_processes})"
            )
        self.data_dir = data_dir.resolve()
        # Folders the data folder links into (the competition folder behind gome's view of it, or behind
        # an obfuscated run's), which the namespace sandbox's private /tmp could otherwise hide.
        linked = {Path(os.path.realpath(p)).parent for p in self.data_dir.iterdir() if p.is_symlink()}
        self.readable = list(dict.fromkeys([*(p.resolve() for p in readable or []), *sorted(linked - {Path("/")})]))
        self.cache_dir = cache_dir.resolve()
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExecutorError(f"cannot create the cache folder {self.cache_dir}: {exc}") from exc
        # Not resolved through symlinks: a venv's python finds its packages through the link's path.
        self.python = os.path.abspath(resolved)
        self.network = network
        # Paths solutions must not read (private answers, a leaderboard); only namespaces can hide them.
        self.hidden = [Path(os.path.abspath(p)) for p in hidden or []]
        for path in self.hidden:
            for needed in (self.data_dir, self.cache_dir):
                if needed.is_relative_to(path):
                    raise ExecutorError(f"the hidden path {path} contains {needed}, which solutions need")
        self.max_log_bytes = max_log_bytes
        self.max_processes = max_processes
        if sandbox == "none":
            self._mode: SandboxMode = "none"
        elif sandbox == "namespace":
            problem = _namespace_problem()
            if problem is not None:
                raise ExecutorError(f"sandbox 'namespace' was requested but {problem}; use sandbox 'auto' or 'none'")
            self._mode = "namespace"
        elif sandbox == "auto":
            self._mode = "namespace" if namespaces_available() else "none"
        else:
            raise ExecutorError(f"unknown sandbox mode {sandbox!r}; expected 'auto', 'namespace' or 'none'")
        if self._mode == "none" and not network:
            log.warning("network=False has no effect without the namespace sandbox: solutions keep network access")
        if self._mode == "none" and self.hidden:
            log.warning("without the namespace sandbox, solutions can read the hidden paths %s",
                        ", ".join(map(str, self.hidden)))
        self._active: set[_Run] = set()
        self._active_lock = threading.Lock()

    @property
    def sandbox_mode(self) -> SandboxMode:
        return self._mode

    def cancel_all(self) -> None:
        """Kill every run in progress now; their results say status "killed"."""
        with self._active_lock:
            runs = list(self._active)
        for run in runs:
            run.stop("killed", "killed: the run was cancelled")
            run.kill()

    # Setup ----------------------------------------------------------------------

    def _environment(self, spec: RunSpec, workdir: Path) -> dict[str, str]:
        env = scrubbed_env()
        homes = {
            "HOME": self.cache_dir / "home",
            "XDG_CACHE_HOME": self.cache_dir / "xdg",
            "TORCH_HOME": self.cache_dir / "torch",
            "HF_HOME": self.cache_dir / "huggingface",
        }
        for path in homes.values():
            path.mkdir(parents=True, exist_ok=True)
        env.update({name: str(path) for name, path in homes.items()})
        if self._mode == "namespace":
            tmp = "/tmp"
        else:
            (workdir / ".tmp").mkdir(exist_ok=True)
            tmp = str(workdir / ".tmp")
        env.update({
            "PYTHONUNBUFFERED": "1",
            "MPLBACKEND": "Agg",
            "TMPDIR": tmp,
            "GOME_DATA_DIR": str(workdir / "input"),
        })
        env.update(spec.env)
        return env

    def _prepare(self, spec: RunSpec) -> tuple[Path, list[str]]:
        workdir = spec.workdir.resolve()
        if not workdir.is_dir():
            raise ExecutorError(f"step folder {workdir} does not exist")
        command = spec.command if spec.command is not None else [self.python, "main.py"]
        if not command:
            raise ExecutorError("RunSpec.command is empty")
        if spec.command is None and not (workdir / "main.py").is_file():
            raise ExecutorError(f"no main.py in {workdir}")
        link = workdir / "input"
        if not link.exists() and not link.is_symlink():
            try:
                link.symlink_to(self._input_dir(spec), target_is_directory=True)
            except FileExistsError:
                pass
        return workdir, command

    def _input_dir(self, spec: RunSpec) -> Path:
        return self.data_dir if spec.input_dir is None else spec.input_dir.resolve()

    def _hidden_interpreter(self) -> list[Path]:
        """The environment folder of an interpreter under /tmp, which the private /tmp would hide."""
        if self._mode != "namespace":
            return []
        root = Path(self.python).parent.parent
        return [root] if root.resolve().is_relative_to("/tmp") else []

    def _start(self, workdir: Path, command: list[str], env: dict[str, str], error_fd: int,
               input_dir: Path) -> subprocess.Popen[bytes]:
        namespace = self._mode == "namespace"
        spec = SandboxSpec(
            mode="namespace" if namespace else "reaper",
            command=command,
            env=env,
            workdir=workdir,
            writable=[workdir, self.cache_dir],
            readonly=list(dict.fromkeys([self.data_dir, input_dir, *self.readable, *self._hidden_interpreter()])),
            hidden=self.hidden if namespace else [],
            private_network=namespace and not self.network,
            parent_pid=os.getpid(),
        )
        prefix = _wrapper_prefix(self.network) if namespace else []
        with tempfile.TemporaryFile() as spec_file:
            spec_file.write(spec.model_dump_json().encode())
            spec_file.seek(0)
            try:
                return subprocess.Popen(
                    [*prefix, *_init_command(), "--error-fd", str(error_fd)],
                    stdin=spec_file, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    cwd=workdir, env=_init_env(), pass_fds=(error_fd,), start_new_session=True,
                )
            except OSError as exc:
                raise ExecutorError(f"cannot start the solution in {workdir}: {exc}") from exc

    # Run ------------------------------------------------------------------------

    def run(self, spec: RunSpec, *, on_poll: Callable[[list[int]], None] | None = None) -> RunResult:
        """Run one solution to its end or its limits; blocks; never leaves a process behind.

        `on_poll`, if given, is called at every poll with the pids of the run's live processes (to
        measure their GPU memory, say); what it raises is logged and ignored.
        """
        workdir, command = self._prepare(spec)
        env = self._environment(spec, workdir)
        stdout_path, stderr_path = workdir / "stdout.txt", workdir / "stderr.txt"
        try:
            logs = [open(stdout_path, "wb", buffering=0), open(stderr_path, "wb", buffering=0)]
        except OSError as exc:
            raise ExecutorError(f"cannot create the log files in {workdir}: {exc}") from exc
        read_fd, write_fd = os.pipe()
        started = time.monotonic()
        try:
            proc = self._start(workdir, command, env, write_fd, self._input_dir(spec))
        except BaseException:
            os.close(read_fd)
            for log in logs:
                log.close()
            raise
        finally:
            os.close(write_fd)
        assert proc.stdout is not None and proc.stderr is not None
        # The capture threads own the pipe fds and the log files from here on.
        captures = [
            _Capture(os.dup(proc.stdout.fileno()), logs[0], self.max_log_bytes),
            _Capture(os.dup(proc.stderr.fileno()), logs[1], self.max_log_bytes),
        ]
        proc.stdout.close()
        proc.stderr.close()
        for capture in captures:
            capture.start()
        run = _Run(proc, namespace=self._mode == "namespace")
        with self._active_lock:
            self._active.add(run)
        try:
            self._supervise(run, spec, started, on_poll)
            run.kill()  # leftovers that escaped the init's own cleanup
            duration = time.monotonic() - started
        finally:
            if run.exit_status is None:
                run.kill()
                run.wait(TERM_GRACE_S)
            with self._active_lock:
                self._active.discard(run)
            for capture in captures:
                capture.stop.set()
            for capture in captures:
                capture.join()
            init_status = _read_all(read_fd)
            os.close(read_fd)
            if self._mode == "none":
                shutil.rmtree(workdir / ".tmp", ignore_errors=True)
            _disarm(workdir, self._input_dir(spec))
        if run.reason is None and init_status != STARTED:
            detail = init_status[len(STARTED):].decode(errors="replace") if init_status.startswith(STARTED) else ""
            detail = detail or captures[1].text_tail().strip()[-500:] or f"exit code {proc.returncode}"
            raise ExecutorError(f"the sandbox could not start the solution in {workdir}: {detail}")
        status, exit_code, message = self._outcome(run)
        return RunResult(
            status=status, exit_code=exit_code, duration_s=round(duration, 3),
            peak_rss_bytes=max(run.peak_rss, run.maxrss_children),
            stdout_path=stdout_path, stderr_path=stderr_path,
            stdout_bytes=captures[0].total, stderr_bytes=captures[1].total,
            stdout_tail=captures[0].text_tail(), stderr_tail=captures[1].text_tail(),
            sandbox=self._mode, message=message,
        )

    def _supervise(self, run: _Run, spec: RunSpec, started: float,
                   on_poll: Callable[[list[int]], None] | None) -> None:
        """Wait for the run to end, enforcing the limits; returns once the wrapper has exited."""
        deadline = started + spec.timeout_s
        while not run.wait(max(0.0, min(POLL_S, deadline - time.monotonic()))):
            if run.reason is not None:  # cancelled from another thread
                run.kill()
                continue
            rss, count = run.sample()
            if on_poll is not None:
                try:
                    on_poll(run.pids)
                except Exception:
                    log.exception("the on_poll callback of the run in %s failed", spec.workdir)
            if count > self.max_processes:
                run.stop("killed", f"killed: {count} processes over the {self.max_processes}-process limit "
                                   "(a fork bomb or runaway worker spawning)")
                run.kill()
            elif spec.memory_limit_bytes is not None and rss > spec.memory_limit_bytes:
                run.stop("memory_exceeded",
                         f"killed: memory {_size(rss)} over the {_size(spec.memory_limit_bytes)} limit")
                run.kill()
            elif time.monotonic() >= deadline:
                run.stop("timeout", f"killed after the {spec.timeout_s:g} s time limit")
                run.terminate()
                if not run.wait(TERM_GRACE_S):
                    run.kill()

    @staticmethod
    def _outcome(run: _Run) -> tuple[Literal["ok", "failed", "timeout", "memory_exceeded", "killed"], int | None, str]:
        code = run.proc.returncode
        exit_code = code if code is not None and code >= 0 else None
        if run.reason is not None:
            return run.reason, exit_code, run.message
        if code is not None and code >= 0:
            return ("ok" if code == 0 else "failed"), code, f"exited with code {code}"
        sig = -(code or 0)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = " (possibly the system's out-of-memory killer)" if sig == signal.SIGKILL else ""
        return "killed", None, f"killed by {name}{hint}"
