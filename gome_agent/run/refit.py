"""The refit: the submitted solution trained once more on every labelled row.

While gome scores a run (task/holdout.py), solutions train without the rows it holds out, so the
chosen step's submission comes from a model fitted on 85 % of the labels. Once the final choice is
made, that solution runs again on the competition's whole training table (the held-out rows back
in, with folds that cover them, and the held-out features file still where the contract says), and
when it produces a valid submission, that submission is the one put in place. Its score stays the
one gome measured before: the held-out rows cannot judge a model trained on them. A refit that
fails, writes an invalid submission or finds no time leaves the measured submission in place, and
the `refit` event says what happened.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from gome_agent.execution.executor import Executor, RunSpec
from gome_agent.execution.scheduler import LeaseTimeout, ResourceScheduler, needs_gpu
from gome_agent.optimizer.budget import Budget
from gome_agent.records.best import BestKeeper
from gome_agent.records.events import Refit, RefitOutcome
from gome_agent.task.analysis import Task
from gome_agent.task.folds import FOLDS_FILE
from gome_agent.task.holdout import holdout_env, refit_folds
from gome_agent.task.sample import SampleSubmission
from gome_agent.task.submission import check_submission

log = logging.getLogger(__name__)

REFIT_DIR = "final/refit"
MIN_REFIT_S = 30.0  # below this a refit cannot even start its interpreter and read the data reliably


def refit_time_s(runtime_s: float | None) -> float:
    """The time a refit is given: the measured run time with a margin (more rows take longer)."""
    return (runtime_s or 60.0) * 1.5 + 30.0


def refit(*, workdir: Path, task: Task, sample: SampleSubmission, executor: Executor, scheduler: ResourceScheduler,
          keeper: BestKeeper, budget: Budget, seed: int, runtime_s: float | None) -> Refit | None:
    """Refit the solution in place on every labelled row; None when there is nothing to refit (no
    measured solution in place, or a run whose scores are self-reported)."""
    best = keeper.current()
    if (not task.scored_by_gome or best is None or best.source in ("fallback", "refit") or best.code_dir is None
            or best.trace is None or best.step is None or best.score is None):
        return None
    assert task.holdout is not None
    started = time.monotonic()

    def outcome(what: RefitOutcome, message: str) -> Refit:
        assert best is not None and best.trace is not None and best.step is not None
        log.info("refit of trace %d step %d: %s (%s)", best.trace, best.step, what, message)
        return Refit(trace=best.trace, step=best.step, outcome=what, seconds=round(time.monotonic() - started, 3),
                     message=message)

    timeout = min(refit_time_s(runtime_s), budget.remaining_total() - 5.0)
    if timeout < MIN_REFIT_S:
        return outcome("no_time", f"{budget.remaining_total():.0f} s left, the refit needs about "
                                  f"{refit_time_s(runtime_s):.0f} s; the measured submission stays")
    folder = workdir / REFIT_DIR
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copyfile(workdir / best.code_dir / "main.py", folder / "main.py")
    validation = workdir / "validation"
    folds = refit_folds(validation, task.id_column)
    if folds is not None:
        shutil.copyfile(folds, folder / FOLDS_FILE)
    code = (folder / "main.py").read_text(encoding="utf-8")
    gpu, declared = needs_gpu(code)
    try:
        with scheduler.lease(owner="refit", gpu=gpu, mem_mb=declared, deadline=time.time() + timeout) as lease:
            result = executor.run(
                RunSpec(workdir=folder, timeout_s=max(5.0, timeout - (time.monotonic() - started)),
                        env={**lease.env(), "GOME_SEED": str(seed), **holdout_env(task.holdout),
                             **({"GOME_FOLDS": FOLDS_FILE} if folds is not None else {})}),
                on_poll=lambda pids: scheduler.observe(lease, pids),
            )
    except LeaseTimeout:
        return outcome("no_time", "no GPU/CPU lease in time; the measured submission stays")
    if result.status == "timeout":
        return outcome("no_time", f"the refit ran out of its {timeout:.0f} s; the measured submission stays")
    if result.status != "ok":
        return outcome("failed", f"{result.message}; the measured submission stays")
    problems = check_submission(folder / "submission.csv", sample)
    if problems:
        return outcome("invalid", f"its submission.csv: {'; '.join(problems[:3])}; the measured submission stays")
    keeper.offer(score=best.score, trace=best.trace, step=best.step, attempt_dir=folder, force=True, source="refit")
    return outcome("submitted", f"trained on every labelled row in {result.duration_s:.0f} s; its submission is "
                                f"in place, with the score gome measured before the refit ({best.score:.6g})")
