"""The sandbox init: start-up protocol, exit status, tree killing, mount locking, dying with the agent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from textwrap import dedent

import psutil
import pytest

from gome_agent.execution.executor import (
    Executor,
    RunSpec,
    _init_command,
    _init_env,
    _wrapper_prefix,
    namespaces_available,
)
from gome_agent.execution.sandbox import SETUP_FAILED, STARTED, SandboxSpec, _is_under, _unescape, kill_descendants

REPO = Path(__file__).resolve().parents[2]
needs_namespaces = pytest.mark.skipif(not namespaces_available(), reason="no user namespaces here")
MODES = [pytest.param("namespace", marks=needs_namespaces), "none"]


def run_init(spec: SandboxSpec | str, *, namespace: bool = False, timeout: float = 30) -> tuple[int, bytes, bytes]:
    """Run the init directly: (return code, what it wrote on the error pipe, its stdout)."""
    read_fd, write_fd = os.pipe()
    text = spec if isinstance(spec, str) else spec.model_dump_json()
    prefix = _wrapper_prefix(network=True) if namespace else []
    try:
        proc = subprocess.run(
            [*prefix, *_init_command(), "--error-fd", str(write_fd)], input=text.encode(),
            capture_output=True, env=_init_env(), pass_fds=(write_fd,), timeout=timeout, check=False,
        )
        os.close(write_fd)
        status = os.read(read_fd, 65536)
    finally:
        os.close(read_fd)
    return proc.returncode, status, proc.stdout


def spec_for(tmp_path: Path, command: list[str], mode: str = "reaper") -> SandboxSpec:
    return SandboxSpec(mode=mode, command=command, env={"PATH": os.defpath}, workdir=tmp_path,  # type: ignore[arg-type]
                       writable=[tmp_path])


def py(code: str) -> list[str]:
    return [sys.executable, "-c", dedent(code)]


# Start-up protocol and exit status ---------------------------------------------------


@pytest.mark.parametrize("mode", ["reaper", pytest.param("namespace", marks=needs_namespaces)])
def test_exit_code_and_output_pass_through(tmp_path: Path, mode: str) -> None:
    spec = spec_for(tmp_path, ["sh", "-c", "echo hello $$; exit 4"], mode)
    code, status, stdout = run_init(spec, namespace=mode == "namespace")
    assert (code, status) == (4, STARTED)
    assert stdout.startswith(b"hello ")
    if mode == "namespace":
        assert stdout == b"hello 1\n"  # the solution is PID 1 of its own namespace


def test_death_by_signal_passes_through(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, py("import os, signal; os.kill(os.getpid(), signal.SIGTERM)"))
    code, status, _ = run_init(spec)
    assert (code, status) == (-signal.SIGTERM, STARTED)


def test_start_failure_is_reported(tmp_path: Path) -> None:
    code, status, _ = run_init(spec_for(tmp_path, ["no-such-command-xyz"]))
    assert code == SETUP_FAILED
    assert status == STARTED + b"cannot start 'no-such-command-xyz': No such file or directory"


def test_bad_spec_is_reported(tmp_path: Path) -> None:
    code, status, _ = run_init("{not json")
    assert code == SETUP_FAILED
    assert status.startswith(STARTED + b"ValidationError: ")


@needs_namespaces
def test_missing_bind_source_is_reported(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, ["true"], "namespace")
    spec.readonly = [tmp_path / "missing"]
    code, status, _ = run_init(spec, namespace=True)
    assert code == SETUP_FAILED
    assert status.startswith(STARTED + f"cannot open {tmp_path / 'missing'}: ".encode())


def test_reaper_kills_what_the_solution_left_behind(tmp_path: Path) -> None:
    token = f"gome-orphan-{uuid.uuid4().hex}"
    spec = spec_for(tmp_path, py(f"""
        import subprocess, sys
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "{token}"], start_new_session=True)
    """))
    code, status, _ = run_init(spec)
    assert (code, status) == (0, STARTED)
    assert [p for p in psutil.process_iter(["cmdline"]) if token in (p.info["cmdline"] or [])] == []


# Helpers --------------------------------------------------------------------------------


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_kill_descendants_kills_the_whole_tree() -> None:
    script = dedent("""
        import os, subprocess, sys, time
        for _ in range(3):
            subprocess.Popen([sys.executable, "-c", "import os, time; os.fork(); os.fork(); time.sleep(60)"],
                             start_new_session=True)
        print("ready", flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None and parent.stdout.readline() == b"ready\n"
        root = psutil.Process(parent.pid)
        deadline = time.monotonic() + 10
        while len(root.children(recursive=True)) < 12 and time.monotonic() < deadline:
            time.sleep(0.02)
        tree = root.children(recursive=True)
        assert len(tree) == 12
        assert kill_descendants(parent.pid) == 12
        time.sleep(0.2)
        # Killed children of the sleeping parent stay zombies until it reaps them; that is dead enough.
        assert [p for p in tree if _alive(p)] == []
        assert parent.poll() is None  # the root itself is left alone
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


def test_mountinfo_unescaping_and_paths() -> None:
    assert _unescape(r"/data/my\040folder\011x") == "/data/my folder\tx"
    assert _is_under("/tmp/a/b", ["/tmp"]) and _is_under("/tmp", ["/tmp"])
    assert not _is_under("/tmpfoo", ["/tmp"])
    assert _is_under("/dev/shm", ("/proc", "/dev"))


# Through the executor -------------------------------------------------------------------


@needs_namespaces
def test_solution_cannot_undo_the_mounts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    workdir = tmp_path / "step"
    workdir.mkdir()
    (workdir / "main.py").write_text(dedent(f"""
        import ctypes, json, os
        libc = ctypes.CDLL(None, use_errno=True)
        MS_REMOUNT, MS_BIND = 0x20, 0x1000
        outcome = {{}}
        for target in ("/", "{data}"):
            rc = libc.mount(None, target.encode(), None, MS_REMOUNT | MS_BIND, None)
            outcome["remount " + target] = os.strerror(ctypes.get_errno()) if rc else "ok"
        for target in ("/proc", "/tmp", "{data}"):
            rc = libc.umount2(target.encode(), 2)  # MNT_DETACH
            outcome["umount " + target] = os.strerror(ctypes.get_errno()) if rc else "ok"
        try:
            open("{data}/x", "w")
            outcome["write data"] = "ok"
        except OSError as exc:
            outcome["write data"] = exc.strerror
        print(json.dumps(outcome))
    """))
    executor = Executor(data_dir=data, cache_dir=tmp_path / "cache", sandbox="namespace")
    result = executor.run(RunSpec(workdir=workdir, timeout_s=30))
    assert result.status == "ok", result.stderr_tail
    outcome = json.loads(result.stdout_path.read_text())
    assert all(value != "ok" for value in outcome.values()), outcome
    assert outcome["write data"] == "Read-only file system"


@pytest.mark.parametrize("mode", MODES)
def test_solution_gets_a_grace_period_on_timeout(tmp_path: Path, mode: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    workdir = tmp_path / "step"
    workdir.mkdir()
    (workdir / "main.py").write_text(dedent("""
        import signal, sys, time
        def save(signum, frame):
            print("saving checkpoint", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, save)
        time.sleep(60)
    """))
    executor = Executor(data_dir=data, cache_dir=tmp_path / "cache", sandbox=mode)  # type: ignore[arg-type]
    result = executor.run(RunSpec(workdir=workdir, timeout_s=1))
    assert result.status == "timeout"
    assert result.stdout_path.read_text() == "saving checkpoint\n"
    assert result.duration_s < 4


@pytest.mark.parametrize("mode", MODES)
def test_solution_dies_with_the_agent(tmp_path: Path, mode: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    workdir = tmp_path / "step"
    workdir.mkdir()
    token = f"gome-agent-death-{uuid.uuid4().hex}"
    (workdir / "main.py").write_text(dedent(f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "{token}"])
        open("started", "w").close()
        time.sleep(60)
    """))
    agent = subprocess.Popen(
        [sys.executable, "-c", dedent(f"""
            from pathlib import Path
            from gome_agent.execution.executor import Executor, RunSpec
            executor = Executor(data_dir=Path("{data}"), cache_dir=Path("{tmp_path / 'cache'}"), sandbox="{mode}")
            executor.run(RunSpec(workdir=Path("{workdir}"), timeout_s=60))
        """)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.monotonic() + 20
        while not (workdir / "started").exists():
            assert time.monotonic() < deadline and agent.poll() is None
            time.sleep(0.02)
        tree = psutil.Process(agent.pid).children(recursive=True)
        assert any(token in " ".join(p.cmdline()) for p in tree)
    finally:
        agent.kill()
        agent.wait()
    gone, alive = psutil.wait_procs(tree, timeout=10)
    assert alive == []
