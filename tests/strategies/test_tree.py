"""The tree-search baseline: drafts, debugging buggy leaves, improving the best node by score."""

from __future__ import annotations

import pytest

from gome_agent.bench.competitions import build_breast_cancer
from gome_agent.config import RunConfig
from gome_agent.llm.client import LLMClient
from gome_agent.llm.config import LLMConfig
from gome_agent.llm.providers import build_provider
from gome_agent.records.events import EventLog
from gome_agent.run.coordinator import run
from tests.scripted_agent import ALL_FEATURES, DRAFT, Script, analysis_reply, edit, full


@pytest.fixture(scope="module")
def competition(tmp_path_factory):
    return build_breast_cancer(tmp_path_factory.mktemp("comp"))


def test_tree_search_drafts_debugs_and_improves_the_best_node(tmp_path, competition, fake_llm):
    broken = DRAFT.replace('train["target"]', 'train["label"]')
    script = (
        Script()
        .add("task_analysis", analysis_reply())
        .add("draft", full(broken, "broken draft"), full(DRAFT, "working draft"))
        .add("debug", edit('train["label"]', 'train["target"]', "use the target column"))
        .add("direct", edit('FEATURES = ["mean_texture"]', ALL_FEATURES, "use every feature"))
    )
    fake_llm.set_responder(script)
    config = RunConfig(
        data_dir=competition, workdir=tmp_path / "run", time_limit_s=3600, traces=1, strategy="tree",
        final_reserve_fraction=0.0,
        llm=LLMConfig(provider="openai-compatible", base_url=fake_llm.base_url_openai, model="m"),
        optimizer={"max_steps": 4, "max_debug": 3}, tree={"num_drafts": 2, "debug_prob": 1.0},
        execution={"min_run_seconds": 1},
    )
    llm = LLMClient(config.llm, config.workdir / "llm_calls.jsonl", provider=build_provider(config.llm, strict=True))
    summary = run(config, llm=llm)
    steps = EventLog(config.workdir / "events.jsonl").steps()
    assert [(s.kind, s.status) for s in steps] == [
        ("draft", "failed"), ("draft", "accepted"), ("debug", "rejected"), ("improve", "accepted")]
    # One run per node: debugging is a node of its own, not a loop inside a step. The broken draft's
    # column never ran: the static check stopped it, and the debug node sees what it found.
    assert [(s.runs, s.smoke_runs, s.static_fixes) for s in steps] == [(0, 0, 0), (1, 1, 0), (1, 1, 0), (1, 1, 0)]
    assert steps[0].static_problems == ["line 11: column 'label' is not a column of train.csv"]
    assert steps[2].parent_step == 1 and steps[3].parent_step == 2
    assert "- line 11: column 'label' is not a column of train.csv" in script.prompts("debug")[0]
    # The improvement starts from the best node's code.
    assert 'FEATURES = ["mean_texture"]' in script.prompts("direct")[0]
    assert not script.prompts("gradient")
    assert summary.best_score == pytest.approx(steps[3].score)
