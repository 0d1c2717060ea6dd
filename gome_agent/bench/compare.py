"""`gome bench run`: strategies compared on the offline benchmark, graded with MLE-bench's medal rule.

For every competition, model, strategy and seed, one run with the same budget and settings;
each submission is graded against the private answers and the competition's leaderboard. The
runs are a sweep (bench/sweep.py), executed on this machine or a Ray cluster
(bench/executors.py) and resumable. The summary per strategy (and per model and strategy) gives
the valid-submission, above-median and any-medal rates and the mean normalized score, each as
mean and standard error across seeds by MLE-bench's reporting rule: at least 3 seeds, and a run
missing from a seed (never run, or still running) counted as a failure, which the summary says.

The peer `aide` (bench/peers.py) runs AIDE from its own virtual environment on the same
competitions with the same model, base URL and budget; its submission is graded the same way.

Normalized score: 0 for the sample submission's score (a constant guess), 1 for
the leaderboard's best score, linear in between by the metric's direction
(above 1 beats the whole leaderboard); an invalid submission counts 0.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from gome_agent import jsonl
from gome_agent.bench.executors import LocalExecutor
from gome_agent.bench.peers import AIDE, DEFAULT_AIDE_VENV, RUN_RECORD, PeerRunRecord
from gome_agent.bench.sweep import (
    RESULTS,
    Executor,
    PlannedRun,
    RunResult,
    SweepOutcome,
    SweepSpec,
    expand,
    read_results,
    read_sweep_record,
    run_sweep,
)
from gome_agent.errors import ConfigError
from gome_agent.llm.config import LLMConfig
from gome_agent.views.runview import RunView

MIN_SEEDS = 3  # MLE-bench's rule: report mean and standard error over at least 3 seeds
RATES = ("valid_submission", "above_median", "any_medal")
UNKNOWN_MODEL = "(not recorded)"


def _sem(values: list[float]) -> float:
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0


def padded_seeds(seeds: set[int], min_seeds: int = MIN_SEEDS) -> list[int]:
    """The seeds a summary averages over: `seeds`, and the lowest missing ones up to `min_seeds`."""
    seeds = set(seeds)
    candidate = 0
    while len(seeds) < min_seeds:
        seeds.add(candidate)
        candidate += 1
    return sorted(seeds)


def _row(group: list[RunResult], models: list[str], competitions: list[str], seeds: list[int]) -> dict[str, Any]:
    """Rates over the group's cells (model x competition) for each seed, then mean and SEM across
    seeds; a cell with no result for a seed counts as a failed run (MLE-bench's padding)."""
    cells = [(m, c) for m in models for c in competitions]
    found = {(r.model or UNKNOWN_MODEL, r.competition_id, r.seed): r for r in group}
    per_seed: dict[str, list[float]] = {key: [] for key in (*RATES, "normalized_score")}
    padded = 0
    for seed in seeds:
        rows = [found.get((m, c, seed)) for m, c in cells]
        padded += sum(r is None for r in rows)
        for key in RATES:
            per_seed[key].append(100.0 * sum(r is not None and bool(r.report[key]) for r in rows) / len(rows))
        per_seed["normalized_score"].append(statistics.fmean(r.normalized_score if r else 0.0 for r in rows))
    return {
        "runs": len(group),
        "seeds": len(seeds),
        "competitions": len({r.competition_id for r in group}),
        "padded": padded,
        **{key: {"mean": round(statistics.fmean(v), 3), "sem": round(_sem(v), 3)} for key, v in per_seed.items()},
    }


def _grid(results: list[RunResult], planned: list[PlannedRun]) -> dict[tuple[str, str], list[RunResult]]:
    """(model, strategy) -> its results, for every pair that has results or was asked for. A result
    written before results named their model takes the model of the planned run it stands for."""
    grid: dict[tuple[str, str], list[RunResult]] = {(p.model, p.strategy): [] for p in planned}
    model_of = {(p.competition, p.strategy, p.seed): p.model for p in planned}
    for r in results:
        model = r.model or model_of.get((r.competition_id, r.strategy, r.seed), UNKNOWN_MODEL)
        grid.setdefault((model, r.strategy), []).append(r.model_copy(update={"model": model}))
    return grid


def summarize(results: list[RunResult], planned: list[PlannedRun] | None = None,
              min_seeds: int = MIN_SEEDS) -> dict[str, dict[str, Any]]:
    """Per strategy: rates over competitions (and models) for each seed, then mean and SEM across at
    least `min_seeds` seeds, every strategy over the same competitions and seeds. `planned` (the
    sweep's runs) adds what no result shows yet: a strategy, model, competition or seed with none."""
    planned = planned or []
    competitions = sorted({r.competition_id for r in results} | {p.competition for p in planned})
    seeds = padded_seeds({r.seed for r in results} | {p.seed for p in planned}, min_seeds)
    grid = _grid(results, planned)
    return {strategy: _row([r for (_, s), group in grid.items() if s == strategy for r in group],
                           sorted({m for m, s in grid if s == strategy}), competitions, seeds)
            for strategy in sorted({s for _, s in grid})}


def summarize_by_model(results: list[RunResult], planned: list[PlannedRun] | None = None,
                       min_seeds: int = MIN_SEEDS) -> dict[str, dict[str, dict[str, Any]]]:
    """The same rows per model and strategy."""
    planned = planned or []
    competitions = sorted({r.competition_id for r in results} | {p.competition for p in planned})
    seeds = padded_seeds({r.seed for r in results} | {p.seed for p in planned}, min_seeds)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (model, strategy), group in sorted(_grid(results, planned).items()):
        out.setdefault(model, {})[strategy] = _row(group, [model], competitions, seeds)
    return out


def _cells(row: dict[str, Any]) -> str:
    cells = [f"{row[k]['mean']:.1f} ± {row[k]['sem']:.1f}" for k in RATES]
    cells.append(f"{row['normalized_score']['mean']:.3f} ± {row['normalized_score']['sem']:.3f}")
    return " | ".join(cells)


def table(summary: dict[str, dict[str, Any]], by_model: dict[str, dict[str, dict[str, Any]]] | None = None) -> str:
    """The summary as a Markdown table: a row per strategy, then (with several models) per model and
    strategy; and a note on the seeds and the runs counted as failures."""
    lines = ["| strategy | runs | valid submission % | above median % | any medal % | mean normalized score |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {strategy} | {row['runs']} | {_cells(row)} |" for strategy, row in summary.items()]
    if by_model and len(by_model) > 1:
        lines += [f"| {strategy} · {model} | {row['runs']} | {_cells(row)} |"
                  for model, rows in by_model.items() for strategy, row in rows.items()]
    if summary:
        seeds = next(iter(summary.values()))["seeds"]
        padded = [f"{strategy} {row['padded']}" for strategy, row in summary.items() if row["padded"]]
        lines.append("")
        lines.append(f"Mean ± standard error over {seeds} seeds (MLE-bench's rule: at least {MIN_SEEDS}); "
                     + (f"runs missing and counted as failures: {', '.join(padded)}." if padded
                        else "no run missing."))
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
    model: str | None = None


def run_detail(result: RunResult) -> RunDetail:
    """The details of a finished benchmark run, read from its folder."""
    workdir = Path(result.workdir)
    valid = bool(result.report.get("valid_submission"))
    common = {"competition_id": result.competition_id, "strategy": result.strategy, "seed": result.seed,
              "valid": valid, "steps": result.steps, "score": result.report.get("score"),
              "normalized_score": result.normalized_score, "model": result.model}
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
    """Per competition and strategy (and model, where the runs had several), as Markdown."""
    several = len({d.model for d in details}) > 1
    lines = ["| competition | strategy | seed | valid | model-written | source | steps | improvements after the first "
             "valid | first valid | score | normalized |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for d in sorted(details, key=lambda d: (d.competition_id, d.strategy, d.model or "", d.seed)):
        who = f"{d.strategy} · {d.model or UNKNOWN_MODEL}" if several else d.strategy
        first = f"{d.first_valid_s / 60:.1f} min" if d.first_valid_s is not None else "-"
        score = f"{d.score:.4g}" if d.score is not None else "-"
        improvements = "n/a" if d.improvements is None else str(d.improvements)
        lines.append(f"| {d.competition_id} | {who} | {d.seed} | {'yes' if d.valid else 'no'} | "
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


class FolderSummary(BaseModel):
    """What `gome bench summary` says of a results folder."""

    strategies: dict[str, dict[str, Any]]
    models: dict[str, dict[str, dict[str, Any]]]
    details: list[RunDetail]
    markdown: str


def summarize_folder(out: Path) -> FolderSummary:
    """The summary and the per-run details of a results folder, written next to its results."""
    results = read_results(out / RESULTS)
    if not results:
        raise ConfigError(f"{out / RESULTS} holds no results (run gome bench run --out {out} first)")
    record = read_sweep_record(out)
    planned = record.runs if record is not None else []
    summary = summarize(results, planned)
    by_model = summarize_by_model(results, planned)
    details = [run_detail(r) for r in results]
    markdown = table(summary, by_model) + "\n\n" + details_table(details)
    jsonl.write_json(out / "summary.json", {"strategies": summary, "models": by_model, "min_seeds": MIN_SEEDS})
    (out / "summary.md").write_text(markdown + "\n", encoding="utf-8")
    jsonl.write_json(out / "details.json", [d.model_dump() for d in details])
    return FolderSummary(strategies=summary, models=by_model, details=details, markdown=markdown)


def bench(sweep: SweepSpec, *, out: Path, executor: Executor | None = None, storage: Path | None = None) -> SweepOutcome:
    """Run the sweep's runs that have no result in `out` yet (run folders under `storage`, by default
    OUT/runs), on `executor` (by default this machine, one run at a time)."""
    specs = expand(sweep, storage=(storage or out / "runs").absolute())
    return run_sweep(specs, out, executor or LocalExecutor(), sweep)


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
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Run every (competition, strategy, seed) of one model that has no result yet, then summarize
    all results per strategy. `aide` among the strategies runs AIDE from `aide_venv` (installed
    there first if it is not)."""
    sweep = SweepSpec(competitions=competitions, strategies=strategies, seeds=seeds,
                      models=[llm.model_dump(mode="json")], time_limit=time_limit_s, settings=base or {},
                      data_dir=data_dir.absolute(), aide_venv=aide_venv)
    bench(sweep, out=out, executor=executor)
    return summarize_folder(out).strategies
