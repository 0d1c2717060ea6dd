"""Final selection: re-run the best candidates with other seeds and submit the most robust one.

A validation score can be lucky. In the time reserved for it at the end of the
run, the top candidates across all traces are run again with other values of
`GOME_SEED` (which the solution contract makes the seed of the validation split
and the models, so each re-run sees a fresh split). A candidate's robust score is
the mean over its original and re-run scores; a candidate whose re-run fails is
not trusted. The winner's submission is put in place.
"""

from __future__ import annotations

import logging
import shutil
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gome_agent.execution.executor import Executor, RunSpec
from gome_agent.execution.scheduler import ResourceScheduler, needs_gpu
from gome_agent.optimizer.budget import Budget
from gome_agent.records.best import BestKeeper
from gome_agent.records.events import EventLog, FinalSelection, Rerun, StepRecord
from gome_agent.task.analysis import Task
from gome_agent.task.sample import SampleSubmission
from gome_agent.task.submission import check_outputs

log = logging.getLogger(__name__)


def pick_candidates(steps: list[StepRecord], task: Task, limit: int) -> list[StepRecord]:
    """The best accepted step of every trace, then the next best overall, up to `limit`."""
    accepted = [s for s in steps if s.accepted and s.score is not None and s.code_dir]
    sign = 1.0 if task.higher_is_better else -1.0
    accepted.sort(key=lambda s: sign * (s.score or 0.0), reverse=True)
    chosen: list[StepRecord] = []
    for trace in sorted({s.trace for s in accepted}):
        chosen.append(next(s for s in accepted if s.trace == trace))
    chosen.sort(key=lambda s: sign * (s.score or 0.0), reverse=True)
    chosen = chosen[:limit]
    for s in accepted:
        if len(chosen) >= limit:
            break
        if s not in chosen:
            chosen.append(s)
    return chosen


@dataclass
class _Rerun:
    step: StepRecord
    seed: int
    score: float | None


def robust_order(candidates: list[Rerun], higher_is_better: bool) -> list[Rerun]:
    """Trusted candidates (every re-run scored) by mean score, then by smaller spread, then by original score."""
    sign = 1.0 if higher_is_better else -1.0
    trusted = [c for c in candidates if c.mean is not None and all(s is not None for s in c.rerun_scores)]
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

    def run(self) -> FinalSelection | None:
        candidates = pick_candidates(self.events.steps(), self.task, self.limit)
        if len(candidates) < 2 or not self.seeds:
            return None
        jobs = [(c, seed) for seed in self.seeds for c in candidates]
        with ThreadPoolExecutor(max_workers=self.slots) as pool:
            reruns = list(pool.map(lambda job: self._rerun(*job), jobs))
        results = []
        for cand in candidates:
            scores = [r.score for r in reruns if r.step is cand]
            observed = [cand.score, *[s for s in scores if s is not None]]
            results.append(Rerun(
                trace=cand.trace, step=cand.step, score=cand.score or 0.0, rerun_scores=scores,
                mean=statistics.fmean(observed) if observed else None,
                std=statistics.pstdev(observed) if len(observed) > 1 else 0.0,
            ))
        ranked = robust_order(results, self.task.higher_is_better)
        if not ranked:
            selection = FinalSelection(candidates=results, chosen_trace=None, chosen_step=None,
                                       reason="no candidate scored in every re-run; the best validation score stays")
        else:
            winner = ranked[0]
            step = next(c for c in candidates if c.trace == winner.trace and c.step == winner.step)
            assert step.code_dir is not None
            self.keeper.offer(score=step.score or 0.0, trace=step.trace, step=step.step,
                              attempt_dir=self.workdir / step.code_dir, force=True)
            selection = FinalSelection(
                candidates=results, chosen_trace=winner.trace, chosen_step=winner.step,
                reason=f"highest mean {self.task.metric_name} over seeds {[0, *self.seeds]}: {winner.mean:.6g}",
            )
        self.events.write(selection)
        log.info("final selection: %s", selection.reason)
        return selection

    def _rerun(self, step: StepRecord, seed: int) -> _Rerun:
        assert step.code_dir is not None
        source = self.workdir / step.code_dir
        folder = self.workdir / "final" / f"t{step.trace}-s{step.step:04d}" / f"seed{seed}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        shutil.copyfile(source / "main.py", folder / "main.py")
        code = (folder / "main.py").read_text(encoding="utf-8")
        gpu, declared = needs_gpu(code)
        expected = (step.runtime_s or 60.0) * 2 + 60.0
        deadline = time.time() + self.budget.remaining_total()
        try:
            with self.scheduler.lease(owner=f"final-t{step.trace}", gpu=gpu, mem_mb=declared or step.gpu_peak_mb,
                                      deadline=deadline) as lease:
                timeout = min(expected, self.budget.remaining_total() - 5.0)
                if timeout < 5.0:
                    return _Rerun(step, seed, None)
                result = self.executor.run(
                    RunSpec(workdir=folder, timeout_s=timeout, env={**lease.env(), "GOME_SEED": str(seed)}),
                    on_poll=lambda pids: self.scheduler.observe(lease, pids),
                )
        except Exception as exc:  # noqa: BLE001 - one failed re-run must not end the selection
            log.warning("final re-run of trace %d step %d failed to start: %s", step.trace, step.step, exc)
            return _Rerun(step, seed, None)
        check = check_outputs(folder, self.sample)
        score = check.score if result.status == "ok" and check.ok else None
        return _Rerun(step, seed, score)
