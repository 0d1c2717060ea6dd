"""Run configuration: one pydantic model, loaded from a file and overridden by flags.

The resolved configuration is written to the run folder (`config.json`) so every
run says exactly how it was made; API keys never appear in it (they are read
from the environment only).
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gome_agent.errors import ConfigError
from gome_agent.llm.config import LLMConfig

_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*d)?\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m)?\s*(?:(\d+(?:\.\d+)?)\s*s?)?\s*$")


def parse_duration(text: str | float | int) -> float:
    """Seconds from '12h', '90m', '1h30m', '45s', '3600' or a number."""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _DURATION.match(text.lower())
        if not text.strip() or match is None or not any(match.groups()):
            raise ConfigError(f"cannot read the duration {text!r}: use forms like 12h, 90m, 1h30m, 45s or 3600")
        days, hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        seconds = days * 86400 + hours * 3600 + minutes * 60 + secs
    if seconds <= 0:
        raise ConfigError(f"duration {text!r} must be positive")
    return seconds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StageConfig(_Strict):
    """Where the stages of the run begin, as fractions of the time budget."""

    draft_end: float = Field(0.1, ge=0.0, le=1.0)
    final_start: float = Field(0.7, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> StageConfig:
        if self.draft_end > self.final_start:
            raise ValueError(f"stages.draft_end ({self.draft_end}) must not exceed stages.final_start ({self.final_start})")
        return self


class OptimizerConfig(_Strict):
    """The Gome step: diagnosis width, debugging, acceptance and momentum."""

    directions: int = Field(3, ge=1, le=5, description="candidate directions per diagnosis")
    max_debug: int = Field(3, ge=0, le=10, description="fix attempts when a step's code fails")
    history_window: int = Field(6, ge=1, le=50, description="recent steps of the trace shown in prompts")
    accepted_window: int = Field(5, ge=1, le=50, description="accepted steps of the trace shown in prompts")
    memory_top_k: int = Field(4, ge=0, le=20, description="success-memory entries shown per diagnosis")
    momentum: bool = Field(True, description="use the shared success memory (off = the paper's w/o-momentum ablation)")
    momentum_half_life_steps: float = Field(30.0, gt=0, description="steps after which a memory entry's weight halves")
    momentum_weight: float = Field(2.0, ge=0, description="largest bonus (points of 10) a candidate gets from similar successes")
    repeat_penalty: float = Field(3.0, ge=0, description="largest penalty (points of 10) for repeating a rejected idea")
    min_improvement: float = Field(0.0, ge=0, description="absolute gain a step must exceed to be accepted")
    acceptance: Literal["noise", "plain"] = Field(
        "noise", description="noise: a gain must beat the fold scores' noise (see optimizer/acceptance.py); "
        "plain: any gain beyond min_improvement (the paper's rule)")
    noise_factor: float = Field(1.0, ge=0.0, le=10.0, description="how many standard errors a gain must beat")
    corroborate: bool = Field(
        True, description="with the noise rule and gome's held-out scores: pool the solutions' own out-of-fold scores "
        "on gome's folds with the held-out parts, so a real gain too small for the held-out rows alone is taken when "
        "both agree (optimizer/acceptance.py); false: the held-out rows alone decide")
    structured_gradient: bool = Field(True, description="false = the paper's w/o-structured-reasoning ablation (feedback straight to code)")
    diversify_wait_s: float = Field(300.0, ge=0, description="how long a trace's first draft waits for lower-numbered traces to announce theirs")
    max_steps: int | None = Field(None, ge=1, description="stop a trace after this many steps (default: only the budget)")
    max_reply_edit_retries: int = Field(1, ge=0, le=3, description="re-asks when code edits do not apply")
    scaffold: Literal["auto", "on", "off"] = Field(
        "auto", description="hand drafts a runnable main.py skeleton in which the model writes the features and the "
        "model (task/scaffold.py); auto: for a model whose name states under 30B parameters, and for a trace's "
        "drafts after its first draft failed")
    draft_repairs: int = Field(
        2, ge=0, le=10, description="steps that go on debugging a failed draft (fed its last error) before a fresh "
        "draft is written")


class ValidationConfig(_Strict):
    """Who measures a step's score (task/holdout.py): gome on rows it holds out, or the solution."""

    scoring: Literal["gome", "self-reported"] = Field(
        "gome", description="gome: gome holds labelled rows out and scores their predictions itself; "
        "self-reported: the score a solution writes to scores.json counts (the paper's protocol, for ablations)")
    holdout_fraction: float = Field(0.15, gt=0.0, le=0.3, description="share of the labelled rows gome holds out")
    holdout_max_rows: int = Field(20_000, ge=50, description="held-out rows at most (enough to score precisely)")
    holdout_min_rows: int = Field(
        2_000, ge=50, description="held-out rows at least, where 30% of the table allows: a small table's "
        "share alone is too few rows to resolve a small real gain")
    tolerance_se: float = Field(
        5.0, ge=0.0, description="a self-reported score further from gome's than this many standard errors is untrusted")
    tolerance_relative: float = Field(
        0.05, ge=0.0, description="... and further than this share of gome's score")
    refit: bool = Field(
        True, description="at the end, run the chosen solution once more on every labelled row (the held-out "
        "ones included) and submit that, keeping the score gome measured")


class TreeConfig(_Strict):
    """The tree-search baseline (AIDE's greedy search policy)."""

    num_drafts: int = Field(5, ge=1, le=50, description="independent drafts before improving")
    debug_prob: float = Field(0.5, ge=0.0, le=1.0, description="chance of debugging a buggy leaf instead of improving")
    max_debug_depth: int = Field(3, ge=0, le=20, description="debug steps in a row on one branch")


class SmokeConfig(_Strict):
    """The smoke run: a step's code first runs on a small sample of the data (task/smoke.py), so that
    an error costs seconds; its full run follows only when the smoke run's outputs are valid."""

    enabled: bool = Field(True, description="run each solution on a sample of the data before its full run")
    rows: int = Field(200, ge=10, le=100_000, description="rows kept of each CSV/TSV table (and of the test ids)")
    time_limit_s: float = Field(
        60.0, gt=0, description="time limit of a smoke run; one that reaches it without failing lets the full run go")


class ExecutionConfig(_Strict):
    """How solutions run."""

    python: str | None = Field(None, description="interpreter for solutions (default: the one running gome)")
    sandbox: Literal["auto", "namespace", "none"] = "auto"
    network: bool = Field(True, description="let solutions reach the network (pretrained weights)")
    memory_limit_gb: float | None = Field(None, gt=0, description="RSS limit per run (default: 75% of RAM)")
    max_run_minutes: float | None = Field(None, gt=0, description="longest single run (default: min(60, budget/4))")
    min_run_seconds: float = Field(30.0, gt=0, description="no new step starts when less than this is left for its run")
    max_log_mb: float = Field(20.0, gt=0)
    keep_outputs: Literal["needed", "all"] = Field(
        "needed", description="needed: once a step is recorded, its attempt folders keep main.py, scores.json and the "
        "logs, and those of the steps that may still be submitted their submission and held-out predictions; the rest "
        "of what the solutions wrote is deleted (records/housekeeping.py). all: keep everything")
    min_free_disk_gb: float = Field(
        1.0, ge=0, description="no solution run starts while the run folder's file system has less free space "
        "(the step fails, saying so, and the traces wait for space)")
    simulate_gpu_mb: int | None = Field(None, gt=0, description="schedule against a simulated GPU of this size (benchmarks, tests)")
    hidden_paths: list[Path] = Field(
        default_factory=list,
        description="files and folders solutions must not read (private answers, a leaderboard): shown empty in the "
        "namespace sandbox; the 'none' sandbox cannot hide them",
    )
    static_checks: bool = Field(
        True, description="check each solution's code before it runs (syntax, undefined names, modules that are not "
        "installed, unknown column names); problems go back to the model without a run")
    auto_fixes: bool = Field(
        True, description="fix what is certain without asking the model (execution/autofix.py): add the imports the "
        "static checks are sure of (an undefined np, os or StandardScaler), remove a keyword argument a run's "
        "TypeError says the call does not take; each step records them (auto_fixes)")
    smoke: SmokeConfig = Field(default_factory=SmokeConfig)


class RunConfig(_Strict):
    """Everything one `gome run` needs."""

    data_dir: Path
    workdir: Path
    time_limit_s: float = Field(2 * 3600.0, gt=0)
    traces: int = Field(3, ge=1, le=16)
    strategy: Literal["gome", "tree"] = Field("gome", description="gome, or the tree-search baseline")
    seed: int = 0
    higher_is_better: bool | None = Field(None, description="override the metric direction found in the description")
    prompts_dir: Path | None = None
    description_path: Path | None = Field(None, description="read the task from this file instead of the data's description.md")
    validation_server: str | None = Field(None, description="grading server whose /validate checks every candidate (MLE-bench)")
    mirror_submission_dir: Path | None = Field(None, description="also keep the best submission.csv here (MLE-bench's /home/submission)")
    mirror_code_dir: Path | None = Field(None, description="also keep the best code here (MLE-bench's /home/code)")
    final_reserve_fraction: float = Field(0.08, ge=0.0, lt=0.5, description="share of the budget kept for the final selection")
    final_reserve_max_fraction: float = Field(
        0.15, ge=0.0, lt=0.5,
        description="the reserve grows up to this share when the candidates' measured run times need more",
    )
    final_candidates: int = Field(4, ge=1, le=12, description="solutions the final selection re-runs")
    final_seeds: list[int] = Field(default_factory=lambda: [1, 2], description="GOME_SEED values of the final re-runs")
    llm: LLMConfig = Field(default_factory=LLMConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    stages: StageConfig = Field(default_factory=StageConfig)
    tree: TreeConfig = Field(default_factory=TreeConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)

    def to_record(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())


def load_config_file(path: Path) -> dict[str, Any]:
    """A mapping from a TOML, YAML or JSON file."""
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"config file {path}: use .toml, .yaml, .yml or .json")
    except (tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings at the top level")
    if "time_limit" in data:
        data["time_limit_s"] = parse_duration(data.pop("time_limit"))
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def build_config(file_values: dict[str, Any], overrides: dict[str, Any]) -> RunConfig:
    """File settings, then command-line overrides (nested dicts merge); errors name the setting."""
    merged = _merge(file_values, overrides)
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc
