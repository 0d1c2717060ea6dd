"""Sweeps: a benchmark's runs as specifications with stable ids, executed anywhere, resumable.

A sweep (`SweepSpec`, from the command line or a YAML or JSON file) expands into one `RunSpec`
per competition, seed, model and strategy. A run's id is a short hash of what defines the
experiment (competition, strategy, seed, model and its settings, budget, run settings), not of
where it happens (the data folder, the run folder, the model's base URL, the CPUs it asks for), so
the same sweep started again finds its runs. Its readable name is also the path of its run folder
under the storage folder.

Records, in the results folder:
- `results.jsonl`: one `RunResult` per finished run, appended as each run ends;
- `attempts.jsonl`: each start, end and failure of a run, with the node it ran on;
- `sweep.json`: the sweep last asked for.

Started again, a sweep skips the runs that have a result and runs the others: those never started
and those that started but left no result (a crash, a killed machine); the latter start over in a
fresh run folder. `execute` is one run, wherever an executor (bench/executors.py) puts it: the
agent (or AIDE) in its run folder, then the grade of its submission.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import socket
import statistics
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gome_agent import jsonl
from gome_agent.bench.competitions import Competition, get_spec
from gome_agent.bench.grading import CompetitionReport, grade_csv, read_leaderboard, score_csv
from gome_agent.bench.peers import AIDE, DEFAULT_AIDE_VENV, aide_llm_variables, ensure_aide_venv, run_aide
from gome_agent.bench.prepare import load_competition
from gome_agent.config import RunConfig, build_config, parse_duration
from gome_agent.errors import ConfigError, TaskError
from gome_agent.llm.config import LLMConfig
from gome_agent.records.events import EventLog
from gome_agent.run.coordinator import run
from gome_agent.strategies import STRATEGIES

log = logging.getLogger(__name__)

RESULTS = "results.jsonl"
ATTEMPTS = "attempts.jsonl"
SWEEP_RECORD = "sweep.json"
ID_CHARS = 12
# Settings that differ per run: the sweep sets them, its `settings` may not.
PER_RUN = ("data_dir", "workdir", "strategy", "seed", "llm", "time_limit_s")


class RunResult(BaseModel):
    """One finished run of a benchmark, as `results.jsonl` holds it. The fields after `reason` came
    with sweeps; results written before them lack them and still read."""

    competition_id: str
    strategy: str
    seed: int
    workdir: str
    report: dict[str, Any]
    normalized_score: float
    steps: int
    reason: str
    run_id: str | None = None
    name: str | None = None
    model: str | None = None
    provider: str | None = None
    node: str | None = None  # the Ray node id, or the host name for the local executor
    host: str | None = None  # the machine whose disk holds `workdir`
    duration_s: float | None = None


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


# The sweep and its runs ---------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Resources(_Strict):
    """What each run asks of the machine that runs it."""

    cpus: float | None = Field(None, gt=0, description="CPU cores per run (default: its traces, one solution each)")
    gpus: float = Field(0.0, ge=0, description="GPUs per run")


class SweepSpec(_Strict):
    """A sweep as a file holds it: every competition x seed x model x strategy is one run."""

    competitions: list[str] = Field(min_length=1)
    strategies: list[str] = Field(default_factory=lambda: ["gome", "tree"], min_length=1)
    seeds: int | list[int] = Field(3, description="a count (seeds 0..n-1) or the seeds themselves")
    models: list[str | dict[str, Any]] = Field(
        min_length=1, description="a model name, or LLM settings of its own (model, provider, base_url, ...)")
    llm: dict[str, Any] = Field(default_factory=dict, description="LLM settings every model shares")
    time_limit: str | float = Field("10m", description="each run's budget: 2h, 30m, or seconds")
    settings: dict[str, Any] = Field(default_factory=dict, description="run settings every run shares (traces, ...)")
    resources: Resources = Field(default_factory=Resources)
    data_dir: Path | None = Field(None, description="the prepared benchmark, at this path on every machine")
    aide_venv: Path = DEFAULT_AIDE_VENV


class RunSpec(BaseModel):
    """One run of a sweep: everything a machine needs to run and grade it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    competition: str
    strategy: str
    seed: int
    llm: LLMConfig
    time_limit_s: float
    settings: dict[str, Any]
    data_dir: Path
    workdir: Path
    cpus: float
    gpus: float
    aide_venv: Path

    @property
    def id(self) -> str:
        return run_id(self)


def run_id(spec: RunSpec) -> str:
    """The short hash of what defines the run's experiment (see the module's docstring).

    The LLM settings count only where they differ from the defaults, so a default added to gome
    later leaves the ids of old sweeps alone."""
    identity = {
        "competition": spec.competition, "strategy": spec.strategy, "seed": spec.seed,
        "time_limit_s": spec.time_limit_s, "settings": spec.settings,
        "llm": spec.llm.model_dump(mode="json", exclude_defaults=True, exclude={"base_url"}),
    }
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:ID_CHARS]


def load_sweep(path: Path) -> dict[str, Any]:
    """The mapping of a sweep file (YAML or JSON); the command line may override its fields."""
    if not path.is_file():
        raise ConfigError(f"sweep file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"sweep file {path}: use .yaml, .yml or .json")
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"sweep file {path} is not valid: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"sweep file {path} must hold a mapping (competitions:, strategies:, models:, ...)")
    return data


def sweep_spec(values: dict[str, Any], source: str = "the sweep") -> SweepSpec:
    """A checked `SweepSpec`; errors name the field."""
    try:
        return SweepSpec.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'sweep'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{source} is not valid: {problems}") from exc


def _slug(model: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in model)


def _llm(sweep: SweepSpec, entry: str | dict[str, Any]) -> LLMConfig:
    values = {**sweep.llm, **({"model": entry} if isinstance(entry, str) else entry)}
    try:
        return LLMConfig.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'llm'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"the LLM settings of model {values.get('model', '?')!r} are not valid: {problems}") from exc


def expand(sweep: SweepSpec, *, storage: Path) -> list[RunSpec]:
    """The sweep's runs, each with its folder under `storage`; bad input fails here, before any run."""
    unknown = [s for s in sweep.strategies if s not in STRATEGIES and s != AIDE]
    if unknown:
        raise ConfigError(f"unknown strategy {', '.join(unknown)} (known: {', '.join([*STRATEGIES, AIDE])})")
    for competition in sweep.competitions:
        get_spec(competition)  # an unknown competition's error names the known ones
    if sweep.data_dir is None:
        raise ConfigError("the sweep names no data_dir (the prepared benchmark): give --data-dir or data_dir:")
    reserved = [key for key in PER_RUN if key in sweep.settings]
    if reserved:
        raise ConfigError(f"the sweep's settings may not hold {', '.join(reserved)}: the sweep sets them per run "
                          "(the LLM settings go under llm:, the budget under time_limit:)")
    seeds = list(range(sweep.seeds)) if isinstance(sweep.seeds, int) else sorted(set(sweep.seeds))
    if not seeds or min(seeds) < 0:
        raise ConfigError(f"seeds must be a positive count or non-negative seeds, not {sweep.seeds!r}")
    time_limit_s = parse_duration(sweep.time_limit)
    llms = [_llm(sweep, entry) for entry in sweep.models]
    # The same checks a run makes first, made once here so a bad setting stops nothing half-way.
    checked = build_config(sweep.settings, {"data_dir": sweep.data_dir, "workdir": storage, "llm": llms[0],
                                            "time_limit_s": time_limit_s})
    cpus = sweep.resources.cpus or float(checked.traces)
    several_models = len({llm.model for llm in llms}) > 1
    # Absolute: a Ray task resolves paths from its own working folder.
    data_dir, aide_venv = sweep.data_dir.expanduser().absolute(), sweep.aide_venv.expanduser().absolute()
    specs = []
    for competition in sweep.competitions:
        for seed in seeds:
            for llm in llms:
                for strategy in sweep.strategies:
                    parts = [competition, strategy, *([_slug(llm.model)] if several_models else []), f"seed{seed}"]
                    name = "/".join(parts)
                    specs.append(RunSpec(
                        name=name, competition=competition, strategy=strategy, seed=seed, llm=llm,
                        time_limit_s=time_limit_s, settings=sweep.settings, data_dir=data_dir,
                        workdir=storage / name, cpus=cpus, gpus=sweep.resources.gpus, aide_venv=aide_venv,
                    ))
    names = [s.name for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"the sweep names the same run twice ({', '.join(twice[:3])}): give each model once, "
                          "and models with different settings different names")
    return specs


# The records of a results folder -------------------------------------------------------------------


class Attempt(BaseModel):
    """A line of `attempts.jsonl`: a run started, finished or failed somewhere."""

    run_id: str
    name: str
    event: Literal["started", "finished", "failed"]
    node: str | None = None
    host: str | None = None
    at: float = Field(default_factory=time.time)
    error: str | None = None


class PlannedRun(BaseModel):
    """A run the sweep asked for, as `sweep.json` lists it (the summary counts the missing ones)."""

    run_id: str
    name: str
    competition: str
    strategy: str
    model: str
    seed: int


class SweepRecord(BaseModel):
    """`sweep.json`: the sweep last asked for in a results folder, and its runs."""

    sweep: SweepSpec
    runs: list[PlannedRun]


def read_sweep_record(out: Path) -> SweepRecord | None:
    path = out / SWEEP_RECORD
    if not path.is_file():
        return None  # a results folder from before sweeps
    try:
        return SweepRecord.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise ConfigError(f"{path} is not a sweep record of gome bench run ({exc.errors()[0]['msg']}); "
                          "remove it to summarize the results alone") from exc


def read_results(path: Path) -> list[RunResult]:
    """Every result of a results file. A line that does not parse stops with its number: results are
    evidence, and a silently dropped one would be run again and counted twice. Only a last line
    without its newline (a writer killed mid-line) is passed over, and its run done again."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    results = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            results.append(RunResult.model_validate_json(line))
        except ValidationError as exc:
            if number == len(lines):  # no newline after it: cut short
                log.warning("%s:%d: a result cut short is passed over; its run will be done again", path, number)
                continue
            raise ConfigError(f"{path}:{number} is not a result of gome bench run ({exc.errors()[0]['msg']}); "
                              "fix or remove that line") from exc
    return results


class Plan(BaseModel):
    """What a sweep started again has to do."""

    todo: list[RunSpec]
    done: int  # runs that have a result
    redone: list[str]  # names among `todo` that started before and left no result


def plan(specs: list[RunSpec], results: list[RunResult], attempts: Iterable[Attempt]) -> Plan:
    """Split the sweep into runs with a result and runs to do. A result written before runs had ids
    stands for the run of its competition, strategy and seed."""
    by_id = {r.run_id: r for r in results if r.run_id is not None}
    legacy = {(r.competition_id, r.strategy, r.seed) for r in results if r.run_id is None}
    owner = {r.workdir: r for r in results if r.run_id is not None}
    started = {a.run_id for a in attempts if a.event == "started"}
    todo, done = [], 0
    for spec in specs:
        if spec.id in by_id or (spec.competition, spec.strategy, spec.seed) in legacy:
            done += 1
            continue
        other = owner.get(str(spec.workdir))
        if other is not None:
            raise ConfigError(f"{spec.workdir} already holds run {other.name} with other settings (id {other.run_id}, "
                              f"this sweep's is {spec.id}): give this sweep another --out or --storage")
        todo.append(spec)
    return Plan(todo=todo, done=done, redone=[s.name for s in todo if s.id in started])


# One run --------------------------------------------------------------------------------------------


def _max_run_s(settings: dict[str, Any], time_limit_s: float) -> float:
    """The longest single run of a solution, by gome's own rule (its AIDE counterpart is `exec.timeout`)."""
    minutes = settings.get("execution", {}).get("max_run_minutes")
    return float(minutes) * 60 if minutes is not None else min(3600.0, time_limit_s / 4)


def execute(spec: RunSpec, *, node: str | None = None) -> RunResult:
    """Run and grade one run of a sweep on this machine; `node` names it in the result (default: the host)."""
    started = time.monotonic()
    competition = load_competition(spec.data_dir, spec.competition)
    baseline, best = score_range(competition)
    workdir = spec.workdir
    log.info("benchmark run %s (%s) in %s", spec.name, spec.id, workdir)
    if workdir.exists():
        # An attempt that left no result starts over in a fresh folder (the agent refuses a used one).
        # Moved aside first: what is left of a lost attempt (a solution still finishing) cannot
        # write into the new one.
        stale = workdir.with_name(f"{workdir.name}.stale-{time.time_ns()}")
        log.info("%s: a run cut short before its result was recorded starts over", workdir)
        workdir.rename(stale)
        shutil.rmtree(stale, ignore_errors=True)
    if spec.strategy == AIDE:
        peer = run_aide(aide=ensure_aide_venv(spec.aide_venv), competition=competition, llm=spec.llm,
                        workdir=workdir, time_limit_s=spec.time_limit_s,
                        max_run_s=_max_run_s(spec.settings, spec.time_limit_s), seed=spec.seed)
        steps, reason = peer.steps, peer.reason
    else:
        execution = dict(spec.settings.get("execution", {}))
        execution["hidden_paths"] = [*execution.get("hidden_paths", []), *competition.hidden_from_solutions()]
        values = {
            **spec.settings,
            "data_dir": competition.public_dir, "workdir": workdir, "time_limit_s": spec.time_limit_s,
            "strategy": spec.strategy, "seed": spec.seed, "llm": spec.llm, "execution": execution,
        }
        try:
            ours = run(RunConfig.model_validate(values))
            steps, reason = ours.steps, ours.reason
            if ours.interrupted:
                # The signal (Ctrl-C, a kill) was meant for the sweep: it stops, and this run, cut short,
                # records no result, so the next pass does it again.
                raise KeyboardInterrupt(f"benchmark run {spec.name}: {reason}")
        except TaskError as exc:
            # A run that stops (a task the model cannot read) is a failed run of the benchmark,
            # graded on what it left (its fallback), not the end of the benchmark.
            log.warning("benchmark run %s stopped: %s", spec.name, exc)
            steps, reason = len(EventLog(workdir / "events.jsonl").steps()), f"stopped: {exc}"
    report = grade_csv(workdir / "submission" / "submission.csv", competition)
    host = socket.gethostname()
    return RunResult(
        competition_id=spec.competition, strategy=spec.strategy, seed=spec.seed, workdir=str(workdir),
        report=report.to_dict(), normalized_score=normalized(report, baseline, best), steps=steps, reason=reason,
        run_id=spec.id, name=spec.name, model=spec.llm.model, provider=spec.llm.provider, node=node or host,
        host=host, duration_s=round(time.monotonic() - started, 2),
    )


# What executors report ------------------------------------------------------------------------------


class Started(BaseModel):
    run_id: str
    node: str
    host: str


class Finished(BaseModel):
    result: RunResult


class Failed(BaseModel):
    run_id: str
    error: str
    node: str | None = None


Event = Started | Finished | Failed


class Executor(Protocol):
    """Where runs happen (bench/executors.py has this machine's and a Ray cluster's)."""

    # True when the runs share this process, and so its terminal (a run shows its own live display there).
    in_this_process: bool

    def execute(self, specs: list[RunSpec]) -> Iterator[Event]:
        """Run `specs`, yielding each start, result and failure as it happens."""
        ...


# The sweep ------------------------------------------------------------------------------------------


class SweepOutcome(BaseModel):
    """What one pass of a sweep did."""

    total: int
    skipped: int  # had a result before this pass
    redone: list[str]  # started in an earlier pass and left no result
    finished: int
    failed: list[str]  # names of the runs that ended without a result in this pass
    wall_s: float


class SweepProgress:
    """The sweep in the terminal: done, running, failed, and per strategy what the results say so far.
    On a terminal it is a live table, or, while runs in this process show their own live display
    there, the table printed as each run ends; elsewhere (logs, CI) one line per run that ends."""

    def __init__(self, specs: list[RunSpec], todo: list[RunSpec], earlier: list[RunResult],
                 runs_share_the_terminal: bool = False) -> None:
        self.console = Console(stderr=True)
        self.print_tables = self.console.is_terminal and runs_share_the_terminal
        self.total = len(specs)
        self.skipped = len(specs) - len(todo)
        self.names = {s.id: s.name for s in specs}
        self.strategy_total = {s: sum(x.strategy == s for x in specs) for s in dict.fromkeys(x.strategy for x in specs)}
        ids = {s.id for s in specs}
        self.results = [r for r in earlier if r.run_id in ids or r.run_id is None]
        self.running: dict[str, str] = {}  # run id -> node
        self.failed: list[str] = []
        self.finished = 0
        self.live: Live | None = None

    def __enter__(self) -> SweepProgress:
        if self.console.is_terminal and not self.print_tables:
            self.live = Live(self.render(), console=self.console, refresh_per_second=2, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.live is not None:
            self.live.update(self.render())
            self.live.__exit__(kind, exc, tb)

    def update(self, event: Event) -> None:
        if isinstance(event, Started):
            self.running[event.run_id] = event.node
        elif isinstance(event, Finished):
            self.running.pop(event.result.run_id or "", None)
            self.results.append(event.result)
            self.finished += 1
            r = event.result
            valid = "valid" if r.report.get("valid_submission") else "invalid"
            self._say(f"{r.name}: {valid}, normalized {r.normalized_score:.3f}, {r.duration_s or 0:.0f} s on {r.node}")
        else:  # the sweep logs the failure itself
            self.running.pop(event.run_id, None)
            self.failed.append(self.names.get(event.run_id, event.run_id))
        if self.live is not None:
            self.live.update(self.render())
        elif self.print_tables and not isinstance(event, Started):
            self.console.print(self.render())

    def counts(self) -> str:
        done = self.skipped + self.finished
        return (f"{done}/{self.total} done ({self.skipped} before this pass), {len(self.running)} running, "
                f"{len(self.failed)} failed, {self.total - done - len(self.running) - len(self.failed)} waiting")

    def _say(self, what: str) -> None:
        if self.live is None and not self.print_tables:
            log.info("sweep: %s; %s", what, self.counts())

    def render(self) -> Group:
        table = Table(title="per strategy, results so far (no padding: see gome bench summary)", title_justify="left")
        for column in ("strategy", "done", "valid %", "above median %", "any medal %", "mean normalized"):
            table.add_column(column, justify="left" if column == "strategy" else "right")
        for strategy, total in self.strategy_total.items():
            mine = [r for r in self.results if r.strategy == strategy]
            if not mine:
                table.add_row(strategy, f"0/{total}", "-", "-", "-", "-")
                continue
            rates = [f"{100 * sum(bool(r.report.get(k)) for r in mine) / len(mine):.0f}"
                     for k in ("valid_submission", "above_median", "any_medal")]
            table.add_row(strategy, f"{len(mine)}/{total}", *rates,
                          f"{statistics.fmean(r.normalized_score for r in mine):.3f}")
        return Group(Text(f"sweep: {self.counts()}"), table)


def run_sweep(specs: list[RunSpec], out: Path, executor: Executor, sweep: SweepSpec) -> SweepOutcome:
    """Run every spec of `sweep` that has no result in `out` yet, recording results and attempts as they come."""
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    planned = [PlannedRun(run_id=s.id, name=s.name, competition=s.competition, strategy=s.strategy,
                          model=s.llm.model, seed=s.seed) for s in specs]
    jsonl.write_json(out / SWEEP_RECORD, SweepRecord(sweep=sweep, runs=planned))
    results = read_results(out / RESULTS)
    work = plan(specs, results, jsonl.read(out / ATTEMPTS, Attempt))
    log.info("sweep of %d runs: %d have a result, %d to run%s", len(specs), work.done, len(work.todo),
             f" ({len(work.redone)} of them started before and left no result)" if work.redone else "")
    outcome = SweepOutcome(total=len(specs), skipped=work.done, redone=work.redone, finished=0, failed=[], wall_s=0.0)
    if not work.todo:
        return outcome.model_copy(update={"wall_s": round(time.monotonic() - started, 2)})
    for spec in work.todo:
        if spec.strategy == AIDE:
            # Settings AIDE cannot follow, and an install that fails, stop the sweep before any run.
            aide_llm_variables(spec.llm)
            ensure_aide_venv(spec.aide_venv)
    for competition in dict.fromkeys(s.competition for s in work.todo):
        load_competition(work.todo[0].data_dir, competition)  # not prepared: say so before any run
    by_id = {s.id: s for s in work.todo}
    progress = SweepProgress(specs, work.todo, results, runs_share_the_terminal=executor.in_this_process)
    with progress:
        for event in executor.execute(work.todo):
            if isinstance(event, Started):
                spec = by_id[event.run_id]
                jsonl.append(out / ATTEMPTS, Attempt(run_id=spec.id, name=spec.name, event="started",
                                                     node=event.node, host=event.host))
            elif isinstance(event, Finished):
                result = event.result
                jsonl.append(out / RESULTS, result)
                jsonl.append(out / ATTEMPTS, Attempt(run_id=result.run_id or "", name=result.name or "",
                                                     event="finished", node=result.node, host=result.host))
                outcome.finished += 1
            else:
                spec = by_id[event.run_id]
                log.error("run %s failed: %s (all of it: %s)", spec.name, event.error.strip().splitlines()[-1][:300],
                          out / ATTEMPTS)
                jsonl.append(out / ATTEMPTS, Attempt(run_id=spec.id, name=spec.name, event="failed",
                                                     node=event.node, error=event.error[-4000:]))
                outcome.failed.append(spec.name)
            progress.update(event)
    outcome.wall_s = round(time.monotonic() - started, 2)
    return outcome
