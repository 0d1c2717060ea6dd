"""The fault-injection suite's world, scripted model, run helpers and the one invariant checker.

Every run-level fault test builds a `World` (a competition with private answers and a
leaderboard, a sentinel folder and the agent's HOME next to the run folder, fake API keys in
the environment), injects its fault into a real run (fake LLM server, real sandboxed
solutions, real files) and ends with `check_run`, which asserts what must hold after any
fault: a clear reason, no lost memory entry, no process left, no secret anywhere, nothing
outside the run folder changed, and the best valid submission in place.

The world lives under /var/tmp rather than pytest's /tmp: the sandbox gives solutions a private
/tmp, which would hide the run folder and the data's neighbours from them, and the fence must
be tested against paths a solution can actually see.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from gome_agent import secrets as secrets_module
from gome_agent.bench.competitions import build_breast_cancer
from gome_agent.bench.scripted import ScriptedPolicy, template_of
from gome_agent.config import RunConfig, build_config
from gome_agent.llm.client import LLMClient
from gome_agent.llm.providers import build_provider
from gome_agent.llm.types import Message
from gome_agent.optimizer.momentum import MemoryEntry
from gome_agent.records.best import BestInfo
from gome_agent.records.events import EventLog, RunFinished, StepRecord, TraceExited
from gome_agent.run.coordinator import RunSummary, run
from gome_agent.secrets import is_secret_name
from gome_agent.task.sample import SampleSubmission, find_sample_submission, load_sample_submission
from gome_agent.task.submission import check_submission
from tests.fake_llm import FakeLLMServer, FakeRequest, Reply
from tests.scripted_agent import ANALYSIS

ROOT = Path(__file__).resolve().parents[2]
WORLD_PARENT = Path("/var/tmp")
SAMPLE_COPY = "is the sample submission itself"


# Solutions ----------------------------------------------------------------------------

# Fast (no pandas), honours the contract, dumps its environment for the secrets check, and
# writes predictions that depend on SCORE so that each step's submission differs.
SOLUTION = '''import csv
import json
import os

SCORE = {score:.6f}
json.dump(dict(os.environ), open("env.json", "w"))
with open("input/test.csv", newline="") as f:
    ids = [row["id"] for row in csv.DictReader(f)]
{attack}with open("submission.csv", "w", newline="") as f:
    f.write("id,target\\n" + "".join(f"{{i}},{{0.25 + SCORE / 10:.6f}}\\n" for i in ids))
json.dump({{"score": SCORE}}, open("scores.json", "w"))
print("validation score", SCORE)
'''


def solution(score: float, attack: str = "", header: str = "") -> str:
    """A main.py with validation score `score`; `attack` runs after the ids are read (before the submission)."""
    body = attack if not attack or attack.endswith("\n") else attack + "\n"
    return header + SOLUTION.format(score=score, attack=body)


def full(code: str, summary: str = "rewrite") -> str:
    return f"Change: {summary}\n```python\n{code}```\n"


Fault = Reply | str | Callable[[FakeRequest], "Reply | str"]


class Model:
    """The scripted model behind the fake server.

    By default it drafts `solution(0.70)` and every update raises the score (`accept_rate`
    1.0), so steps are accepted in order. `inject(template, ...)` queues replies that the next
    requests of that template get instead (faults); the scripted policy answers the rest.
    """

    def __init__(self, *, accept_rate: float = 1.0, seed: int = 0, code: Callable[[float], str] = solution,
                 delay_s: float = 0.0) -> None:
        self.policy = ScriptedPolicy(ANALYSIS, seed=seed, accept_rate=accept_rate, code=code)
        self.delay_s = delay_s
        self.faults: dict[str, deque[Fault]] = defaultdict(deque)
        self.seen: list[tuple[str, FakeRequest]] = []
        self.analysis: dict[str, Any] = dict(ANALYSIS)
        self._lock = threading.Lock()

    def inject(self, template: str, *faults: Fault) -> Model:
        with self._lock:
            self.faults[template].extend(faults)
        return self

    def count(self, template: str) -> int:
        with self._lock:
            return sum(name == template for name, _ in self.seen)

    def __call__(self, request: FakeRequest) -> Reply | str:
        messages = [Message(role="user", content=request.text)]
        name = template_of(messages)
        with self._lock:
            self.seen.append((name, request))
            fault = self.faults[name].popleft() if self.faults[name] else None
        if self.delay_s:
            time.sleep(self.delay_s)
        if fault is not None:
            return fault(request) if callable(fault) else fault
        if name == "task_analysis":
            return json.dumps(self.analysis)
        with self._lock:  # the policy's random generator is not thread-safe
            return self.policy(messages, request.model)


# The world ----------------------------------------------------------------------------


@dataclass
class World:
    """Everything a fault run touches, and what must not change."""

    base: Path
    comp: Path  # competition root: public/, private/answers.csv, leaderboard.csv
    sentinel: Path  # a folder next to the run folder that nothing may touch
    home: Path  # the agent's HOME
    secrets: dict[str, str]
    protected: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    created: float = field(default_factory=time.time)  # processes older than the world are not the run's

    @property
    def data(self) -> Path:
        return self.comp / "public"

    @property
    def workdir(self) -> Path:
        return self.base / "run"

    @property
    def private(self) -> Path:
        return self.comp / "private"

    @property
    def leaderboard(self) -> Path:
        return self.comp / "leaderboard.csv"

    def sample(self) -> SampleSubmission:
        return load_sample_submission(find_sample_submission(self.data))

    def snapshot(self) -> dict[str, tuple[int, int, str]]:
        """Path -> (size, mtime_ns, sha256) of every entry of the data, sentinel and home folders."""
        out: dict[str, tuple[int, int, str]] = {}
        for root in (self.comp, self.sentinel, self.home):
            out[str(root)] = (0, 0, "dir")
            for folder, dirs, files in os.walk(root):
                for name in dirs + files:
                    path = Path(folder, name)
                    st = path.lstat()
                    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
                    out[str(path)] = (st.st_size, st.st_mtime_ns, digest)
        return out

    def protect(self) -> None:
        self.protected = self.snapshot()


@pytest.fixture(scope="session")
def competition_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The breast-cancer competition (public/ and private/), built once; worlds copy it."""
    root = tmp_path_factory.mktemp("faults-comp")
    build_breast_cancer(root)
    (root / "leaderboard.csv").write_text("teamName,score\nalpha,0.99\nbeta,0.97\ngamma,0.90\n")
    return root


def make_world(template: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    base = Path(tempfile.mkdtemp(prefix="gome-faults-", dir=WORLD_PARENT))
    tag = uuid.uuid4().hex
    world = World(
        base=base, comp=base / "comp", sentinel=base / "sentinel", home=base / "home",
        secrets={
            "OPENAI_API_KEY": f"sk-fault-openai-{tag}",
            "ANTHROPIC_API_KEY": f"sk-ant-fault-{tag}",
            "HF_TOKEN": f"hf_fault_{tag}",
            "MY_SERVICE_PASSWORD": f"pw-fault-{tag}",
        },
    )
    shutil.copytree(template, world.comp)
    world.sentinel.mkdir()
    (world.sentinel / "keep.txt").write_text("the run must not touch this\n")
    world.home.mkdir()
    (world.home / ".profile").write_text("# the agent's home\n")
    for name, value in world.secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOME", str(world.home))
    # A fresh process builds its redactor from its environment: so does the in-process run.
    monkeypatch.setattr(secrets_module, "_default", None)
    world.protect()
    return world


@pytest.fixture
def world(competition_template: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    made = make_world(competition_template, monkeypatch)
    yield made
    shutil.rmtree(made.base, ignore_errors=True)


# Runs ---------------------------------------------------------------------------------


def fault_config(world: World, fake: FakeLLMServer, **overrides: Any) -> RunConfig:
    """Small, fast settings: one trace, a few steps, short limits, no final selection."""
    values: dict[str, Any] = {
        "data_dir": world.data, "workdir": world.workdir, "time_limit_s": 600, "traces": 1,
        "final_reserve_fraction": 0.0,
        "llm": {"provider": "openai-compatible", "base_url": fake.base_url_openai, "model": "fake",
                "backoff_base_s": 0.01, "backoff_max_s": 0.05, "max_attempts": 3, "request_timeout_s": 30},
        "optimizer": {"max_steps": 3, "max_debug": 0, "diversify_wait_s": 5},
        # Every attempt keeps what its solution wrote: the checker reads each one's environment (env.json),
        # and the tests what an attack left behind.
        "execution": {"max_run_minutes": 0.5, "min_run_seconds": 1, "memory_limit_gb": 2, "keep_outputs": "all"},
        "validation": {"scoring": "self-reported"},  # the scripted solutions' scores drive the runs
    }
    return build_config(values, overrides)


def run_in_process(config: RunConfig) -> RunSummary:
    """The coordinator and its traces (as threads) in this process, through the real SDK client."""
    llm = LLMClient(config.llm, config.workdir / "llm_calls.jsonl", provider=build_provider(config.llm, strict=True))
    return run(config, llm=llm)


def gome(args: list[str], *, prefix: list[str] | None = None) -> subprocess.Popen[str]:
    """`gome ARGS` as its own process, with this process's environment (fake keys included)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([*(prefix or []), sys.executable, "-m", "gome_agent", *args], cwd=ROOT, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def cli_args(config: RunConfig, config_file: Path) -> list[str]:
    record = config.to_record()
    record.pop("data_dir"), record.pop("workdir")
    config_file.write_text(json.dumps(record))
    return ["run", "--data-dir", str(config.data_dir), "--workdir", str(config.workdir), "--config", str(config_file)]


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "the condition") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def workers(coordinator: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(coordinator).children() if "gome_agent.run.worker" in " ".join(p.cmdline())]
    except psutil.Error:
        return []


def attempt(world: World, trace: int, step: int, attempt_no: int = 0, workdir: Path | None = None) -> Path:
    return (workdir or world.workdir) / "traces" / f"t{trace}" / f"s{step:04d}" / f"a{attempt_no}"


# The invariant checker -------------------------------------------------------------------


@dataclass
class Verdict:
    """What the checker read, for the test's own further assertions."""

    finished: RunFinished | None
    steps: list[StepRecord]
    best: BestInfo | None
    env_dumps: int
    crashes: list[str]  # why traces crashed (TraceExited), for a test's message when a restart redid a step


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _touches(proc: psutil.Process, base: str) -> bool:
    try:
        if proc.pid == os.getpid():
            return False
        return proc.cwd().startswith(base) or any(base in arg for arg in proc.cmdline())
    except psutil.Error:
        return False


def _newer(proc: psutil.Process, since: float) -> bool:
    try:
        return proc.create_time() >= since
    except psutil.Error:
        return False


def leftover_processes(world: World) -> list[str]:
    """Live processes of the run: descendants of this test started since the world was made (helpers
    that other tests left, such as multiprocessing's resource tracker, are older), and any process
    anywhere that works in or names the world's folder (escapees re-parented elsewhere)."""
    me = psutil.Process()
    base = str(world.base)
    found = {p for p in me.children(recursive=True) if _alive(p) and _newer(p, world.created - 1.0)}
    found |= {p for p in psutil.process_iter() if _touches(p, base) and _alive(p)}
    out = []
    for proc in found:
        try:
            out.append(f"{proc.pid}: {' '.join(proc.cmdline())[:200]}")
        except psutil.Error:
            continue
    return out


def _files(root: Path) -> Iterator[Path]:
    """Regular files under `root`, never following a link (a solution may leave links to anything)."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            if path.is_file() and not path.is_symlink():
                yield path


def check_run(
    world: World,
    *,
    reason: str | Callable[[str], bool] | None = None,
    output: str | None = None,
    output_has: tuple[str, ...] = (),
    best_at_least: float | None = None,
    expect_steps: bool = True,
    workdir: Path | None = None,
    sample: SampleSubmission | None = None,
    process_timeout: float = 15.0,
) -> Verdict:
    """Assert every invariant that must hold after a run met a fault.

    (a) it stopped with a clear reason (RunFinished.reason, and `output_has` in the CLI's output);
    (b) every accepted step has exactly one well-formed entry in the success memory;
    (c) no process of the run is left;
    (d) no fake secret is in any file of the run folder or in any solution's environment;
    (e) nothing in the data, sentinel or home folders changed;
    (f) the best valid submission (at least `best_at_least`) is in place, or the fallback when none exists.
    """
    workdir = workdir or world.workdir
    events = EventLog(workdir / "events.jsonl")
    # (c) first: everything else reads files that a leftover could still be writing.
    deadline = time.monotonic() + process_timeout
    left = leftover_processes(world)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = leftover_processes(world)
    assert not left, f"processes of the run are still alive: {left}"

    # (a)
    finished = [e for e in events.read() if isinstance(e, RunFinished)]
    assert finished, "the run wrote no run_finished record"
    last = finished[-1]
    if isinstance(reason, str):
        assert last.reason == reason, last.reason
    elif reason is not None:
        assert reason(last.reason), last.reason
    for text in output_has:
        assert output is not None and text in output, output

    # (b)
    steps = events.steps()
    memory = workdir / "memory" / "successes.jsonl"
    lines = memory.read_text(encoding="utf-8").splitlines() if memory.exists() else []
    entries = [MemoryEntry.model_validate_json(line) for line in lines]  # every line parses
    accepted = Counter((s.trace, s.step) for s in steps if s.accepted)
    assert Counter((e.trace, e.step) for e in entries) == accepted
    assert all(n == 1 for n in accepted.values()), accepted
    if expect_steps:
        assert steps, "no step was recorded"

    # (d)
    values = [v.encode() for v in world.secrets.values()]
    for path in _files(workdir):
        data = path.read_bytes()
        leaked = [v for v in values if v in data]
        assert not leaked, f"{path} holds a secret"
    dumps = [p for p in _files(workdir) if p.name == "env.json"]
    assert dumps or not any(s.runs for s in steps), "solutions ran but none dumped its environment"
    for dump in dumps:
        env = json.loads(dump.read_text())
        assert not [k for k in env if is_secret_name(k)], f"{dump}: secret-looking variables reached a solution"
        assert not set(world.secrets.values()) & set(env.values()), dump

    # (e)
    after = world.snapshot()
    changed = sorted(k for k in set(after) | set(world.protected) if after.get(k) != world.protected.get(k))
    assert not changed, f"files outside the run folder changed: {changed}"

    # (f)
    task = json.loads((workdir / "task.json").read_text()) if (workdir / "task.json").exists() else None
    info_path = workdir / "code" / "best.json"
    best = BestInfo.model_validate_json(info_path.read_text()) if info_path.exists() else None
    submission = workdir / "submission" / "submission.csv"
    sample = sample or world.sample()
    scored = [s for s in steps if s.accepted and s.score is not None]
    assert submission.is_file() and not submission.is_symlink(), "no submission in place"
    assert best is not None
    if scored:
        assert task is not None
        sign = 1.0 if task["higher_is_better"] else -1.0
        top = max(sign * s.score for s in scored)  # type: ignore[operator]
        winners = [s for s in scored if sign * s.score == top]  # type: ignore[operator]
        assert best.source in ("step", "final_selection") and sign * best.score == pytest.approx(top)
        assert any(submission.read_bytes() == (workdir / s.code_dir / "submission.csv").read_bytes()
                   for s in winners if s.code_dir), "the submission in place is not the best accepted step's"
        assert check_submission(submission, sample) == []
        if best_at_least is not None:
            assert sign * top >= sign * best_at_least
    else:
        assert best_at_least is None, "the best known before the fault is gone"
        assert best.source == "fallback"
        assert [p for p in check_submission(submission, sample) if SAMPLE_COPY not in p] == []
    crashes = [e.message for e in events.read() if isinstance(e, TraceExited) and e.message != "finished"]
    return Verdict(finished=last, steps=steps, best=best, env_dumps=len(dumps), crashes=crashes)
