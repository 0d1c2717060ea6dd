"""Multi-trace runs: diversification, shared momentum, stages, ablations, crash restart, resume, stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from gome_agent import runinfo
from gome_agent.bench.competitions import build_breast_cancer
from gome_agent.bench.scripted import ScriptedPolicy
from gome_agent.budget import Budget
from gome_agent.config import RunConfig
from gome_agent.llm.client import LLMClient
from gome_agent.llm.config import LLMConfig
from gome_agent.llm.providers import build_provider
from gome_agent.llm.types import Message
from gome_agent.momentum import SuccessMemory
from gome_agent.records import DraftApproach, EventLog, RunFinished, TraceExited
from gome_agent.runner import run
from gome_agent.sample import find_sample_submission, load_sample_submission
from gome_agent.submission import check_submission
from gome_agent.worker import build_trace
from tests.fake_llm import FakeRequest
from tests.scripted_agent import ANALYSIS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def competition(tmp_path_factory):
    return build_breast_cancer(tmp_path_factory.mktemp("comp"))


class Recorder:
    """The scripted policy behind the fake server, keeping every request's template and trace."""

    def __init__(self, delay_s: float = 0.0, seed: int = 0) -> None:
        self.policy = ScriptedPolicy(ANALYSIS, seed=seed, accept_rate=0.7)
        self.delay_s = delay_s
        self.requests: list[str] = []

    def __call__(self, request: FakeRequest) -> str:
        if self.delay_s:
            time.sleep(self.delay_s)
        self.requests.append(request.text)
        return self.policy([Message(role="user", content=request.text)], request.model)

    def prompts_with(self, marker: str) -> list[str]:
        return [t for t in self.requests if marker in t]


def config_for(tmp_path, data, fake, **overrides) -> RunConfig:
    values = {
        "data_dir": data, "workdir": tmp_path / "run", "time_limit_s": 3600, "traces": 3,
        "final_reserve_fraction": 0.0,
        "llm": LLMConfig(provider="openai-compatible", base_url=fake.base_url_openai, model="fake",
                         backoff_base_s=0.01, backoff_max_s=0.05, max_attempts=3),
        "optimizer": {"max_steps": 3, "max_debug": 0, "diversify_wait_s": 20},
        "execution": {"max_run_minutes": 1, "min_run_seconds": 1},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return RunConfig.model_validate(values)


def in_process(config: RunConfig):
    llm = LLMClient(config.llm, config.workdir / "llm_calls.jsonl", provider=build_provider(config.llm, strict=True))
    return run(config, llm=llm)


def test_three_traces_diversify_and_share_momentum(tmp_path, competition, fake_llm):
    recorder = Recorder()
    fake_llm.set_responder(recorder)
    config = config_for(tmp_path, competition, fake_llm, optimizer={"max_steps": 4})
    summary = in_process(config)
    events = EventLog(config.workdir / "events.jsonl")
    steps = events.steps()
    assert {s.trace for s in steps} == {0, 1, 2}
    assert all(len(events.steps(i)) == 4 for i in range(3))
    # Diversification: trace 2's first draft sees the approaches of traces 0 and 1.
    approaches = [e for e in events.read() if isinstance(e, DraftApproach)]
    assert {a.trace for a in approaches} == {0, 1, 2}
    drafts = recorder.prompts_with("Write the first complete solution")
    assert any("trace 0: constant baseline" in d and "trace 1: constant baseline" in d for d in drafts)
    # Shared momentum: the memory holds accepted steps of all traces, and a diagnosis shows another trace's.
    entries = SuccessMemory(config.workdir / "memory").entries()
    assert {e.trace for e in entries} == {0, 1, 2}
    assert any("## What worked elsewhere" in p and "trace " in p.split("## What worked elsewhere")[1]
               for p in recorder.prompts_with("## Your job: diagnose"))
    assert SuccessMemory(config.workdir / "memory").now() == len(steps)
    # The best of all traces is in place.
    best = max(s.score for s in steps if s.accepted)
    assert summary.best_score == pytest.approx(best)
    sample = load_sample_submission(find_sample_submission(competition))
    assert check_submission(config.workdir / "submission" / "submission.csv", sample) == []


def test_stage_switches_to_final_with_the_budget(tmp_path, competition, fake_llm):
    recorder = Recorder()
    fake_llm.set_responder(recorder)
    config = config_for(tmp_path, competition, fake_llm, traces=1, optimizer={"max_steps": 1})
    in_process(config)
    # Continue the same trace as if 80% of the budget were spent.
    info = runinfo.load(config.workdir)
    runinfo.save(config.workdir, info.model_copy(update={"spent_before_s": 0.8 * 3600}))
    cfg = config.model_copy(update={"optimizer": config.optimizer.model_copy(update={"max_steps": 2})})
    (config.workdir / "config.json").write_text(cfg.model_dump_json())
    llm = LLMClient(cfg.llm, cfg.workdir / "llm_calls.jsonl", provider=build_provider(cfg.llm, strict=True))
    trace = build_trace(cfg.workdir, 0, llm=llm)
    record = trace.step()
    assert record.stage == "final"
    assert "Final stage: favour robustness and ensembling" in recorder.prompts_with("## Your job: diagnose")[-1]
    assert [r.stage for r in EventLog(cfg.workdir / "events.jsonl").steps()] == ["draft", "final"]


def test_no_momentum_ablation_hides_successes(tmp_path, competition, fake_llm):
    recorder = Recorder()
    fake_llm.set_responder(recorder)
    config = config_for(tmp_path, competition, fake_llm, traces=2, optimizer={"momentum": False, "max_steps": 4})
    in_process(config)
    diagnoses = recorder.prompts_with("## Your job: diagnose")
    assert diagnoses
    assert not any("## What worked elsewhere" in d or "## Accepted steps so far" in d for d in diagnoses)
    assert json.loads((config.workdir / "config.json").read_text())["optimizer"]["momentum"] is False


def test_direct_ablation_skips_the_diagnosis(tmp_path, competition, fake_llm):
    recorder = Recorder()
    fake_llm.set_responder(recorder)
    config = config_for(tmp_path, competition, fake_llm, traces=1, optimizer={"structured_gradient": False})
    in_process(config)
    assert not recorder.prompts_with("## Your job: diagnose")
    assert len(recorder.prompts_with("with one change to this code")) == 2
    assert [s.kind for s in EventLog(config.workdir / "events.jsonl").steps()] == ["draft", "improve", "improve"]


def _gome(args: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "sk-test-not-a-real-key-123456"}
    return subprocess.Popen([sys.executable, "-m", "gome_agent", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _cli_args(config: RunConfig) -> list[str]:
    cfg = config.workdir.parent / "gome.json"
    record = config.to_record()
    record.pop("data_dir"), record.pop("workdir")
    cfg.write_text(json.dumps(record))
    return ["run", "--data-dir", str(config.data_dir), "--workdir", str(config.workdir), "--config", str(cfg)]


def _wait_for(predicate, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def _workers(coordinator: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(coordinator).children() if "gome_agent.worker" in " ".join(p.cmdline())]
    except psutil.Error:
        return []


def test_crashed_trace_process_is_restarted_and_resumes(tmp_path, competition, fake_llm):
    fake_llm.set_responder(Recorder(delay_s=0.3))
    config = config_for(tmp_path, competition, fake_llm, traces=2, optimizer={"max_steps": 4})
    proc = _gome(_cli_args(config))
    events = EventLog(config.workdir / "events.jsonl")
    _wait_for(lambda: len(events.steps(1)) >= 1)
    [victim] = [p for p in _workers(proc.pid) if p.cmdline()[-3] == "1"]
    victim.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    exits = [e for e in events.read() if isinstance(e, TraceExited) and e.trace == 1]
    assert exits[0].restarted and exits[0].exit_code == -9
    steps1 = [s.step for s in events.steps(1)]
    assert steps1 == [1, 2, 3, 4]  # no finished step was repeated, none skipped
    entries = SuccessMemory(config.workdir / "memory").entries()
    assert len(entries) == sum(s.accepted for s in events.steps())


def test_killed_coordinator_is_resumed_with_the_budget_left(tmp_path, competition, fake_llm):
    fake_llm.set_responder(Recorder(delay_s=0.3))
    config = config_for(tmp_path, competition, fake_llm, traces=2, optimizer={"max_steps": 4})
    proc = _gome(_cli_args(config))
    events = EventLog(config.workdir / "events.jsonl")
    _wait_for(lambda: len(events.steps()) >= 3)
    workers = _workers(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    # The traces die with their coordinator, and so do their solutions.
    _wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in workers), 20)
    done_before = {(s.trace, s.step) for s in events.steps()}
    time.sleep(1.0)
    resumed = _gome(["run", "--resume", str(config.workdir)])
    out, _ = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, out
    steps = events.steps()
    assert sorted((s.trace, s.step) for s in steps) == [(t, i) for t in range(2) for i in range(1, 5)]
    assert done_before <= {(s.trace, s.step) for s in steps}
    info = runinfo.load(config.workdir)
    assert info.sessions == 2 and info.spent_before_s > 0
    finished = [e for e in events.read() if isinstance(e, RunFinished)]
    assert finished[-1].steps == 8


def test_sigterm_stops_every_trace_and_leaves_the_best(tmp_path, competition, fake_llm):
    fake_llm.set_responder(Recorder(delay_s=0.2))
    config = config_for(tmp_path, competition, fake_llm, traces=2, optimizer={"max_steps": 50})
    proc = _gome(_cli_args(config))
    events = EventLog(config.workdir / "events.jsonl")
    _wait_for(lambda: sum(s.accepted for s in events.steps()) >= 2)
    workers = _workers(proc.pid)
    assert len(workers) == 2
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert "stopped by signal SIGTERM" in out
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in workers)
    sample = load_sample_submission(find_sample_submission(competition))
    assert check_submission(config.workdir / "submission" / "submission.csv", sample) == []
    assert [e for e in events.read() if isinstance(e, RunFinished)][-1].reason == "stopped by signal SIGTERM"


def test_budget_ending_mid_step_still_ends_on_time_with_the_best(tmp_path, competition, fake_llm):
    class SlowAfterDraft(Recorder):
        def __call__(self, request: FakeRequest) -> str:
            reply = super().__call__(request)
            if "## The change to make" in request.text:
                # The improved code would train for a minute: the budget ends in the middle of it.
                reply = reply.replace("=======\nSCORE = ", "=======\nimport time; time.sleep(60)\nSCORE = ", 1)
            return reply

    fake_llm.set_responder(SlowAfterDraft())
    config = config_for(tmp_path, competition, fake_llm, traces=2, time_limit_s=25,
                        optimizer={"max_steps": 20}, execution={"min_run_seconds": 1})
    started = time.monotonic()
    summary = in_process(config)
    elapsed = time.monotonic() - started
    assert elapsed < 25 + 15, elapsed
    assert summary.best_score == pytest.approx(0.70)
    steps = EventLog(config.workdir / "events.jsonl").steps()
    assert any(s.run_status == "timeout" for s in steps)
    sample = load_sample_submission(find_sample_submission(competition))
    assert check_submission(config.workdir / "submission" / "submission.csv", sample) == []
