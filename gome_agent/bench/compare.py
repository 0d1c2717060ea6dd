"""`gome bench run`: strategies compared on the offline benchmark, graded with MLE-bench's medal rule.

For every competition, strategy and seed, one run with the same model, budget
and settings (only `strategy` and `seed` differ); each submission is graded
against the private answers and the competition's leaderboard. The summary per
strategy gives the valid-submission, above-median and any-medal rates and the
mean normalized score, each as mean and standard error across seeds (as
MLE-bench aggregates its leaderboard).

The peer `aide` (bench/peers.py) runs AIDE from its own virtual environment on the same
competitions with the same model, base URL and budget; its submission is graded the same way.

Normalized score: 0 for the sample submission's score (a constant guess), 1 for
the leaderboard's best score, linear in between by the metric's direction
(above 1 beats the whole leaderboard); an invalid submission counts 0.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from gome_agent import jsonl
from gome_agent.bench.competitions import Competition
from gome_agent.bench.grading import CompetitionReport, grade_csv, read_leaderboard, score_csv
from gome_agent.bench.peers import (
    AIDE,
    DEFAULT_AIDE_VENV,
    RUN_RECORD,
    PeerRunRecord,
    aide_llm_variables,
    ensure_aide_venv,
    run_aide,
)
from gome_agent.bench.prepare import load_competition
from gome_agent.config import RunConfig
from gome_agent.errors import ConfigError, TaskError
from gome_agent.llm.config import LLMConfig
from gome_agent.records.events import EventLog
from gome_agent.run.coordinator import run
from gome_agent.strategies import STRATEGIES
from gome_agent.views.runview import RunView

log = logging.getLogger(__name__)


class RunResult(BaseModel):
    competition_id: str
    strategy: str
    seed: int
    workdir: str
    report: dict[str, Any]
    normalized_score: float
    steps: int
    reason: str


def normalized(report: CompetitionReport, baseline: float, best: float) -> float:
    """0 at the constant-guess baseline, 1 at the leaderboard's best; invalid submissions 0."""
    if report.score is None or not math.isfinite(report.score) or best == baseline:
        return 0.0
    return (report.score - baseline) / (best - baseline)


def score_range(competition: Competition) -> tuple[float, float]:
    """(constant-guess score, leaderboard's best score): the 0 and 1 of the normalized score."""
    baseline = score_csv(competition.sample_path, competition)
    best = float(read_leaderboard(competition.leaderboard_path)["score"].iloc[0])
    return baseline, best


def _sem(values: list[float]) -> float:
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0


def summarize(results: list[RunResult]) -> dict[str, dict[str, Any]]:
    """Per strategy: rates over competitions for each seed, then mean and SEM across seeds."""
    summary: dict[str, dict[str, Any]] = {}
    for strategy in sorted({r.strategy for r in results}):
        mine = [r for r in results if r.strategy == strategy]
        seeds = sorted({r.seed for r in mine})
        per_seed: dict[str, list[float]] = {"valid_submission": [], "above_median": [], "any_medal": [],
                                            "normalized_score": []}
        for seed in seeds:
            rows = [r for r in mine if r.seed == seed]
            for key in ("valid_submission", "above_median", "any_medal"):
                per_seed[key].append(100.0 * sum(bool(r.report[key]) for r in rows) / len(rows))
            per_seed["normalized_score"].append(statistics.fmean(r.normalized_score for r in rows))
        summary[strategy] = {
            "runs": len(mine),
            "seeds": len(seeds),
            "competitions": len({r.competition_id for r in mine}),
            **{key: {"mean": round(statistics.fmean(v), 3), "sem": round(_sem(v), 3)} for key, v in per_seed.items()},
        }
    return summary


def table(summary: dict[str, dict[str, Any]]) -> str:
    """The summary as a Markdown table."""
    lines = ["| strategy | runs | valid submission % | above median % | any medal % | mean normalized score |",
             "|---|---|---|---|---|---|"]
    for strategy, row in summary.items():
        cells = [f"{row[k]['mean']:.1f} ± {row[k]['sem']:.1f}" for k in ("valid_submission", "above_median", "any_medal")]
        cells.append(f"{row['normalized_score']['mean']:.3f} ± {row['normalized_score']['sem']:.3f}")
        lines.append(f"| {strategy} | {row['runs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


class RunDetail(BaseModel):
    """What one run's folder says beyond its grade: who wrote the submission, when the first valid
    solution came, and how many accepted steps improved on one (the #14 measures)."""

    competition_id: str
    strategy: str
    seed: int
    valid: bool
    model_written: bool  # the submission came from the model's code, not gome's fallback (or no file at all)
    source: str  # gome: step / final_selection / refit / fallback; aide: its own record; "none"
    steps: int
    improvements: int | None  # accepted steps that beat an earlier valid solution (None: not known for a peer)
    first_valid_s: float | None
    score: float | None
    normalized_score: float


def run_detail(result: RunResult) -> RunDetail:
    """The details of a finished benchmark run, read from its folder."""
    workdir = Path(result.workdir)
    valid = bool(result.report.get("valid_submission"))
    common = {"competition_id": result.competition_id, "strategy": result.strategy, "seed": result.seed,
              "valid": valid, "steps": result.steps, "score": result.report.get("score"),
              "normalized_score": result.normalized_score}
    peer = workdir / RUN_RECORD
    if result.strategy == AIDE or peer.is_file():
        record = PeerRunRecord.model_validate_json(peer.read_text(encoding="utf-8")) if peer.is_file() else None
        source = record.submission_source if record is not None else "none"
        return RunDetail(**common, model_written=valid, source=source, improvements=None, first_valid_s=None)
    try:
        view = RunView.load(workdir)
    except ConfigError:  # no run folder left (moved, or the run never started): nothing says who wrote it
        return RunDetail(**common, model_written=False, source="unknown", improvements=None, first_valid_s=None)
    best = view.best
    source = best.source if best is not None else "none"
    improvements = sum(1 for t in view.traces for step in t.steps if step.accepted and step.gain is not None)
    return RunDetail(**common, model_written=valid and source not in ("fallback", "none"), source=source,
                     improvements=improvements, first_valid_s=view.first_valid_s)


def details_table(details: list[RunDetail]) -> str:
    """Per competition and strategy, as Markdown."""
    lines = ["| competition | strategy | seed | valid | model-written | source | steps | improvements after the first "
             "valid | first valid | score | normalized |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for d in sorted(details, key=lambda d: (d.competition_id, d.strategy, d.seed)):
        first = f"{d.first_valid_s / 60:.1f} min" if d.first_valid_s is not None else "-"
        score = f"{d.score:.4g}" if d.score is not None else "-"
        improvements = "n/a" if d.improvements is None else str(d.improvements)
        lines.append(f"| {d.competition_id} | {d.strategy} | {d.seed} | {'yes' if d.valid else 'no'} | "
                     f"{'yes' if d.model_written else 'no'} | {d.source} | {d.steps} | {improvements} | {first} | "
                     f"{score} | {d.normalized_score:.3f} |")
    per_strategy = sorted({d.strategy for d in details})
    lines.append("")
    lines.append("| strategy | runs | model-written valid | with an accepted improvement |")
    lines.append("|---|---|---|---|")
    for strategy in per_strategy:
        mine = [d for d in details if d.strategy == strategy]
        written = [d for d in mine if d.model_written]
        improved = "n/a" if all(d.improvements is None for d in mine) else str(sum(bool(d.improvements) for d in written))
        lines.append(f"| {strategy} | {len(mine)} | {len(written)} | {improved} |")
    return "\n".join(lines)


def summarize_folder(out: Path) -> tuple[dict[str, dict[str, Any]], list[RunDetail]]:
    """The summary and the per-run details of a results folder, written next to its results."""
    results = [RunResult.model_validate(r) for r in jsonl.iter_raw(out / "results.jsonl")]
    if not results:
        raise ConfigError(f"{out / 'results.jsonl'} holds no results (run gome bench run --out {out} first)")
    summary = summarize(results)
    details = [run_detail(r) for r in results]
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (out / "summary.md").write_text(table(summary) + "\n\n" + details_table(details) + "\n", encoding="utf-8")
    jsonl.write_json(out / "details.json", [d.model_dump() for d in details])
    return summary, details


def _max_run_s(base: dict[str, Any], time_limit_s: float) -> float:
    """The longest single run of a solution, by gome's own rule (its AIDE counterpart is `exec.timeout`)."""
    minutes = base.get("execution", {}).get("max_run_minutes")
    return float(minutes) * 60 if minutes is not None else min(3600.0, time_limit_s / 4)


def compare(
    *,
    data_dir: Path,
    out: Path,
    competitions: list[str],
    strategies: list[str],
    seeds: int,
    llm: LLMConfig,
    time_limit_s: float,
    base: dict[str, Any] | None = None,
    aide_venv: Path = DEFAULT_AIDE_VENV,
) -> dict[str, Any]:
    """Run every (competition, strategy, seed) that has no result yet, then summarize all results.

    `aide` among the strategies runs AIDE from `aide_venv` (installed there first if it is not).
    """
    unknown = [s for s in strategies if s not in STRATEGIES and s != AIDE]
    if unknown:
        raise ConfigError(f"unknown strategy {', '.join(unknown)} (known: {', '.join([*STRATEGIES, AIDE])})")
    base = base or {}
    results_path = out / "results.jsonl"
    done = {(r["competition_id"], r["strategy"], r["seed"]): RunResult.model_validate(r)
            for r in jsonl.iter_raw(results_path)}
    if AIDE in strategies and any((c, AIDE, seed) not in done for c in competitions for seed in range(seeds)):
        # Settings AIDE cannot follow, and an install that fails, stop the benchmark before any run.
        aide_llm_variables(llm)
        ensure_aide_venv(aide_venv)
    for competition_id in competitions:
        competition = load_competition(data_dir, competition_id)
        baseline, best = score_range(competition)
        for seed in range(seeds):
            for strategy in strategies:
                key = (competition_id, strategy, seed)
                if key in done:
                    continue
                workdir = out / "runs" / competition_id / strategy / f"seed{seed}"
                log.info("benchmark run: %s, %s, seed %d", competition_id, strategy, seed)
                if strategy == AIDE:
                    peer = run_aide(aide=ensure_aide_venv(aide_venv), competition=competition, llm=llm, workdir=workdir,
                                    time_limit_s=time_limit_s, max_run_s=_max_run_s(base, time_limit_s), seed=seed)
                    steps, reason = peer.steps, peer.reason
                else:
                    execution = dict(base.get("execution", {}))
                    execution["hidden_paths"] = [*execution.get("hidden_paths", []),
                                                 *competition.hidden_from_solutions()]
                    values = {
                        **base,
                        "data_dir": competition.public_dir, "workdir": workdir, "time_limit_s": time_limit_s,
                        "strategy": strategy, "seed": seed, "llm": llm, "execution": execution,
                    }
                    try:
                        ours = run(RunConfig.model_validate(values))
                        steps, reason = ours.steps, ours.reason
                    except TaskError as exc:
                        # A run that stops (a task the model cannot read) is a failed run of the benchmark,
                        # graded on what it left (its fallback), not the end of the benchmark.
                        log.warning("benchmark run %s, %s, seed %d stopped: %s", competition_id, strategy, seed, exc)
                        steps, reason = len(EventLog(workdir / "events.jsonl").steps()), f"stopped: {exc}"
                report = grade_csv(workdir / "submission" / "submission.csv", competition)
                result = RunResult(
                    competition_id=competition_id, strategy=strategy, seed=seed, workdir=str(workdir),
                    report=report.to_dict(),
                    normalized_score=normalized(report, baseline, best),
                    steps=steps, reason=reason,
                )
                jsonl.append(results_path, result)
                done[key] = result
    summary, _ = summarize_folder(out)
    return summary
