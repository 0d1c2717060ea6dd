"""Running untrusted solutions: outcomes, limits, captured output, isolation, and no leftovers."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from textwrap import dedent

import psutil
import pytest

from gome_agent.errors import ExecutorError
from gome_agent.execution import executor as executor_module
from gome_agent.execution.executor import TAIL_CHARS, Executor, RunResult, RunSpec, namespaces_available

MODES = [
    pytest.param("namespace", marks=pytest.mark.skipif(not namespaces_available(), reason="no user namespaces here")),
    "none",
]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    (path / "train.csv").write_text("a,b\n1,2\n")
    return path


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def executor(tmp_path: Path, data_dir: Path, mode: str) -> Executor:
    return Executor(data_dir=data_dir, cache_dir=tmp_path / "cache", sandbox=mode)  # type: ignore[arg-type]


def step(tmp_path: Path, code: str, name: str = "step") -> Path:
    workdir = tmp_path / name
    workdir.mkdir()
    (workdir / "main.py").write_text(dedent(code))
    return workdir


def leftovers(workdir: Path, token: str = "\0") -> list[psutil.Process]:
    """Processes still running in `workdir` or carrying `token` on their command line."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.cwd() == str(workdir) or token in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def wait_for(path: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


# Outcomes ---------------------------------------------------------------------------


def test_ok_run_captures_output(executor: Executor, tmp_path: Path, data_dir: Path, mode: str) -> None:
    workdir = step(tmp_path, """
        import sys
        print(open("input/train.csv").read().strip())
        print("x" * 5000)
        print("warning: almost done", file=sys.stderr)
    """)
    result = executor.run(RunSpec(workdir=workdir, timeout_s=30))
    assert result.status == "ok" and result.exit_code == 0
    assert result.message == "exited with code 0"
    assert result.sandbox == mode == executor.sandbox_mode
    assert (workdir / "input").resolve() == data_dir
    assert result.stdout_path == workdir / "stdout.txt"
    assert result.stdout_path.read_text() == "a,b\n1,2\n" + "x" * 5000 + "\n"
    assert result.stderr_path.read_text() == "warning: almost done\n"
    assert result.stdout_bytes == len("a,b\n1,2\n") + 5001 and result.stderr_bytes == 21
    assert result.stdout_tail == ("x" * 5000 + "\n")[-TAIL_CHARS:]
    assert result.stderr_tail == "warning: almost done\n"
    assert 0 < result.duration_s < 30
    assert result.peak_rss_bytes > 1_000_000


def test_nonzero_exit(executor: Executor, tmp_path: Path) -> None:
    workdir = step(tmp_path, "raise SystemExit(3)")
    result = executor.run(RunSpec(workdir=workdir, timeout_s=30))
    assert (result.status, result.exit_code, result.message) == ("failed", 3, "exited with code 3")


def test_exception_traceback_in_stderr_tail(executor: Executor, tmp_path: Path) -> None:
    workdir = step(tmp_path, "import pandas_does_not_exist_xyz")
    result = executor.run(RunSpec(workdir=workdir, timeout_s=30))
    assert result.status == "failed" and result.exit_code == 1
    assert "ModuleNotFoundError: No module named 'pandas_does_not_exist_xyz'" in result.stderr_tail


def test_custom_command_and_extra_env(executor: Executor, tmp_path: Path) -> None:
    workdir = tmp_path / "step"
    workdir.mkdir()
    command = [sys.executable, "-c", "import os; print(os.environ['OMP_NUM_THREADS'])"]
    result = executor.run(RunSpec(workdir=workdir, command=command, timeout_s=30, env={"OMP_NUM_THREADS": "3"}))
    assert result.status == "ok"
    assert result.stdout_path.read_text() == "3\n"


def test_killed_by_an_outside_signal(executor: Executor, tmp_path: Path) -> None:
    workdir = step(tmp_path, """
        import time
        open("started", "w").close()
        time.sleep(60)
    """)

    def kill_solution() -> None:
        wait_for(workdir / "started")
        for proc in psutil.Process().children(recursive=True):
            try:
                if proc.cwd() == str(workdir) and proc.cmdline()[-1:] == ["main.py"]:
                    proc.kill()
            except psutil.Error:
                continue

    killer = threading.Thread(target=kill_solution)
    killer.start()
    result = executor.run(RunSpec(workdir=workdir, timeout_s=60))
    killer.join()
    assert result.status == "killed" and result.exit_code is None
    assert result.message == "killed by SIGKILL (possibly the system's out-of-memory killer)"
    assert result.duration_s < 30


# Limits -----------------------------------------------------------------------------


def test_timeout(executor: Executor, tmp_path: Path) -> None:
    workdir = step(tmp_path, "while True:\n    pass\n")
    started = time.monotonic()
    result = executor.run(RunSpec(workdir=workdir, timeout_s=1))
    elapsed = time.monotonic() - started
    assert result.status == "timeout" and result.exit_code is None
    assert result.message == "killed after the 1 s time limit"
    assert 1 <= elapsed < 1 + executor_module.TERM_GRACE_S + 3
    assert leftovers(workdir) == []


def test_memory_bomb(executor: Executor, tmp_path: Path) -> None:
    # Stops growing at 2 GB so that a broken limit fails the test instead of the machine.
    workdir = step(tmp_path, """
        import time
        block = bytearray()
        while len(block) < 2_000_000_000:
            block.extend(b"x" * 20_000_000)
            time.sleep(0.05)
        time.sleep(60)
    """)
    limit = 200_000_000
    result = executor.run(RunSpec(workdir=workdir, timeout_s=60, memory_limit_bytes=limit))
    assert result.status == "memory_exceeded", result.message
    assert result.peak_rss_bytes > limit
    assert re.fullmatch(r"killed: memory \d+ MiB over the 191 MiB limit", result.message), result.message
    assert result.duration_s < 20
    assert leftovers(workdir) == []


def test_fork_bomb(tmp_path: Path, data_dir: Path, mode: str) -> None:
    executor = Executor(data_dir=data_dir, cache_dir=tmp_path / "cache", sandbox=mode, max_processes=20)  # type: ignore[arg-type]
    # Bounded at 300 children so that a broken limit cannot take the machine down.
    workdir = step(tmp_path, """
        import os, time
        for _ in range(300):
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            time.sleep(0.005)
        time.sleep(60)
    """)
    result = executor.run(RunSpec(workdir=workdir, timeout_s=60))
    assert result.status == "killed"
    assert re.fullmatch(r"killed: \d+ processes over the 20-process limit \(a fork bomb or runaway worker spawning\)",
                        result.message), result.message
    assert result.duration_s < 20
    assert leftovers(workdir) == []


def test_output_flood_is_capped(tmp_path: Path, data_dir: Path, mode: str) -> None:
    cap = 1_000_000
    executor = Executor(data_dir=data_dir, cache_dir=tmp_path / "cache", sandbox=mode, max_log_bytes=cap)  # type: ignore[arg-type]
    workdir = step(tmp_path, """
        import sys
        chunk = b"y" * (1 << 20)
        for _ in range(200):
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.write(b"\\nEND\\n")
        print("small", file=sys.stderr)
    """)
    result = executor.run(RunSpec(workdir=workdir, timeout_s=120))
    total = 200 * (1 << 20) + 5
    assert result.status == "ok"
    assert result.stdout_bytes == total and result.stderr_bytes == 6
    content = result.stdout_path.read_bytes()
    marker = f"\n[gome: {total - cap:,} bytes of output dropped; the last 64 KiB follow]\n".encode()
    assert content[:cap] == b"y" * cap
    assert content[cap:cap + len(marker)] == marker
    assert content[cap + len(marker):] == (b"y" * (1 << 20) + b"\nEND\n")[-(64 * 1024):]
    assert result.stdout_tail.endswith("y\nEND\n") and len(result.stdout_tail) == TAIL_CHARS
    assert result.stderr_path.read_text() == "small\n"
    assert result.duration_s < 60


def test_small_overflow_appends_only_what_was_dropped(tmp_path: Path, data_dir: Path, mode: str) -> None:
    executor = Executor(data_dir=data_dir, cache_dir=tmp_path / "cache", sandbox=mode, max_log_bytes=10)  # type: ignore[arg-type]
    workdir = step(tmp_path, "print('0123456789abcdef')")
    result = executor.run(RunSpec(workdir=workdir, timeout_s=30))
    assert result.stdout_path.read_text() == (
        "0123456789\n[gome: 7 bytes of output dropped; the last 7 bytes follow]\nabcdef\n"
    )


# Cleanup ----------------------------------------------------------------------------


def test_processes_left_behind_are_killed(executor: Executor, tmp_path: Path) -> None:
    token = f"gome-leftover-{uuid.uuid4().hex}"
    workdir = step(tmp_path, f"""
        import os, subprocess, sys, time
        sleeper = "import sys, time; open(sys.argv[1], 'w').close(); time.sleep(120)"
        # A double-forked daemon in its own session...
        pid = os.fork()
        if pid == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, "-c", sleeper, "daemon.started", "{token}"])
            os._exit(0)
        os.waitpid(pid, 0)
        # ...and a plain child started in a new session.
        subprocess.Popen([sys.executable, "-c", sleeper, "setsid.started", "{token}"], start_new_session=True)
        while not (os.path.exists("daemon.started") and os.path.exists("setsid.started")):
            time.sleep(0.02)
    """)
    result = executor.run(RunSpec(workdir=workdir, timeout_s=60))
    assert result.status == "ok", result.stderr_tail
    assert (workdir / "daemon.started").exists() and (workdir / "setsid.started").exists()
    assert leftovers(workdir, token) == []


def test_cancel_all_stops_a_run(executor: Executor, tmp_path: Path) -> None:
    workdir = step(tmp_path, """
        import time
        open("started", "w").close()
        time.sleep(60)
    """)
    results: list[RunResult] = []
    runner = threading.Thread(target=lambda: results.append(executor.run(RunSpec(workdir=workdir, timeout_s=60))))
    runner.start()
    wait_for(workdir / "started")
    started = time.monotonic()
    executor.cancel_all()
    runner.join(timeout=20)
    assert not runner.is_alive()
    assert time.monotonic() - started < 5
    (result,) = results
    assert result.status == "killed" and result.message == "killed: the run was cancelled"
    assert leftovers(workdir) == []


def test_concurrent_runs_from_threads(executor: Executor, tmp_path: Path) -> None:
    workdirs = [step(tmp_path, f"import time\nprint({i})\ntime.sleep(0.5)\n", name=f"step{i}") for i in range(3)]
    results: dict[int, RunResult] = {}

    def go(i: int) -> None:
        results[i] = executor.run(RunSpec(workdir=workdirs[i], timeout_s=60))

    threads = [threading.Thread(target=go, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i in range(3):
        assert results[i].status == "ok"
        assert results[i].stdout_path == workdirs[i] / "stdout.txt"
        assert results[i].stdout_path.read_text() == f"{i}\n"


# Environment ------------------------------------------------------------------------


def test_environment_has_no_secrets(
    executor: Executor, tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdefghijklmnop")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "svc-token-1234567890")
    monkeypatch.setenv("GOME_TEST_PLAIN", "kept")
    workdir = step(tmp_path, "import json, os\nprint(json.dumps(dict(os.environ)))\n")
    result = executor.run(RunSpec(workdir=workdir, timeout_s=30, env={"CUDA_VISIBLE_DEVICES": "0"}))
    assert result.status == "ok", result.stderr_tail
    text = result.stdout_path.read_text()
    env = json.loads(text)
    assert "OPENAI_API_KEY" not in env and "MY_SERVICE_TOKEN" not in env
    assert "sk-test-abcdefghijklmnop" not in text and "svc-token-1234567890" not in text
    cache = tmp_path / "cache"
    assert env["GOME_TEST_PLAIN"] == "kept"
    assert env["CUDA_VISIBLE_DEVICES"] == "0"
    assert env["PYTHONUNBUFFERED"] == "1" and env["MPLBACKEND"] == "Agg"
    assert env["HOME"] == str(cache / "home")
    for name in ("XDG_CACHE_HOME", "TORCH_HOME", "HF_HOME"):
        assert Path(env[name]).parent == cache and Path(env[name]).is_dir()
    assert env["GOME_DATA_DIR"] == str(workdir / "input")
    assert env["TMPDIR"] == ("/tmp" if mode == "namespace" else str(workdir / ".tmp"))
    assert not (workdir / ".tmp").exists()


# Namespace isolation ----------------------------------------------------------------

needs_namespaces = pytest.mark.skipif(not namespaces_available(), reason="no user namespaces here")


@needs_namespaces
def test_filesystem_is_fenced(tmp_path: Path, data_dir: Path) -> None:
    executor = Executor(data_dir=data_dir, cache_dir=tmp_path / "cache", sandbox="namespace")
    name = f"gome-private-{uuid.uuid4().hex}"
    targets = {
        "data": str(data_dir / "new.csv"),
        "data_existing": str(data_dir / "train.csv"),
        "sibling": str(tmp_path / "sibling.txt"),
        "root": "/gome-should-not-exist.txt",
        "workdir": "written.txt",
        "tmp": f"/tmp/{name}",
        "cache": str(tmp_path / "cache" / "weights.bin"),
    }
    workdir = step(tmp_path, f"""
        import json
        outcome = {{}}
        for key, path in {targets!r}.items():
            try:
                with open(path, "a") as f:
                    f.write("x")
                outcome[key] = "ok"
            except OSError as exc:
                outcome[key] = exc.strerror
        print(json.dumps(outcome))
    """)
    result = executor.run(RunSpec(workdir=workdir, timeout_s=30))
    assert result.status == "ok", result.stderr_tail
    outcome = json.loads(result.stdout_path.read_text())
    assert outcome == {
        "data": "Read-only file system", "data_existing": "Read-only file system",
        "sibling": "Read-only file system", "root": "Read-only file system",
        "workdir": "ok", "tmp": "ok", "cache": "ok",
    }
    assert (workdir / "written.txt").read_text() == "x"
    assert (tmp_path / "cache" / "weights.bin").read_text() == "x"
    assert sorted(p.name for p in data_dir.iterdir()) == ["train.csv"]
    assert not (tmp_path / "sibling.txt").exists()
    assert not Path("/tmp", name).exists()  # the solution's /tmp is private


@needs_namespaces
def test_other_processes_are_invisible(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = f"gome-marker-{uuid.uuid4().hex}"
    monkeypatch.setenv("MY_VISIBILITY_TOKEN", marker)  # a secret name: the solution's own environment lacks it
    executor = Executor(data_dir=data_dir, cache_dir=tmp_path / "cache", sandbox="namespace")
    workdir = step(tmp_path, f"""
        import json, os
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
        leaked = []
        for pid in pids:
            try:
                if b"{marker}" in open(f"/proc/{{pid}}/environ", "rb").read():
                    leaked.append(pid)
            except OSError:
                pass
        print(json.dumps({{"me": os.getpid(), "pids": pids, "leaked": leaked}}))
    """)
    result = executor.run(RunSpec(workdir=workdir, timeout_s=30))
    seen = json.loads(result.stdout_path.read_text())
    assert seen == {"me": 1, "pids": [1], "leaked": []}


@needs_namespaces
@pytest.mark.parametrize("network", [False, True])
def test_network_switch(tmp_path: Path, data_dir: Path, network: bool) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    try:
        executor = Executor(data_dir=data_dir, cache_dir=tmp_path / "cache", sandbox="namespace", network=network)
        workdir = step(tmp_path, f"""
            import json, socket
            outcome = {{}}
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
                outcome["outside"] = "connected"
            except OSError as exc:
                outcome["outside"] = type(exc).__name__
            # Loopback inside the sandbox keeps working either way.
            inner = socket.create_server(("127.0.0.1", 0))
            socket.create_connection(inner.getsockname(), timeout=5).close()
            outcome["inside"] = "connected"
            print(json.dumps(outcome))
        """)
        result = executor.run(RunSpec(workdir=workdir, timeout_s=30))
    finally:
        server.close()
    assert result.status == "ok", result.stderr_tail
    outcome = json.loads(result.stdout_path.read_text())
    assert outcome == {"outside": "connected" if network else "ConnectionRefusedError", "inside": "connected"}


# Setup errors -----------------------------------------------------------------------


def test_auto_mode_follows_availability(tmp_path: Path, data_dir: Path) -> None:
    executor = Executor(data_dir=data_dir, cache_dir=tmp_path / "cache")
    assert executor.sandbox_mode == ("namespace" if namespaces_available() else "none")


def test_namespace_mode_when_unavailable(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor_module, "_probe_result", ["user namespaces are not usable here (EPERM)"])
    assert not namespaces_available()
    with pytest.raises(ExecutorError, match=r"sandbox 'namespace' was requested but user namespaces are not usable"):
        Executor(data_dir=data_dir, cache_dir=tmp_path / "cache", sandbox="namespace")
    assert Executor(data_dir=data_dir, cache_dir=tmp_path / "cache").sandbox_mode == "none"


def test_probe_names_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "unshare").write_text("#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n")
    (fake / "unshare").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    assert executor_module._probe_namespaces() == (
        "user namespaces are not usable here (unshare: unshare failed: Operation not permitted)"
    )
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert executor_module._probe_namespaces() == "the unshare command (util-linux) is not installed"


def test_network_off_without_namespaces_warns(tmp_path: Path, data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    Executor(data_dir=data_dir, cache_dir=tmp_path / "cache", sandbox="none", network=False)
    assert "network=False has no effect without the namespace sandbox" in caplog.text


def test_bad_python(tmp_path: Path, data_dir: Path) -> None:
    message = r"python interpreter '/no/such/python' \(execution.python\) does not exist"
    with pytest.raises(ExecutorError, match=message):
        Executor(data_dir=data_dir, cache_dir=tmp_path / "cache", python="/no/such/python")
    not_executable = tmp_path / "python"
    not_executable.write_text("")
    with pytest.raises(ExecutorError, match="is not executable"):
        Executor(data_dir=data_dir, cache_dir=tmp_path / "cache", python=str(not_executable))


def test_missing_data_dir(tmp_path: Path) -> None:
    with pytest.raises(ExecutorError, match=r"data folder .*nowhere does not exist"):
        Executor(data_dir=tmp_path / "nowhere", cache_dir=tmp_path / "cache")


def test_missing_main_py(executor: Executor, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExecutorError, match=r"no main.py in .*empty"):
        executor.run(RunSpec(workdir=tmp_path / "empty", timeout_s=10))


def test_command_not_found(executor: Executor, tmp_path: Path) -> None:
    workdir = tmp_path / "step"
    workdir.mkdir()
    with pytest.raises(ExecutorError, match=r"could not start the solution .*cannot start 'no-such-command-xyz'"):
        executor.run(RunSpec(workdir=workdir, command=["no-such-command-xyz"], timeout_s=10))
    assert leftovers(workdir) == []


def test_spec_validation() -> None:
    with pytest.raises(ValueError):
        RunSpec(workdir=Path("."), timeout_s=0)
    with pytest.raises(ValueError):
        RunSpec(workdir=Path("."), timeout_s=1, memory_limit_bytes=0)


def test_many_lines_are_captured_whole(executor: Executor, tmp_path: Path) -> None:
    workdir = step(tmp_path, "for i in range(100000):\n    print(i)\n")
    result = executor.run(RunSpec(workdir=workdir, timeout_s=60))
    lines = result.stdout_path.read_text().splitlines()
    assert lines == [str(i) for i in range(100000)]
    assert os.path.getsize(result.stdout_path) == result.stdout_bytes


def test_on_poll_sees_the_process_tree(executor: Executor, tmp_path: Path, mode: str) -> None:
    workdir = step(tmp_path, """
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        open("child.pid", "w").write(str(child.pid))
        time.sleep(1.6)
        child.kill()
    """)
    seen: list[list[int]] = []

    def on_poll(pids: list[int]) -> None:
        seen.append(pids)
        raise RuntimeError("a broken callback must not break the run")

    result = executor.run(RunSpec(workdir=workdir, timeout_s=30), on_poll=on_poll)
    assert result.status == "ok", result.stderr_tail
    assert len(seen) >= 2
    assert max(len(pids) for pids in seen) >= 2
    if mode == "none":  # inside a PID namespace the child knows itself by another number
        assert any(int((workdir / "child.pid").read_text()) in pids for pids in seen)
    assert all(pid != os.getpid() for pids in seen for pid in pids)
