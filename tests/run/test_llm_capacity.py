"""Whole runs against local LLM servers: one that cuts a reply off when another request arrives
(llama-cpp-python's own server), and one that reports how many requests it serves at once
(llama.cpp's llama-server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gome_agent.bench.competitions import build_breast_cancer
from gome_agent.bench.scripted import ScriptedPolicy
from gome_agent.config import RunConfig, build_config
from gome_agent.llm.client import LLMClient
from gome_agent.llm.providers import build_provider
from gome_agent.llm.types import Message
from gome_agent.records.events import EventLog, Note, RunStarted
from gome_agent.run.coordinator import RunSummary, run
from gome_agent.views.report import write_report
from gome_agent.views.runview import RunView
from tests.fake_llm import FakeLLMServer, FakeRequest, Reply
from tests.scripted_agent import ANALYSIS


@pytest.fixture(scope="module")
def competition(tmp_path_factory):
    return build_breast_cancer(tmp_path_factory.mktemp("comp"))


def paced(delay_s: float):
    """The scripted policy's replies, each taking `delay_s` to generate."""
    policy = ScriptedPolicy(ANALYSIS, seed=0, accept_rate=0.7)

    def reply(request: FakeRequest) -> Reply:
        return Reply(text=policy([Message(role="user", content=request.text)], request.model), delay_s=delay_s)

    return reply


def config_for(workdir: Path, data: Path, fake: FakeLLMServer, **overrides: object) -> RunConfig:
    """A run's settings; `traces` is left unset unless given, as when a user does not set it."""
    values = {
        "data_dir": data, "workdir": workdir, "time_limit_s": 3600, "final_reserve_fraction": 0.0,
        "llm": {"provider": "openai-compatible", "base_url": fake.base_url_openai, "model": "fake",
                "backoff_base_s": 0.01, "backoff_max_s": 0.05, "max_attempts": 2},
        # No wait for other traces' drafts, so that the traces call the server at the same time.
        "optimizer": {"max_steps": 2, "max_debug": 0, "diversify_wait_s": 0},
        "execution": {"max_run_minutes": 1, "min_run_seconds": 1},
        "validation": {"scoring": "self-reported"},
    }
    return build_config(values, overrides)


def in_process(config: RunConfig) -> RunSummary:
    llm = LLMClient(config.llm, config.workdir / "llm_calls.jsonl", provider=build_provider(config.llm, strict=True))
    return run(config, llm=llm)


def calls_of(workdir: Path) -> list[dict]:
    return [json.loads(line) for line in (workdir / "llm_calls.jsonl").read_text().splitlines()]


def test_three_traces_on_a_server_that_cuts_replies_lose_no_call(tmp_path: Path, competition: Path) -> None:
    with FakeLLMServer(interrupting=True) as fake:
        fake.set_responder(paced(0.5))
        config = config_for(tmp_path / "run", competition, fake, traces=3)
        in_process(config)
        cut = fake.interrupted
        most_at_once = fake.max_active
    workdir = config.workdir
    calls = calls_of(workdir)
    # The server did cut replies off, each cut attempt was tried again for free, and no call failed.
    assert cut >= 1 and most_at_once >= 2
    assert sum(c["interrupted"] for c in calls) == cut
    assert [c["status"] for c in calls] == ["ok"] * len(calls)
    (state,) = (workdir / "endpoints").glob("*.json")
    assert json.loads(state.read_text())["limit"] == 1
    steps = EventLog(workdir / "events.jsonl").steps()
    assert len(steps) == 6 and {s.trace for s in steps} == {0, 1, 2}
    assert [s for s in steps if s.status == "error"] == []
    assert all(s.llm_calls >= 1 for s in steps)
    # Waiting for the server is LLM time: each step's LLM time holds its calls' whole latency, waits
    # included, and what is left as the agent's overhead is small.
    waited = 0.0
    for step in steps:
        own = [c for c in calls if c["tags"].get("trace") == step.trace and c["tags"].get("step") == step.step]
        assert len(own) == step.llm_calls
        assert step.llm_s >= sum(c["latency_s"] for c in own) - 0.01
        assert step.llm_s >= sum(c["slot_wait_s"] for c in own)
        assert step.overhead_s < 3.0, step
        waited += sum(c["slot_wait_s"] for c in own)
    assert waited >= 1.0
    assert sum(s.overhead_s for s in steps) < waited
    # The report books it so, and shows the waiting apart.
    view = RunView.load(workdir)
    for trace in view.traces:
        assert trace.llm_s == pytest.approx(sum(s.llm_s for s in trace.steps))
    assert sum(view.usage.by_trace[t].wait_s for t in range(3)) == pytest.approx(waited, abs=0.01)
    html = write_report(workdir).read_text()
    assert "of which waiting for the server" in html
    # The time to the first valid solution is in the summary and the report.
    first = view.first_valid_s
    assert first is not None and 0 < first < view.spent_s
    assert "first valid solution: " in view.summary_text() and "none yet" not in view.summary_text()
    assert 'id="first-valid">-<' not in html


def test_a_one_slot_server_gets_one_trace_unless_traces_are_set(tmp_path: Path, competition: Path) -> None:
    with FakeLLMServer(total_slots=1) as fake:
        fake.set_responder(paced(0.0))
        fitted = config_for(tmp_path / "fitted", competition, fake, optimizer={"max_steps": 1})
        in_process(fitted)
        explicit = config_for(tmp_path / "explicit", competition, fake, traces=2, optimizer={"max_steps": 1})
        in_process(explicit)
        most_at_once = fake.max_active
    assert most_at_once == 1
    # traces not set: the run fits them to the server's one slot, records it and says why.
    events = EventLog(fitted.workdir / "events.jsonl").read()
    assert next(e for e in events if isinstance(e, RunStarted)).traces == 1
    assert json.loads((fitted.workdir / "config.json").read_text())["traces"] == 1
    assert {s.trace for s in EventLog(fitted.workdir / "events.jsonl").steps()} == {0}
    notes = [e for e in events if isinstance(e, Note) and "request(s) at a time" in e.message]
    assert len(notes) == 1 and notes[0].level == "info"
    assert "serves 1 request(s) at a time" in notes[0].message
    assert "running 1 trace(s) instead of 3" in notes[0].message
    # traces set: honoured, with a note that they queue.
    events = EventLog(explicit.workdir / "events.jsonl").read()
    assert next(e for e in events if isinstance(e, RunStarted)).traces == 2
    assert {s.trace for s in EventLog(explicit.workdir / "events.jsonl").steps()} == {0, 1}
    notes = [e for e in events if isinstance(e, Note) and "request(s) at a time" in e.message]
    assert len(notes) == 1 and notes[0].level == "warning" and "2 traces set explicitly will queue" in notes[0].message
