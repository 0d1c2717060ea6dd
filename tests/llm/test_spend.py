"""Caps of a run's LLM spend (llm/spend.py): counted from the run's call log, across processes;
a real run (real SDK client, fake server) that reaches its cap stops its traces, still selects and
submits, and records why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gome_agent import jsonl
from gome_agent.bench.competitions import build_breast_cancer
from gome_agent.cli import _run_overrides, build_parser
from gome_agent.config import build_config
from gome_agent.errors import ConfigError, SpendCapReached
from gome_agent.llm.client import LLMClient
from gome_agent.llm.config import LLMConfig, Price
from gome_agent.llm.providers import build_provider
from gome_agent.llm.spend import CallsLogTotals
from gome_agent.llm.types import Message
from gome_agent.mlebench.container import container_config
from gome_agent.records.events import EventLog, RunFinished, SpendCapped
from gome_agent.task.sample import find_sample_submission, load_sample_submission
from gome_agent.task.submission import check_submission
from gome_agent.views.report import write_report
from gome_agent.views.runview import RunView
from tests.fake_llm import Reply
from tests.scripted_agent import DRAFT, Script, analysis_reply, full, gradient
from tests.strategies.test_trace import make_config, start, steps_of

HELLO = [Message(role="user", content="hello")]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def competition(tmp_path_factory):
    return build_breast_cancer(tmp_path_factory.mktemp("comp"))


def client(fake, tmp_path, **caps) -> LLMClient:
    config = LLMConfig(provider="openai-compatible", base_url=fake.base_url_openai, model="fake-model",
                       max_attempts=1, **caps)
    return LLMClient(config, tmp_path / "llm_calls.jsonl", provider=build_provider(config, strict=True))


def test_the_log_is_read_incrementally_and_a_half_written_line_waits(tmp_path):
    log = tmp_path / "llm_calls.jsonl"
    totals = CallsLogTotals(log)
    assert totals.totals().tokens == 0  # no log yet
    jsonl.append(log, {"input_tokens": 10, "output_tokens": 5, "cost_usd": 0.5})
    with open(log, "a") as f:
        f.write('{"input_tokens": 1000')  # another process is writing this line
    first = totals.totals()
    assert (first.tokens, first.cost_usd) == (15, 0.5)
    with open(log, "a") as f:
        f.write(', "output_tokens": 0, "cost_usd": null}\n')
    jsonl.append(log, {"input_tokens": 1, "output_tokens": 1, "cost_usd": 0.25})
    second = totals.totals()
    assert (second.tokens, second.cost_usd) == (1017, 0.75)


def test_a_token_cap_counts_every_process_of_the_run(tmp_path, fake_llm):
    fake_llm.set_responder(lambda request: Reply(text="hi", input_tokens=60, output_tokens=40))
    mine = client(fake_llm, tmp_path, max_run_tokens=250)
    mine.complete(HELLO, role="draft")
    # Another process of the run (a trace) logs its calls in the same file.
    jsonl.append(tmp_path / "llm_calls.jsonl", {"input_tokens": 100, "output_tokens": 0})
    assert mine.spend_capped() is None  # 200 of 250
    mine.complete(HELLO, role="draft")  # under the cap when sent; 300 after
    before = len(fake_llm.requests)
    with pytest.raises(SpendCapReached, match=r"used 300 tokens, reaching its cap of 250 \(llm.max_run_tokens\)"):
        mine.complete(HELLO, role="draft")
    assert len(fake_llm.requests) == before  # no request was sent


def test_a_dollar_cap_uses_the_prices_and_needs_one_for_every_model(tmp_path, fake_llm):
    fake_llm.set_responder(lambda request: Reply(text="hi", input_tokens=1_000_000, output_tokens=0))
    priced = client(fake_llm, tmp_path, max_run_cost_usd=1.5, prices={"fake-model": Price(input_per_mtok=1.0,
                                                                                         output_per_mtok=2.0)})
    priced.complete(HELLO, role="draft")
    priced.complete(HELLO, role="draft")
    assert "cost $2.0000, reaching its cap of $1.50 (llm.max_run_cost_usd)" in (priced.spend_capped() or "")
    with pytest.raises(ConfigError, match="price of the model 'cheap-local' is unknown"):
        client(fake_llm, tmp_path, max_run_cost_usd=1.0, role_models={"debug": "cheap-local"},
               prices={"fake-model": Price(input_per_mtok=1.0, output_per_mtok=2.0)})


def test_caps_are_flags_of_gome_run_and_gome_mlebench(tmp_path):
    parser = build_parser()
    args = parser.parse_args(["run", "--data-dir", str(tmp_path), "--workdir", str(tmp_path / "out"),
                              "--max-run-cost-usd", "12.5", "--max-run-tokens", "1000000"])
    config = build_config({}, _run_overrides(args))
    assert (config.llm.max_run_cost_usd, config.llm.max_run_tokens) == (12.5, 1_000_000)
    args = parser.parse_args(["mlebench", "--max-run-cost-usd", "300"])
    assert args.max_run_cost_usd == 300
    with pytest.raises(ConfigError, match="max_run_tokens"):
        build_config({"llm": {"max_run_tokens": 0}}, {"data_dir": tmp_path, "workdir": tmp_path / "out"})


def test_agent_yaml_caps_the_spend_of_every_agent_id(tmp_path, competition):
    env = {"GOME_MLEBENCH_HOME": str(tmp_path), "GOME_DATA_DIR": str(competition), "COMPETITION_ID": "breast-cancer",
           "TIME_LIMIT_SECS": "43200"}
    agents = yaml.safe_load((ROOT / "agent.yaml").read_text())
    caps = {}
    for agent_id, entry in agents.items():
        if agent_id == "vars":
            continue
        # The kwargs as MLE-bench's agents/run.py renders them for kwargs_type argparse.
        argv = [a for k, v in entry["kwargs"].items() for a in (f"--{k}", str(v))]
        config, _ = container_config(build_parser().parse_args(["mlebench", *argv]), env)
        caps[agent_id] = config.llm.max_run_cost_usd
    assert caps.pop("gome/dev") == 5 and set(caps.values()) == {300}


def test_a_run_that_reaches_its_token_cap_stops_and_still_submits(tmp_path, competition, fake_llm, monkeypatch):
    tokens = {"input_tokens": 100, "output_tokens": 100}
    script = (
        Script()
        .add("task_analysis", Reply(text=analysis_reply(), **tokens))  # 200 tokens
        .add("draft", Reply(text=full(DRAFT), **tokens))  # 400: under the cap, step 2 starts
        .add("gradient", Reply(text=gradient("Use all thirty features instead of one"), **tokens))  # 600
    )
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=5)
    config = config.model_copy(update={"llm": config.llm.model_copy(update={"max_run_tokens": 500})})
    summary = start(config, monkeypatch)

    first, second = steps_of(config)
    assert first.status == "accepted"
    assert second.status == "error" and "LLM spend cap reached" in second.message
    assert "600 tokens, reaching its cap of 500 (llm.max_run_tokens)" in second.message
    assert not script.prompts("update")  # the step's next call was never sent, and no step followed
    calls = list(jsonl.iter_raw(config.workdir / "llm_calls.jsonl"))
    assert [c["role"] for c in calls] == ["task", "draft", "gradient"]

    events = EventLog(config.workdir / "events.jsonl").read()
    [capped] = [e for e in events if isinstance(e, SpendCapped)]
    assert "reaching its cap of 500" in capped.message
    finished = [e for e in events if isinstance(e, RunFinished)][-1]
    assert finished.reason == f"LLM spend cap reached: {capped.message}" == summary.reason
    # The run still ended with its best: the refit of step 1 (or step 1's own) submission, valid.
    sample = load_sample_submission(find_sample_submission(competition))
    assert check_submission(config.workdir / "submission" / "submission.csv", sample) == []
    best = json.loads((config.workdir / "code" / "best.json").read_text())
    assert (best["trace"], best["step"]) == (0, 1)
    assert f"spend cap reached, no new steps: {capped.message}" in RunView.load(config.workdir).summary_text()
    assert "Spend cap reached: " in write_report(config.workdir).read_text()
