"""End-to-end traces: real SDK clients against the fake server, real solution code, real runs."""

from __future__ import annotations

import json

import pytest

from gome_agent import jsonl
from gome_agent.bench.competitions import build_breast_cancer
from gome_agent.config import RunConfig
from gome_agent.llm.client import LLMClient
from gome_agent.llm.config import LLMConfig
from gome_agent.llm.providers import build_provider
from gome_agent.optimizer.momentum import SuccessMemory
from gome_agent.records.events import EventLog, RunFinished, StepRecord
from gome_agent.run.coordinator import run
from gome_agent.task.sample import find_sample_submission, load_sample_submission
from gome_agent.task.submission import check_submission
from tests.scripted_agent import ALL_FEATURES, DRAFT, Script, analysis_reply, edit, full, gradient


@pytest.fixture(scope="module")
def competition(tmp_path_factory):
    return build_breast_cancer(tmp_path_factory.mktemp("comp"))


def make_config(tmp_path, data, fake, *, api="chat", max_steps=4, scoring="gome", execution=None, **optimizer):
    provider = "anthropic" if api == "messages" else "openai-compatible"
    base = fake.base_url_anthropic if api == "messages" else fake.base_url_openai
    return RunConfig(
        data_dir=data, workdir=tmp_path / "run", time_limit_s=3600, traces=1, final_reserve_fraction=0.0,
        llm=LLMConfig(provider=provider, api=api, base_url=base, model="fake-model", backoff_base_s=0.01, backoff_max_s=0.05, max_attempts=3),
        optimizer={"max_steps": max_steps, "max_debug": 2, **optimizer},
        execution={"max_run_minutes": 2, "min_run_seconds": 1, **(execution or {})},
        validation={"scoring": scoring},
    )


def start(config, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key-0123456789")
    llm = LLMClient(config.llm, config.workdir / "llm_calls.jsonl", provider=build_provider(config.llm, strict=True))
    return run(config, llm=llm)


def steps_of(config) -> list[StepRecord]:
    return EventLog(config.workdir / "events.jsonl").steps()


def test_whole_trace_to_a_valid_submission(tmp_path, competition, fake_llm, monkeypatch):
    api = "chat"
    script = (
        Script()
        .add("task_analysis", analysis_reply())
        .add("draft", full(DRAFT, "logistic regression on one feature"))
        .add("gradient",
             gradient("Use all thirty features instead of one"),
             gradient("Keep only the texture feature and drop the rest"),
             gradient("Use balanced class weights"))
        .add("update",
             edit('FEATURES = ["mean_texture"]', ALL_FEATURES, "use every feature"),
             edit(ALL_FEATURES, 'FEATURES = ["mean_smoothness"]', "one weak feature"),
             edit("LogisticRegression(max_iter=2000)", 'LogisticRegression(max_iter=2000, class_weight="balanced")'))
    )
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, api=api)
    summary = start(config, monkeypatch)

    records = steps_of(config)
    assert [r.kind for r in records] == ["draft", "improve", "improve", "improve"]
    assert [r.status for r in records][:3] == ["accepted", "accepted", "rejected"]
    draft, better, worse, last = records
    assert better.gain is not None and better.gain > 0.05
    assert better.score > draft.score and worse.score < better.score
    assert worse.best_before == better.score and not worse.accepted
    assert better.hypothesis == "Use all thirty features instead of one"
    assert better.gradient is not None and better.ranking and better.limiting_problem

    # The best is in place and it is the best validation score seen.
    best_score = max(r.score for r in records if r.accepted)
    assert summary.best_score == pytest.approx(best_score)
    sample = load_sample_submission(find_sample_submission(competition))
    assert check_submission(config.workdir / "submission" / "submission.csv", sample) == []
    info = json.loads((config.workdir / "code" / "best.json").read_text())
    assert info["score"] == pytest.approx(best_score)
    best_record = next(r for r in records if r.accepted and r.score == best_score)
    assert (config.workdir / "code" / "main.py").read_text() == (config.workdir / best_record.code_dir / "main.py").read_text()

    # Roll back: after the rejected step, the update edits the best code, not the rejected one.
    last_update = script.prompts("update")[-1]
    assert ALL_FEATURES in last_update and 'FEATURES = ["mean_smoothness"]' not in last_update
    # The rejected step's lesson reaches the next diagnosis.
    assert "Keep only the texture feature" in script.prompts("gradient")[-1]
    assert "[rejected]" in script.prompts("gradient")[-1]

    # Momentum: each accepted step is in the success memory.
    entries = SuccessMemory(config.workdir / "memory").entries()
    assert {(e.trace, e.step) for e in entries} == {(0, r.step) for r in records if r.accepted}

    # Every LLM call is logged with its role; the run ends with a summary.
    calls = list(jsonl.iter_raw(config.workdir / "llm_calls.jsonl"))
    assert [c["role"] for c in calls][:2] == ["task", "draft"]
    assert all(c["status"] == "ok" and c["api"] == api for c in calls)
    finished = [e for e in EventLog(config.workdir / "events.jsonl").read() if isinstance(e, RunFinished)]
    assert finished[-1].reason == "step limit reached" and finished[-1].steps == 4
    assert finished[-1].usage["calls"] == len(calls)
    assert json.loads((config.workdir / "task.json").read_text())["metric_name"] == "area under the ROC curve"
    assert "sk-ant-test-key-0123456789" not in "".join(p.read_text(errors="ignore") for p in config.workdir.rglob("*.json*"))


def test_failing_code_is_debugged_with_the_error(tmp_path, competition, fake_llm, monkeypatch):
    broken = DRAFT.replace('train["target"]', 'train["label"]')
    script = (
        Script()
        .add("task_analysis", analysis_reply())
        .add("draft", full(broken))
        .add("debug", edit('train["label"]', 'train["target"]', "use the right target column"))
    )
    fake_llm.set_responder(script)
    # Neither caught by the static checks nor by a smoke run: the full run fails and is debugged.
    config = make_config(tmp_path, competition, fake_llm, max_steps=1,
                         execution={"static_checks": False, "smoke": {"enabled": False}})
    start(config, monkeypatch)
    [record] = steps_of(config)
    assert record.status == "accepted" and record.runs == 2 and record.smoke_runs == 0
    debug_prompt = script.prompts("debug")[0]
    assert "KeyError" in debug_prompt and "exited with code" in debug_prompt
    assert record.code_dir.endswith("a1")


def test_edits_that_do_not_apply_are_re_asked_once(tmp_path, competition, fake_llm, monkeypatch):
    script = (
        Script()
        .add("task_analysis", analysis_reply())
        .add("draft", full(DRAFT))
        .add("gradient", gradient("Use all thirty features instead of one"))
        .add("update", edit("FEATURES = ['nothing']", ALL_FEATURES), edit('FEATURES = ["mean_texture"]', ALL_FEATURES))
    )
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=2)
    start(config, monkeypatch)
    records = steps_of(config)
    assert records[1].status == "accepted"
    second_update = script.prompts("update")[1]
    assert "does not match main.py exactly" in second_update


@pytest.mark.parametrize("api", ["responses", "messages"])
def test_trace_runs_through_the_other_apis(tmp_path, competition, fake_llm, monkeypatch, api):
    script = (
        Script()
        .add("task_analysis", analysis_reply())
        .add("draft", full(DRAFT))
        .add("gradient", gradient("Use all thirty features instead of one"))
        .add("update", edit('FEATURES = ["mean_texture"]', ALL_FEATURES))
    )
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, api=api, max_steps=2)
    summary = start(config, monkeypatch)
    assert [r.status for r in steps_of(config)] == ["accepted", "accepted"]
    assert {r.api for r in fake_llm.requests} == {api}
    assert summary.best_score is not None and summary.best_score > 0.9
