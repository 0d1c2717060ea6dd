"""`gome demo`: the whole agent on a fresh machine, no API key.

Prepares one small offline competition, prepares and starts the local model
(llama.cpp with verified Qwen2.5-Coder weights), runs Gome on it for a few
minutes, grades the submission with MLE-bench's medal rule, and says where the
run folder and the reports are.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from gome_agent import jsonl
from gome_agent.bench.grading import CompetitionReport, grade_csv
from gome_agent.bench.prepare import load_competition, prepare
from gome_agent.config import ExecutionConfig, RunConfig
from gome_agent.errors import GomeError
from gome_agent.llm.config import LLMConfig
from gome_agent.llm.local import prepare_local_llm, start_server
from gome_agent.run.coordinator import RunSummary, run
from gome_agent.views.report import write_report

log = logging.getLogger(__name__)

DEMO_COMPETITION = "breast-cancer"


@dataclass
class DemoResult:
    summary: RunSummary
    report: CompetitionReport
    report_path: Path
    html_report: Path | None


def demo(out: Path, *, time_limit_s: float = 300.0, model: str = "qwen2.5-coder-1.5b",
         competition_id: str = DEMO_COMPETITION, traces: int = 1) -> DemoResult:
    data = out / "data"
    prepare(data, only=[competition_id])
    competition = load_competition(data, competition_id)
    log.info("preparing the local model %s (built and downloaded once, then cached)", model)
    binary, weights = prepare_local_llm(model)
    with start_server(binary, weights, log_path=out / "llama-server.log") as server:
        config = RunConfig(
            data_dir=competition.public_dir, workdir=out / "run", time_limit_s=time_limit_s, traces=traces,
            llm=LLMConfig(provider="openai-compatible", base_url=server.base_url_openai, model=server.model,
                          max_output_tokens=2048, request_timeout_s=300),
            execution=ExecutionConfig(hidden_paths=competition.hidden_from_solutions()),
        )
        summary = run(config)
    report = grade_csv(config.workdir / "submission" / "submission.csv", competition)
    report_path = out / "grading_report.json"
    jsonl.write_json(report_path, report.to_dict())
    try:
        html = write_report(config.workdir)
    except GomeError as exc:
        log.warning("no HTML report: %s", exc)
        html = None
    return DemoResult(summary=summary, report=report, report_path=report_path, html_report=html)
