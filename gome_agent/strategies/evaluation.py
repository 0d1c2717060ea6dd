"""Running a step's code: under a GPU/CPU lease, with bounded debugging, and checking its outputs.

A GPU run that dies of CUDA out-of-memory is run again once with the GPU to itself (another run's
memory, not the idea, may be at fault). A run that fails is shown to a fix (the strategy's `fix`)
up to `max_debug` times, each fix seeing the error and the earlier attempts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from gome_agent.execution.executor import RunResult, RunSpec
from gome_agent.execution.failures import Cause, failure_cause
from gome_agent.execution.scheduler import LeaseTimeout, is_gpu_oom, needs_gpu
from gome_agent.strategies.step import Meter, Services, StepFailed
from gome_agent.strategies.views import Failure, tail
from gome_agent.task.folds import FOLDS_FILE, copy_folds, folds_problem
from gome_agent.task.holdout import holdout_scorer
from gome_agent.task.submission import OutputCheck, check_outputs

log = logging.getLogger(__name__)

# fix(code, failure, goal, earlier attempts, meter) -> (fixed code, the change it made)
Fix = Callable[[str, Failure, str, list[str], Meter], tuple[str, str]]


@dataclass
class Evaluation:
    """The outcome of running a step's code, after any debug attempts."""

    ok: bool
    code: str
    attempt_dir: Path
    runs: int
    result: RunResult | None
    check: OutputCheck | None
    message: str
    problems: list[str] = field(default_factory=list)
    oom_retries: int = 0
    cause: Cause | None = None  # the exception that ended the last failed run
    fixes: list[str] = field(default_factory=list)  # the changes the debug attempts made
    fix_error: str | None = None  # why the last fix could not be used, when that ended the debugging


class Evaluator:
    """Runs one trace's code in its step folders (`a0`, `a1`, ... one per attempt)."""

    def __init__(self, *, index: int, services: Services, max_run_s: float) -> None:
        self.index = index
        self.services = services
        self.max_run_s = max_run_s
        self.gpu_peak_mb: int | None = None  # the last measured GPU peak of this trace's runs
        plan = services.task.folds
        self.folds = plan is not None and plan.available
        self.validation_dir = services.config.workdir / "validation"
        validation = services.config.validation
        self.scorer = holdout_scorer(services.task.holdout, self.validation_dir, id_column=services.task.id_column,
                                     tolerance_se=validation.tolerance_se,
                                     tolerance_relative=validation.tolerance_relative)

    def evaluate(self, code: str, step_dir: Path, goal: str, meter: Meter, *, max_debug: int, fix: Fix) -> Evaluation:
        earlier: list[str] = []
        attempt_dir = step_dir / "a0"
        result: RunResult | None = None
        check: OutputCheck | None = None
        message, problems = "no run was started", []
        cause: Cause | None = None
        fixes: list[str] = []
        fix_error: str | None = None
        runs = oom_retries = 0
        for attempt in range(max_debug + 1):
            attempt_dir = step_dir / f"a{attempt}"
            attempt_dir.mkdir(parents=True, exist_ok=True)
            (attempt_dir / "main.py").write_text(code, encoding="utf-8")
            if self.folds:
                copy_folds(self.validation_dir, attempt_dir)
            outcome = self.run_once(code, attempt_dir)
            # The solution may have replaced or removed its own main.py; the step's code is what was proposed.
            (attempt_dir / "main.py").write_text(code, encoding="utf-8")
            if outcome is None:
                message = "not run: the time budget is spent"
                break
            result, retried = outcome
            runs += 1 + retried
            oom_retries += retried
            meter.run_s += result.duration_s
            check = self.check(attempt_dir, result)
            if result.status == "ok" and check.ok:
                return Evaluation(True, code, attempt_dir, runs, result, check,
                                  "ran and produced a valid scored submission", oom_retries=oom_retries, fixes=fixes)
            message = (result.message if result.status != "ok" else
                       "the run finished but its self-reported score cannot be trusted" if check.untrusted else
                       "the run finished but its outputs break the contract")
            problems = check.problems if result.status == "ok" else check.problems[:3]
            cause = failure_cause(result.stderr_tail) if result.status != "ok" else None
            if retried and is_gpu_oom(result.stderr_tail):
                message += " (CUDA out of memory even with the whole GPU to itself)"
            if attempt == max_debug:
                break
            failure = Failure(message=message, problems=problems, stderr_tail=tail(result.stderr_tail),
                              stdout_tail=tail(result.stdout_tail, 1200), cause=None if cause is None else str(cause))
            try:
                fixed, change = fix(code, failure, goal, earlier, meter)
            except StepFailed as exc:
                fix_error = f"the fix could not be applied: {exc}"
                break
            what = message + (f" ({cause})" if cause else "")
            earlier.append(f"attempt {attempt + 1}: {what}" + (f" -> changed: {change}" if change else ""))
            fixes.append(change or "a fix")
            code = fixed
        return Evaluation(False, code, attempt_dir, runs, result, check, message, problems, oom_retries=oom_retries,
                          cause=cause, fixes=fixes, fix_error=fix_error)

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

    def run_once(self, code: str, attempt_dir: Path) -> tuple[RunResult, int] | None:
        """Run main.py under a resource lease; returns the result and whether it was retried after a GPU
        out-of-memory failure. None: no time left."""
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
                        workdir=attempt_dir, timeout_s=timeout, memory_limit_bytes=self.memory_limit(),
                        env={**lease.env(), "GOME_SEED": str(s.config.seed),
                             **({"GOME_FOLDS": FOLDS_FILE} if self.folds else {}),
                             **(self.scorer.env() if self.scorer else {})},
                    )
                    result = s.executor.run(spec, on_poll=lambda pids: s.scheduler.observe(lease, pids))
                    peak = s.scheduler.peak_mb(lease)
            except LeaseTimeout:
                return None
            if peak:
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
