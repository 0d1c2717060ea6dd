"""RunView: a finished run made by the scripted fake LLM, a run cut mid-write, empty and missing folders."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from filelock import FileLock

from gome_agent.bench.competitions import build_breast_cancer
from gome_agent.bench.scripted import ScriptedPolicy, template_of
from gome_agent.config import RunConfig
from gome_agent.errors import ConfigError
from gome_agent.llm.client import LLMClient
from gome_agent.llm.config import LLMConfig
from gome_agent.llm.providers import build_provider
from gome_agent.llm.types import Message
from gome_agent.records.events import EventLog, RunStarted, StepRecord
from gome_agent.run.coordinator import run
from gome_agent.views.runview import RunReader, RunView, fmt_score
from tests.fake_llm import FakeLLMServer, FakeRequest
from tests.scripted_agent import ANALYSIS

INJECTION = "<script>alert(1)</script> constant baseline"
FAILURE = 'raise RuntimeError("deliberate failure")'


class _Policy:
    """The scripted policy, with an HTML-injection attempt in the first draft and a crash in the 2nd update."""

    def __init__(self) -> None:
        self.policy = ScriptedPolicy(ANALYSIS, seed=3, accept_rate=0.7)
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, request: FakeRequest) -> str:
        messages = [Message(role="user", content=request.text)]
        with self.lock:
            reply = self.policy(messages, request.model)
            name = template_of(messages)
            self.counts[name] = self.counts.get(name, 0) + 1
            if name == "draft" and self.counts[name] == 1:
                reply = reply.replace("constant baseline", INJECTION, 1)
            if name == "update" and self.counts[name] == 2:
                reply = reply.replace(">>>>>>> REPLACE", f"{FAILURE}\n>>>>>>> REPLACE")
        return reply


def make_run(base: Path) -> Path:
    """A finished 2-trace run (4 steps each, one failing step, a final selection, priced models); its folder."""
    data = build_breast_cancer(base / "comp")
    with FakeLLMServer() as fake:
        fake.set_responder(_Policy())
        config = RunConfig.model_validate({
            "data_dir": data, "workdir": base / "run", "time_limit_s": 3600, "traces": 2,
            "final_reserve_fraction": 0.05, "final_seeds": [1], "final_candidates": 2,
            "llm": LLMConfig(provider="openai-compatible", base_url=fake.base_url_openai, model="gpt-5",
                             role_models={"update": "gpt-5-mini"}, backoff_base_s=0.01, backoff_max_s=0.05,
                             max_attempts=3),
            "optimizer": {"max_steps": 4, "max_debug": 1, "diversify_wait_s": 20},
            "execution": {"max_run_minutes": 1, "min_run_seconds": 1},
            "validation": {"scoring": "self-reported"},  # the scripted solutions' scores drive the run
        })
        llm = LLMClient(config.llm, config.workdir / "llm_calls.jsonl",
                        provider=build_provider(config.llm, strict=True))
        run(config, llm=llm)
    return config.workdir


def shared_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run of `make_run`, made once per test session and shared by its xdist workers (read-only for tests).

    Under xdist each worker has its own temp folder inside the session's; the lock makes the first
    worker build the run there and the others wait for it (pytest-xdist's recipe for shared data).
    """
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = root / "gome-shared-run"
    with FileLock(str(root / "gome-shared-run.lock")):
        if not (folder / "done").exists():
            shutil.rmtree(folder, ignore_errors=True)
            make_run(folder)
            (folder / "done").touch()
    return folder / "run"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return shared_run(tmp_path_factory)


@pytest.fixture(scope="module")
def view(workdir) -> RunView:
    return RunView.load(workdir)


def _steps(workdir: Path) -> list[StepRecord]:
    return EventLog(workdir / "events.jsonl").steps()


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if not p.is_symlink()}


def test_finished_run_task_state_and_time(view, workdir):
    run_json = json.loads((workdir / "run.json").read_text())
    assert view.task.metric_name == "area under the ROC curve"
    assert view.task.higher_is_better is True
    assert view.task.competition_id == json.loads((workdir / "task.json").read_text())["competition_id"]
    assert view.state == "finished"
    assert view.finish_reason == "step limit reached"
    assert view.time_limit_s == 3600
    assert view.spent_s == pytest.approx(run_json["heartbeat_at"] - run_json["started_at"], abs=1.0)
    assert view.left_s == pytest.approx(3600 - view.spent_s)


def test_traces_match_the_recorded_steps(view, workdir):
    steps = _steps(workdir)
    assert [t.index for t in view.traces] == [0, 1]
    for trace in view.traces:
        own = sorted((s for s in steps if s.trace == trace.index), key=lambda s: s.step)
        assert [s.step for s in trace.steps] == [1, 2, 3, 4]
        assert trace.accepted == sum(s.accepted for s in own)
        assert trace.failed + trace.errors == sum(s.status in ("failed", "error") for s in own)
        accepted = [s for s in own if s.accepted]
        assert trace.best_score == accepted[-1].score == max(s.score for s in accepted)
        assert trace.best_step == accepted[-1].step
        assert trace.stage == own[-1].stage and trace.last_status == own[-1].status
        assert trace.llm_s == pytest.approx(sum(s.llm_s for s in own))
        assert trace.run_s == pytest.approx(sum(s.run_s for s in own))
        assert trace.overhead_s == pytest.approx(sum(s.overhead_s for s in own))
        assert trace.input_tokens == sum(s.input_tokens for s in own) > 0
        assert trace.cost_usd == pytest.approx(sum(s.cost_usd for s in own)) and trace.cost_usd > 0
        assert trace.in_progress_step is None
    failed = [s for t in view.traces for s in t.steps if s.status == "failed"]
    assert len(failed) == 1
    assert "deliberate failure" in (workdir / failed[0].code_dir / "stderr.txt").read_text()


def test_best_final_selection_and_memory(view, workdir):
    best = json.loads((workdir / "code" / "best.json").read_text())
    assert (view.best.trace, view.best.step, view.best.score) == (best["trace"], best["step"], best["score"])
    assert view.submission == workdir / "submission" / "submission.csv"
    top = max((s for s in _steps(workdir) if s.accepted), key=lambda s: s.score)
    assert view.best_overall().score == top.score
    assert view.final_selection is not None
    assert {(c.trace, c.step) for c in view.final_selection.candidates} == {
        (t.index, t.best_step) for t in view.traces}
    assert len(view.memory) == sum(s.accepted for s in _steps(workdir))
    assert INJECTION in {e.hypothesis for e in view.memory}


def test_llm_totals_by_role_and_model(view, workdir):
    calls = [json.loads(line) for line in (workdir / "llm_calls.jsonl").read_text().splitlines()]
    usage = view.usage
    assert usage.total.calls == len(calls)
    assert usage.total.input_tokens == sum(c["input_tokens"] for c in calls)
    assert usage.total.cost_usd == pytest.approx(sum(c["cost_usd"] for c in calls))
    assert usage.total.cost_usd > 0 and usage.total.unpriced == 0
    assert {"task", "draft", "gradient", "update"} <= set(usage.by_role)
    assert set(usage.by_model) == {c["model"] for c in calls} and "gpt-5-mini" in usage.by_model
    assert usage.by_role["update"].calls == sum(c["role"] == "update" for c in calls)
    assert sum(r.cost_usd for r in usage.by_model.values()) == pytest.approx(usage.total.cost_usd)


def test_summary_fits_a_screen_and_names_the_best(view):
    text = view.summary_text()
    lines = text.splitlines()
    assert len(lines) <= 40 and max(map(len, lines)) < 160
    assert fmt_score(view.best.score) in text
    assert "area under the ROC curve" in text and "finished" in text
    assert any(line.startswith("t0 ") for line in lines) and any(line.startswith("t1 ") for line in lines)
    assert "gpt-5-mini" in text


def test_loading_never_writes_to_the_folder(workdir):
    before = _snapshot(workdir)
    RunView.load(workdir).summary_text()
    assert _snapshot(workdir) == before


def test_run_in_progress_cut_mid_line(workdir, tmp_path):
    copy = tmp_path / "live"
    shutil.copytree(workdir, copy, symlinks=True)
    events = copy / "events.jsonl"
    lines = events.read_bytes().splitlines(keepends=True)
    step_lines = [i for i, line in enumerate(lines) if b'"type":"step"' in line.replace(b" ", b"")]
    cut = step_lines[4]  # four steps are whole; the fifth is being written
    events.write_bytes(b"".join(lines[:cut]) + lines[cut][: len(lines[cut]) // 2])
    heartbeat = json.loads((copy / "run.json").read_text())["heartbeat_at"]

    reader = RunReader(copy)
    live = reader.view(now=heartbeat + 5)
    assert live.state == "running"
    assert sum(len(t.steps) for t in live.traces) == 4
    assert live.skipped_lines == 0  # a line still being written is not an error
    assert live.finish_reason is None
    for trace in live.traces:  # every step folder exists in the copy; an unrecorded one is in progress
        assert trace.in_progress_step == (4 if len(trace.steps) < 4 else None)
    assert RunView.load(copy, now=heartbeat + 3600).state == "stopped"

    # The writer finishes: the same reader picks up the rest without reading from the start.
    with open(events, "ab") as f:
        f.write(lines[cut][len(lines[cut]) // 2:] + b"".join(lines[cut + 1:]))
    done = reader.view(now=heartbeat + 5)
    assert done.state == "finished"
    assert sum(len(t.steps) for t in done.traces) == 8


def test_a_line_cut_by_a_kill_is_skipped(workdir, tmp_path):
    copy = tmp_path / "killed"
    shutil.copytree(workdir, copy, symlinks=True)
    events = copy / "events.jsonl"
    lines = events.read_bytes().splitlines(keepends=True)
    step = next(i for i, line in enumerate(lines) if b'"type":"step"' in line.replace(b" ", b""))
    lines[step] = lines[step][:40] + b"\n"
    events.write_bytes(b"".join(lines))
    view = RunView.load(copy)
    assert view.skipped_lines == 1
    assert sum(len(t.steps) for t in view.traces) == 7


def test_only_events_many_traces_summary_is_capped(tmp_path):
    events = EventLog(tmp_path / "events.jsonl")
    events.write(RunStarted(version="0", competition_id="c", time_limit_s=60, traces=30))
    for trace in range(30):
        events.write(StepRecord(trace=trace, step=1, kind="draft", stage="draft", status="accepted", accepted=True,
                                score=0.5 + trace / 100, hypothesis="h", started_at="2026-01-01T00:00:00+00:00"))
    view = RunView.load(tmp_path, now=0)
    assert len(view.traces) == 30 and view.state == "running"
    assert view.task.metric_name is None and view.best is None
    text = view.summary_text()
    assert len(text.splitlines()) <= 40
    assert "and 10 more traces" in text
    assert view.best_overall() is not None  # no direction known: the latest accepted step


def test_missing_and_empty_folders_are_clear_errors(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match=str(missing)):
        RunView.load(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=f"{empty} holds no gome run"):
        RunView.load(empty)
