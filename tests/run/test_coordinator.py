"""Multi-trace runs: diversification, shared momentum, stages, ablations, the budget ending mid-step.

Crash restart, resume and stop are fault tests: tests/faults/test_process.py.
"""

from __future__ import annotations

import json
import time

import pytest

from gome_agent.bench.competitions import build_breast_cancer
from gome_agent.bench.scripted import ScriptedPolicy
from gome_agent.config import RunConfig, build_config
from gome_agent.llm.client import LLMClient
from gome_agent.llm.config import LLMConfig
from gome_agent.llm.providers import build_provider
from gome_agent.llm.types import Message
from gome_agent.optimizer.momentum import SuccessMemory
from gome_agent.records import runinfo
from gome_agent.records.events import DraftApproach, EventLog, RunStarted
from gome_agent.run.coordinator import run
from gome_agent.run.worker import build_trace
from gome_agent.task.sample import find_sample_submission, load_sample_submission
from gome_agent.task.submission import check_submission
from tests.fake_llm import FakeRequest
from tests.scripted_agent import ANALYSIS


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
        "validation": {"scoring": "self-reported"},  # the scripted solutions' scores drive the runs
    }
    return build_config(values, overrides)


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
    # The benchmark layout <id>/public is named by <id>.
    started = next(e for e in events.read() if isinstance(e, RunStarted))
    assert started.competition_id == competition.parent.name != "public"
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
