"""Running a step's code: checked before it runs, under a GPU/CPU lease, with bounded debugging, and
checking its outputs.

Before any run the code goes through the static checks (execution/static_check.py: syntax, undefined
names, modules that are not installed, unknown column names); what they find goes to a fix (the
strategy's `fix`) without a run, at most `max_debug` rounds, apart from the run attempts. Then a
smoke run (task/smoke.py: the code on a small sample of the data, a short time limit) comes before
the full run, which follows only when the smoke run's outputs are valid; a smoke run that reaches
its limit without failing proves nothing wrong and lets the full run go. A GPU run that dies of CUDA
out-of-memory is run again once with the GPU to itself (another run's memory, not the idea, may be
at fault). A run that fails, smoke or full, is shown to a fix up to `max_debug` times, each fix
seeing the error and the earlier attempts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psutil

from gome_agent.errors import TaskError
from gome_agent.execution.executor import RunResult, RunSpec
from gome_agent.execution.failures import Cause, code_excerpt, failure_cause, last_traceback
from gome_agent.execution.scheduler import LeaseTimeout, is_gpu_oom, needs_gpu
from gome_agent.execution.autofix import (
    add_missing_imports,
    drop_unexpected_keyword,
    drop_unused_failed_import,
    move_misplaced_imports,
)
from gome_agent.execution.static_check import check_code, tables_named
from gome_agent.records.events import Note
from gome_agent.records.housekeeping import free_space_problem
from gome_agent.strategies.step import Meter, Services, StepFailed
from gome_agent.strategies.views import Failure, tail
from gome_agent.task.folds import FOLDS_FILE, copy_folds, folds_problem
from gome_agent.task.holdout import holdout_scorer
from gome_agent.task.smoke import SMOKE_DIR, SmokeCheck, SmokePlan, prepare_smoke
from gome_agent.task.submission import OutputCheck, check_outputs

log = logging.getLogger(__name__)

# fix(code, failure, goal, earlier attempts, meter) -> (fixed code, the change it made)
Fix = Callable[[str, Failure, str, list[str], Meter], tuple[str, str]]
SmokeStatus = Literal["passed", "failed", "timeout"]

NO_TIME = "not run: the time budget is spent"
STATIC_FAILED = "the static check of main.py found problems before any run (no run was made)"
STATIC_PROBLEMS_KEPT = 30  # of the problems found in a step, recorded
TRACEBACK_CHARS = 4000  # of the last traceback, shown to a fix whole up to this length
TABLES_SHOWN, COLUMNS_SHOWN = 4, 40  # input tables (and columns of each) shown to a fix
DISK_WAIT_S = 30.0  # between looks at the free disk space while it is too low for a run


def smoke_folder(attempt_dir: Path) -> Path:
    """Where an attempt's smoke run runs: next to the attempt's own folder (`a0-smoke` for `a0`)."""
    return attempt_dir.with_name(f"{attempt_dir.name}-smoke")


@dataclass
class Evaluation:
    """The outcome of running a step's code, after any debug attempts."""

    ok: bool
    code: str
    # The last attempt's folder: its smoke run's when that failed (its logs say why), else its own.
    attempt_dir: Path
    runs: int  # full runs (an out-of-memory retry included); smoke runs are counted apart
    result: RunResult | None  # the last run's, smoke or full
    check: OutputCheck | None
    message: str
    problems: list[str] = field(default_factory=list)
    oom_retries: int = 0
    cause: Cause | None = None  # the exception that ended the last failed run
    fixes: list[str] = field(default_factory=list)  # the changes the debug attempts made
    fix_error: str | None = None  # why the last fix could not be used, when that ended the debugging
    failed_in: Literal["static", "smoke", "run"] | None = None  # where the last failure happened
    static_problems: list[str] = field(default_factory=list)  # every problem the static checks found
    static_fixes: int = 0  # fix rounds spent on them, without a run
    auto_fixes: list[str] = field(default_factory=list)  # what gome fixed itself, without the model (autofix.py)
    smoke: SmokeStatus | None = None  # the last smoke run's outcome (None: none was made)
    smoke_runs: int = 0
    smoke_s: float = 0.0
    failure: Failure | None = None  # what the last failure showed a fix (None: the code passed, or never ran)


class Evaluator:
    """Runs one trace's code in its step folders (`a0`, `a1`, ... one per attempt; `a0-smoke`, ... for
    the smoke runs)."""

    def __init__(self, *, index: int, services: Services, max_run_s: float) -> None:
        self.index = index
        self.services = services
        self.max_run_s = max_run_s
        self.gpu_peak_mb: int | None = None  # the last measured GPU peak of this trace's full runs
        plan = services.task.folds
        self.folds = plan is not None and plan.available
        self.validation_dir = services.config.workdir / "validation"
        validation = services.config.validation
        self.scorer = holdout_scorer(services.task.holdout, self.validation_dir, id_column=services.task.id_column,
                                     tolerance_se=validation.tolerance_se,
                                     tolerance_relative=validation.tolerance_relative)
        self.prepared = False
        self.plan: SmokePlan | None = None  # read at the first step (written by the run's first trace)
        self.smoke: SmokeCheck | None = None  # None: no smoke runs
        self.disk_noted = False  # the trace's wait for disk space is in the events

    def evaluate(self, code: str, step_dir: Path, goal: str, meter: Meter, *, max_debug: int, fix: Fix) -> Evaluation:
        self.prepare_inputs()
        ev = Evaluation(False, code, step_dir / "a0", 0, None, None, "no run was started")
        earlier: list[str] = []
        for attempt in range(max_debug + 1):
            ev.attempt_dir = step_dir / f"a{attempt}"
            passed = self.static_rounds(ev, goal, meter, max_debug=max_debug, fix=fix, earlier=earlier)
            self.write_attempt(ev.code, ev.attempt_dir)
            if not passed:
                return ev
            if (problem := self.short_of_disk()) is not None:
                ev.message = f"not run: {problem}"
                break
            failure = self.smoke_run(ev, smoke_folder(ev.attempt_dir), meter) if self.smoke else None
            if failure is None and ev.message != NO_TIME:
                failure = self.full_run(ev, meter)
                if failure is None:
                    return ev
            if ev.message == NO_TIME or attempt == max_debug:
                break
            assert failure is not None
            label = "smoke run" if ev.failed_in == "smoke" else "run"
            what = ev.message + (f" ({ev.cause})" if ev.cause else "")
            fixed = (drop_unexpected_keyword(ev.code, ev.cause) or drop_unused_failed_import(ev.code, ev.cause)) \
                if ev.cause is not None and self.services.config.execution.auto_fixes else None
            if fixed is not None:
                ev.code, done = fixed
                ev.auto_fixes.append(done)
                earlier.append(f"attempt {attempt + 1} ({label}): {what} -> gome {done.split(': ', 1)[1]}")
                continue
            if not self.apply_fix(ev, failure, goal, earlier, meter, fix, f"attempt {attempt + 1} ({label}): {what}"):
                break
        return ev

    def write_attempt(self, code: str, attempt_dir: Path) -> None:
        attempt_dir.mkdir(parents=True, exist_ok=True)
        (attempt_dir / "main.py").write_text(code, encoding="utf-8")
        if self.folds:
            copy_folds(self.validation_dir, attempt_dir)

    def apply_fix(self, ev: Evaluation, failure: Failure, goal: str, earlier: list[str], meter: Meter, fix: Fix,
                  what: str) -> bool:
        """Ask the fix for new code; False when its reply could not be used (the debugging ends)."""
        try:
            fixed, change = fix(ev.code, failure, goal, earlier, meter)
        except StepFailed as exc:
            ev.fix_error = f"the fix could not be applied: {exc}"
            return False
        earlier.append(what + (f" -> changed: {change}" if change else ""))
        ev.fixes.append(change or "a fix")
        ev.code = fixed
        return True

    # Before any run ------------------------------------------------------------------
    def short_of_disk(self) -> str | None:
        """Why no run may start now: too little free space where the run folder is (None: enough)."""
        config = self.services.config
        return free_space_problem(config.workdir, config.execution.min_free_disk_gb)

    def wait_for_disk(self, stop: threading.Event) -> bool:
        """While the disk is too full for a run, no step starts (its LLM calls would be wasted): say so
        once in the events, wait a while, and return True; False when there is space."""
        problem = self.short_of_disk()
        if problem is None:
            self.disk_noted = False
            return False
        if not self.disk_noted:
            self.services.events.write(Note(level="warning", trace=self.index,
                                            message=f"no new step until space is freed: {problem}"))
            self.disk_noted = True
        stop.wait(min(DISK_WAIT_S, max(0.0, self.services.budget.remaining())))
        return True

    def prepare_inputs(self) -> None:
        """Read the run's smoke plan (the columns of its tables, the sampled data), writing it first
        when this trace is the run's first to get here; a plan that cannot be made leaves both
        the column check and smoke runs off."""
        execution = self.services.config.execution
        if self.prepared or not (execution.static_checks or execution.smoke.enabled):
            return
        self.prepared = True
        s = self.services
        task = s.task
        folds, holdout = task.folds, task.holdout
        label = folds.label_column if folds is not None and folds.available else (
            task.target_columns[0] if len(task.target_columns) == 1 else None)
        try:
            sample_rel = Path(task.sample_path).resolve().relative_to(Path(task.data_dir).resolve()).as_posix()
            plan, made = prepare_smoke(
                s.executor.data_dir, self.validation_dir / SMOKE_DIR, sample=s.sample, sample_rel=sample_rel,
                id_column=task.id_column, label=label,
                train_table=(folds.table if folds is not None and folds.available else
                             holdout.table if holdout is not None and holdout.available else None),
                holdout_file=holdout.file if holdout is not None and holdout.available else None,
                validation_dir=self.validation_dir, rows=execution.smoke.rows, seed=s.config.seed,
                hidden=s.executor.hidden, sampled=execution.smoke.enabled)
            self.smoke = SmokeCheck(self.validation_dir / SMOKE_DIR, plan, sample=s.sample,
                                    id_column=task.id_column) if plan.available else None
        except (OSError, ValueError, TaskError) as exc:
            log.warning("trace %d: no smoke runs and no column checks: the sample of the data failed: %s",
                        self.index, exc)
            plan, made = None, True
            self.smoke = None
        if made:
            self.announce(plan)
        self.plan = plan

    def announce(self, plan: SmokePlan | None) -> None:
        """Say once in the run's events (as the run's, not this trace's) what the smoke runs and the
        column checks can do."""
        execution = self.services.config.execution
        if execution.smoke.enabled:
            message = (plan.reason if plan is not None else "no smoke runs: the sample of the data could not be made")
            if plan is not None and plan.available:
                message += f", {execution.smoke.time_limit_s:g} s limit"
            self.services.events.write(Note(level="info" if plan is not None and plan.available else "warning",
                                            message=message))
        if execution.static_checks and (plan is None or plan.tables is None):
            self.services.events.write(Note(level="info", message=(
                "the static checks do not check column names: the columns of some input files are unknown")))

    def static_rounds(self, ev: Evaluation, goal: str, meter: Meter, *, max_debug: int, fix: Fix,
                      earlier: list[str]) -> bool:
        """Check the code and have its problems fixed without a run (at most `max_debug` rounds in a
        step); False when problems remain (then the step fails without a run)."""
        execution = self.services.config.execution
        if not execution.static_checks:
            return True
        tables = self.plan.tables if self.plan is not None else None
        while True:
            if execution.auto_fixes:
                ev.code, moved = move_misplaced_imports(ev.code)
                ev.code, added = add_missing_imports(ev.code)
                # A fix reply may undo them; they are made again, recorded once.
                ev.auto_fixes += [f for f in [*moved, *(f"added `{line}`" for line in added)] if f not in ev.auto_fixes]
            found = check_code(ev.code, python=self.services.executor.python, tables=tables)
            problems = [str(p) for p in found]
            if not problems:
                return True
            for problem in problems:
                if problem not in ev.static_problems and len(ev.static_problems) < STATIC_PROBLEMS_KEPT:
                    ev.static_problems.append(problem)
            ev.failed_in, ev.message, ev.problems = "static", STATIC_FAILED, problems
            ev.result = ev.check = ev.cause = None
            failure = ev.failure = Failure(message=STATIC_FAILED, problems=problems, stderr_tail="", stdout_tail="",
                                           line=found[0].line, tables=self.tables_shown(ev.code))
            if ev.static_fixes >= max_debug:
                return False
            ev.static_fixes += 1
            what = f"static check: {len(problems)} problem(s), e.g. {problems[0]}"
            if not self.apply_fix(ev, failure, goal, earlier, meter, fix, what):
                return False

    # Runs ------------------------------------------------------------------------------
    def smoke_run(self, ev: Evaluation, smoke_dir: Path, meter: Meter) -> Failure | None:
        """Run the code on the sampled data; the failure to fix, or None (passed, timed out without
        failing, or no time left: then `ev.message` says so)."""
        assert self.smoke is not None
        execution = self.services.config.execution
        smoke_dir.mkdir(parents=True, exist_ok=True)
        (smoke_dir / "main.py").write_text(ev.code, encoding="utf-8")
        self.smoke.prepare(smoke_dir)
        outcome = self.run_once(ev.code, smoke_dir, limit_s=execution.smoke.time_limit_s,
                                input_dir=self.smoke.input_dir, measure=False)
        (smoke_dir / "main.py").write_text(ev.code, encoding="utf-8")  # whatever the solution did to it
        if outcome is None:
            ev.message = NO_TIME
            return None
        result, retried = outcome
        ev.smoke_runs += 1 + retried
        ev.oom_retries += retried
        ev.smoke_s += result.duration_s
        meter.run_s += result.duration_s
        if result.status == "timeout":
            ev.smoke, ev.result = "timeout", result  # the last run, if the budget leaves no full run
            log.info("trace %d: the smoke run reached its %g s limit without failing; the full run goes ahead",
                     self.index, execution.smoke.time_limit_s)
            return None
        problems = self.smoke.problems(smoke_dir, needs_score=self.scorer is None) if result.status == "ok" else []
        if result.status == "ok" and not problems:
            ev.smoke = "passed"
            return None
        # The step's code and the failing run's logs are in the smoke folder (what views of the step read).
        ev.smoke, ev.failed_in, ev.result, ev.check, ev.attempt_dir = "failed", "smoke", result, None, smoke_dir
        ev.cause = failure_cause(result.stderr_tail) if result.status != "ok" else None
        what = result.message if result.status != "ok" else "finished, but its outputs break the contract"
        plan = self.smoke.plan
        ev.message = (f"the smoke run (before the full run: at most {plan.rows} rows per table, "
                      f"{execution.smoke.time_limit_s:g} s limit) {what}")
        ev.problems = problems
        return self.failure(ev, result)

    def full_run(self, ev: Evaluation, meter: Meter) -> Failure | None:
        """Run the code on the full data; the failure to fix, or None (it succeeded, `ev.ok`; or no
        time was left: `ev.message` says so)."""
        outcome = self.run_once(ev.code, ev.attempt_dir)
        # The solution may have replaced or removed its own main.py; the step's code is what was proposed.
        (ev.attempt_dir / "main.py").write_text(ev.code, encoding="utf-8")
        if outcome is None:
            ev.message = NO_TIME
            return None
        result, retried = outcome
        ev.runs += 1 + retried
        ev.oom_retries += retried
        meter.run_s += result.duration_s
        check = self.check(ev.attempt_dir, result)
        ev.result, ev.check = result, check
        if result.status == "ok" and check.ok:
            ev.ok, ev.failed_in, ev.cause, ev.problems = True, None, None, []
            ev.message = "ran and produced a valid scored submission"
            return None
        ev.failed_in = "run"
        ev.message = (result.message if result.status != "ok" else
                      "the run finished but its self-reported score cannot be trusted" if check.untrusted else
                      "the run finished but its outputs break the contract")
        ev.problems = check.problems if result.status == "ok" else check.problems[:3]
        ev.cause = failure_cause(result.stderr_tail) if result.status != "ok" else None
        if retried and is_gpu_oom(result.stderr_tail):
            ev.message += " (CUDA out of memory even with the whole GPU to itself)"
        return self.failure(ev, result)

    def failure(self, ev: Evaluation, result: RunResult) -> Failure:
        """What a fix is shown of a failed run (kept in `ev.failure`): the error, the whole traceback,
        the failing lines of main.py and the columns of the tables the code reads."""
        line = ev.cause.line if ev.cause is not None else None
        ev.failure = Failure(message=ev.message, problems=ev.problems, stderr_tail=tail(result.stderr_tail),
                             stdout_tail=tail(result.stdout_tail, 1200), cause=None if ev.cause is None else str(ev.cause),
                             line=line,
                             traceback=last_traceback(result.stderr_tail, TRACEBACK_CHARS),
                             excerpt=code_excerpt(ev.code, line) if line else "", tables=self.tables_shown(ev.code))
        return ev.failure

    def tables_shown(self, code: str) -> list[str]:
        """`path: columns` of each input table `code` names (the smoke plan knows the columns)."""
        tables = self.plan.tables if self.plan is not None else None
        if not tables:
            return []
        shown = []
        for path in tables_named(code, tables)[:TABLES_SHOWN]:
            columns = tables[path]
            more = f", ... ({len(columns)} columns)" if len(columns) > COLUMNS_SHOWN else ""
            shown.append(f"input/{path}: {', '.join(columns[:COLUMNS_SHOWN])}{more}")
        return shown

    def check(self, attempt_dir: Path, result: RunResult) -> OutputCheck:
        check = check_outputs(attempt_dir, self.services.sample)
        if self.scorer is not None:
            check = self.scorer.check(attempt_dir, check)
        changed = folds_problem(self.validation_dir, attempt_dir) if self.folds else None
        if changed is not None:
            check = check.model_copy(update={"valid_submission": False, "problems": [changed, *check.problems]})
        validator = self.services.validator
        if result.status == "ok" and check.ok and validator is not None:
            problem = validator(attempt_dir / "submission.csv")
            if problem is not None:
                check = check.model_copy(update={"valid_submission": False, "problems": [problem]})
        return check

    def run_once(self, code: str, attempt_dir: Path, *, limit_s: float | None = None, input_dir: Path | None = None,
                 measure: bool = True) -> tuple[RunResult, int] | None:
        """Run main.py under a resource lease; returns the result and whether it was retried after a GPU
        out-of-memory failure. None: no time left. `limit_s` caps the run's time (a smoke run),
        `input_dir` replaces its data, `measure` keeps its GPU peak for the next leases."""
        s = self.services
        execution = s.config.execution
        gpu, declared_mb = needs_gpu(code)
        need = declared_mb or (int(self.gpu_peak_mb * 1.25) if self.gpu_peak_mb else None)
        exclusive = False
        for retried in (0, 1):
            try:
                with s.scheduler.lease(owner=f"trace{self.index}", gpu=gpu, mem_mb=need, exclusive=exclusive,
                                       deadline=s.budget.deadline) as lease:
                    timeout = s.budget.run_timeout(self.max_run_s)
                    if timeout < execution.min_run_seconds:
                        return None
                    spec = RunSpec(
                        workdir=attempt_dir, timeout_s=min(timeout, limit_s or timeout), input_dir=input_dir,
                        memory_limit_bytes=self.memory_limit(),
                        env={**lease.env(), "GOME_SEED": str(s.config.seed),
                             **({"GOME_FOLDS": FOLDS_FILE} if self.folds else {}),
                             **(self.scorer.env() if self.scorer else {})},
                    )
                    result = s.executor.run(spec, on_poll=lambda pids: s.scheduler.observe(lease, pids))
                    peak = s.scheduler.peak_mb(lease)
            except LeaseTimeout:
                return None
            if peak and measure:
                self.gpu_peak_mb = peak
            oom = gpu and result.status == "failed" and is_gpu_oom(result.stderr_tail)
            if not oom or exclusive:
                return result, retried
            log.warning("trace %d: CUDA out of memory; running again with the GPU to itself", self.index)
            exclusive = True
        raise AssertionError("unreachable")

    def memory_limit(self) -> int:
        limit_gb = self.services.config.execution.memory_limit_gb
        if limit_gb is not None:
            return int(limit_gb * 2**30)
        return int(psutil.virtual_memory().total * 0.75)
