"""The real-LLM tier: the whole agent against a real local model (llama.cpp, Qwen2.5-Coder-0.5B).

Run by scripts/real_llm_tier.sh (`pytest -m real_llm`), not by the default suite. The
model is far too small to solve anything reliably, so the assertions are about the path:
the real server answers the real SDK, the run goes through task analysis, drafting and
its records, and ends with a valid submission that the benchmark grades.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from gome_agent.bench.grading import grade_csv
from gome_agent.bench.prepare import load_competition, prepare
from gome_agent.config import RunConfig
from gome_agent.llm.config import LLMConfig
from gome_agent.llm.local import prepare_local_llm, start_server
from gome_agent.records.best import BestKeeper
from gome_agent.records.events import EventLog, RunFinished
from gome_agent.run.coordinator import run
from gome_agent.views.progress import headline
from gome_agent.views.progress import table as progress_table
from gome_agent.views.report import write_report
from gome_agent.views.runview import RunView
from gome_agent.views.traces_io import export_traces, import_traces

pytestmark = pytest.mark.real_llm


def test_short_run_against_the_local_model_ends_graded(tmp_path, request):
    if "real_llm" not in (request.config.option.markexpr or ""):
        pytest.skip("real-LLM tier: run with -m real_llm (scripts/real_llm_tier.sh)")
    data = tmp_path / "bench"
    prepare(data, only=["breast-cancer"], leaderboard_scale=0.2)
    competition = load_competition(data, "breast-cancer")
    binary, weights = prepare_local_llm("qwen2.5-coder-0.5b")
    with start_server(binary, weights, log_path=tmp_path / "server.log") as server:
        config = RunConfig(
            data_dir=competition.public_dir, workdir=tmp_path / "run", time_limit_s=240, traces=1,
            final_reserve_fraction=0.0,
            llm=LLMConfig(provider="openai-compatible", base_url=server.base_url_openai, model=server.model,
                          max_output_tokens=1536, request_timeout_s=180),
            execution={"min_run_seconds": 10},
        )
        summary = run(config)
    if os.environ.get("GOME_TIER_KEEP"):
        # The run folder outlives pytest's temporary directories, to read why a run ended where it did.
        shutil.copytree(config.workdir, os.environ["GOME_TIER_KEEP"], dirs_exist_ok=True)
    events = EventLog(config.workdir / "events.jsonl")
    calls = [json.loads(line) for line in (config.workdir / "llm_calls.jsonl").read_text().splitlines()]
    assert calls and calls[0]["role"] == "task" and calls[0]["status"] == "ok"
    assert any(e for e in events.read() if isinstance(e, RunFinished))
    assert summary.submission is not None
    report = grade_csv(summary.submission, competition)
    assert report.valid_submission and report.score is not None
    (tmp_path / "grading_report.json").write_text(json.dumps(report.to_dict()))
    # Whether the model wrote what is submitted (a step, the final choice or its refit) or gome's fallback;
    # the tier script prints this line.
    best = BestKeeper(config.workdir, higher_is_better=True).current()
    steps = events.steps()
    written = "fallback" if best is None or best.source == "fallback" else "model-written"
    line = (f"final submission: {written} (source {best.source if best else None}, score {report.score:.4f}, "
            f"{len(steps)} steps, {sum(s.accepted for s in steps)} accepted)")
    if os.environ.get("GOME_TIER_REPORT"):
        Path(os.environ["GOME_TIER_REPORT"]).write_text(line + "\n", encoding="utf-8")

    # Seeing the run: progress, status, the HTML report, and the released-traces layout both ways.
    view = RunView.load(config.workdir)
    assert view.state == "finished" and "breast-cancer" in view.summary_text()
    out = io.StringIO()
    Console(file=out, width=160).print(progress_table(view))
    assert "t0" in out.getvalue() and f"{len(calls)} LLM calls" in headline(view)
    html = write_report(config.workdir)
    assert html.is_file() and (html.parent / "trajectory.png").is_file()
    exported = export_traces(config.workdir, tmp_path / "traces.json")
    [imported] = import_traces(exported, tmp_path / "imported")
    assert len(RunView.load(imported).steps()) == len(view.steps())
