"""Final selection: re-run the best candidates with other seeds and submit the most robust one.

A validation score can be lucky. In the time reserved for it at the end of the run, the top
candidates across all traces are run again with other values of `GOME_SEED` (which the solution
contract makes the seed of the validation split and the models, so each re-run sees a fresh
split). The re-runs are planned from the candidates' measured run times, best candidates first,
so that what is started can finish within the reserve. A candidate's robust score is the mean
over its original score and its re-runs that scored:

- a re-run that crashed or broke the contract makes the candidate untrusted;
- a re-run that ran out of time (or was not started for lack of it) is no evidence, never a
  disqualification, so a slow, strong candidate is compared on what is known of it;
- a re-run whose seed changed neither the score nor the predictions says nothing about
  robustness (the code ignores GOME_SEED) and is not counted.

The winner's submission is put in place, and the record says why it won.
"""

from __future__ import annotations

import logging
import math
import shutil
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gome_agent.execution.executor import Executor, RunSpec
from gome_agent.execution.scheduler import LeaseTimeout, ResourceScheduler, needs_gpu
from gome_agent.optimizer.budget import Budget
from gome_agent.records.best import BestKeeper
from gome_agent.records.candidates import pick_candidates
from gome_agent.records.events import EventLog, FinalSelection, Rerun, RerunOutcome, StepRecord
from gome_agent.records.housekeeping import prune
from gome_agent.task.analysis import Task
from gome_agent.task.folds import FOLDS_FILE, copy_folds
from gome_agent.task.holdout import HoldoutScorer
from gome_agent.task.sample import SampleSubmission
from gome_agent.task.submission import check_outputs

log = logging.getLogger(__name__)


@dataclass
class _Rerun:
    step: StepRecord
    seed: int
    score: float | None
    outcome: RerunOutcome


def expected_rerun_s(step: StepRecord) -> float:
    """What one re-run of `step` is planned to take: its measured run time with a margin."""
    return (step.runtime_s or 60.0) * 1.25 + 10.0


def _schedule(candidates: list[StepRecord], seeds: list[int], slots: int, available_s: float
              ) -> tuple[list[tuple[StepRecord, int]], list[tuple[StepRecord, int]], list[float]]:
    """Re-runs onto `slots` lanes, first seed of every candidate first, best candidate first: those
    that fit in `available_s`, those that do not, and how busy each lane ends up."""
    lanes = [0.0] * max(1, slots)
    planned, skipped = [], []
    for seed in seeds:
        for cand in candidates:
            lane = min(range(len(lanes)), key=lambda i: lanes[i])
            if lanes[lane] + expected_rerun_s(cand) <= available_s:
                lanes[lane] += expected_rerun_s(cand)
                planned.append((cand, seed))
            else:
                skipped.append((cand, seed))
    return planned, skipped, lanes


def plan_reruns(candidates: list[StepRecord], seeds: list[int], slots: int, available_s: float
                ) -> tuple[list[tuple[StepRecord, int]], list[tuple[StepRecord, int]]]:
    """The re-runs that fit in `available_s` on `slots` parallel lanes, and those that do not."""
    planned, skipped, _ = _schedule(candidates, seeds, slots, available_s)
    return planned, skipped


def rerun_makespan(candidates: list[StepRecord], seeds: list[int], slots: int) -> float:
    """How long re-running every candidate with every seed takes on `slots` lanes, as planned."""
    return max(_schedule(candidates, seeds, slots, math.inf)[2])


def sized_reserve(candidates: list[StepRecord], seeds: list[int], slots: int, *, configured_s: float,
                  ceiling_s: float, stop_s: float) -> float:
    """The time to keep for the final selection: what re-running `candidates` with `seeds` needs
    (plus `stop_s` to stop the traces), never less than `configured_s`, never more than `ceiling_s`."""
    if len(candidates) < 2 or not seeds:
        return configured_s
    needed = rerun_makespan(candidates, seeds, slots) + stop_s
    return min(max(configured_s, needed), max(configured_s, ceiling_s))


def is_trusted(c: Rerun) -> bool:
    if c.mean is None:
        return False
    if c.rerun_outcomes:
        return "failed" not in c.rerun_outcomes
    return all(s is not None for s in c.rerun_scores)  # records made before outcomes existed


def robust_order(candidates: list[Rerun], higher_is_better: bool) -> list[Rerun]:
    """Trusted candidates (no re-run failed) by mean score, then by smaller spread, then by original score."""
    sign = 1.0 if higher_is_better else -1.0
    trusted = [c for c in candidates if is_trusted(c)]
    return sorted(trusted, key=lambda c: (sign * (c.mean or 0.0), -(c.std or 0.0), sign * c.score), reverse=True)


class FinalSelector:
    def __init__(
        self,
        *,
        workdir: Path,
        task: Task,
        sample: SampleSubmission,
        executor: Executor,
        scheduler: ResourceScheduler,
        keeper: BestKeeper,
        events: EventLog,
        budget: Budget,
        seeds: list[int],
        limit: int,
        slots: int,
        scorer: HoldoutScorer | None = None,
        tidy: bool = True,
    ) -> None:
        self.workdir = workdir
        self.task = task
        self.sample = sample
        self.executor = executor
        self.scheduler = scheduler
        self.keeper = keeper
        self.events = events
        self.budget = budget
        self.seeds = seeds
        self.limit = limit
        self.slots = max(1, slots)
        self.scorer = scorer
        self.tidy = tidy  # once scored, a re-run's folder keeps only its code, scores and logs

    def run(self) -> FinalSelection | None:
        candidates = pick_candidates(self.events.steps(), self.task, self.limit)
        if len(candidates) < 2 or not self.seeds:
            return None
        planned, skipped = plan_reruns(candidates, self.seeds, self.slots, self.budget.remaining_total() - 5.0)
        with ThreadPoolExecutor(max_workers=self.slots) as pool:
            reruns = list(pool.map(lambda job: self._tidied(self._rerun(*job)), planned))
        reruns += [_Rerun(step, seed, None, "no_time") for step, seed in skipped]
        results = []
        for cand in candidates:
            mine = sorted((r for r in reruns if r.step is cand), key=lambda r: self.seeds.index(r.seed))
            counted = [r.score for r in mine if r.outcome == "scored" and r.score is not None]
            observed = [cand.score or 0.0, *counted]
            results.append(Rerun(
                trace=cand.trace, step=cand.step, score=cand.score or 0.0, rerun_scores=[r.score for r in mine],
                mean=statistics.fmean(observed), std=statistics.pstdev(observed) if len(observed) > 1 else 0.0,
                rerun_outcomes=[r.outcome for r in mine], runtime_s=cand.runtime_s,
            ))
        ranked = robust_order(results, self.task.higher_is_better)
        if not ranked:
            selection = FinalSelection(candidates=results, chosen_trace=None, chosen_step=None,
                                       reason="every candidate had a failed re-run; the best validation score stays")
        else:
            winner = ranked[0]
            step = next(c for c in candidates if c.trace == winner.trace and c.step == winner.step)
            assert step.code_dir is not None
            self.keeper.offer(score=step.score or 0.0, trace=step.trace, step=step.step,
                              attempt_dir=self.workdir / step.code_dir, force=True, source="final_selection")
            selection = FinalSelection(candidates=results, chosen_trace=winner.trace, chosen_step=winner.step,
                                       reason=self._reason(winner, results))
        self.events.write(selection)
        log.info("final selection: %s", selection.reason)
        return selection

    def _reason(self, winner: Rerun, results: list[Rerun]) -> str:
        scored = winner.rerun_outcomes.count("scored")
        reason = (f"trace {winner.trace} step {winner.step}: highest mean {self.task.metric_name} "
                  f"{winner.mean:.6g} over its own score and {scored} scored re-run(s) (seeds {self.seeds})")
        notes = []
        for c in results:
            label = f"trace {c.trace} step {c.step}"
            if "failed" in c.rerun_outcomes:
                notes.append(f"{label} not trusted (a re-run failed)")
            elif "no_time" in c.rerun_outcomes:
                notes.append(f"{label}: {c.rerun_outcomes.count('no_time')} re-run(s) without time, no evidence")
            if "unchanged" in c.rerun_outcomes:
                notes.append(f"{label}: another seed changed nothing (GOME_SEED ignored), not counted")
        return reason + ("; " + "; ".join(notes) if notes else "")

    def _folder(self, step: StepRecord, seed: int) -> Path:
        return self.workdir / "final" / f"t{step.trace}-s{step.step:04d}" / f"seed{seed}"

    def _tidied(self, rerun: _Rerun) -> _Rerun:
        """Delete what the scored re-run wrote that nothing reads again (records/housekeeping.py)."""
        if self.tidy:
            prune(self._folder(rerun.step, rerun.seed), submittable=False)
        return rerun

    def _rerun(self, step: StepRecord, seed: int) -> _Rerun:
        assert step.code_dir is not None
        source = self.workdir / step.code_dir
        folder = self._folder(step, seed)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        shutil.copyfile(source / "main.py", folder / "main.py")
        folds = copy_folds(self.workdir / "validation", folder, seed)  # a fresh split for another seed
        code = (folder / "main.py").read_text(encoding="utf-8")
        gpu, declared = needs_gpu(code)
        expected = (step.runtime_s or 60.0) * 2 + 30.0  # the re-run's own time limit
        deadline = time.time() + self.budget.remaining_total()
        try:
            with self.scheduler.lease(owner=f"final-t{step.trace}", gpu=gpu, mem_mb=declared or step.gpu_peak_mb,
                                      deadline=deadline) as lease:
                timeout = min(expected, self.budget.remaining_total() - 5.0)
                if timeout < 5.0:
                    return _Rerun(step, seed, None, "no_time")
                result = self.executor.run(
                    RunSpec(workdir=folder, timeout_s=timeout, env={**lease.env(), "GOME_SEED": str(seed),
                                                                   **({"GOME_FOLDS": FOLDS_FILE} if folds else {}),
                                                                   **(self.scorer.env() if self.scorer else {})}),
                    on_poll=lambda pids: self.scheduler.observe(lease, pids),
                )
        except Exception as exc:  # noqa: BLE001 - one failed re-run must not end the selection
            log.warning("final re-run of trace %d step %d failed to start: %s", step.trace, step.step, exc)
            return _Rerun(step, seed, None, "no_time" if isinstance(exc, LeaseTimeout) else "failed")
        if result.status == "timeout":
            return _Rerun(step, seed, None, "no_time")
        check = check_outputs(folder, self.sample)
        if self.scorer is not None:
            check = self.scorer.check(folder, check)
        if result.status != "ok" or not check.ok or check.score is None:
            return _Rerun(step, seed, None, "failed")
        if check.score == step.score and _same_file(folder / "submission.csv", source / "submission.csv"):
            return _Rerun(step, seed, check.score, "unchanged")
        return _Rerun(step, seed, check.score, "scored")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.read_bytes() == b.read_bytes()
    except OSError:
        return False
