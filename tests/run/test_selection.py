"""Final selection: the most robust candidate across seeds wins, not the luckiest."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from gome_agent.bench.competitions import build_breast_cancer
from gome_agent.execution.executor import Executor
from gome_agent.execution.scheduler import NoGpuSource, ResourceScheduler
from gome_agent.optimizer.budget import Budget
from gome_agent.records.best import BestKeeper
from gome_agent.records.events import EventLog, FinalSelection, Rerun, StepRecord, now_iso
from gome_agent.run.selection import (
    FinalSelector,
    pick_candidates,
    plan_reruns,
    rerun_makespan,
    robust_order,
    sized_reserve,
)
from gome_agent.strategies.prompt_samples import sample_task
from gome_agent.task.sample import find_sample_submission, load_sample_submission

SOLUTION = '''import json, os
import pandas as pd
seed = int(os.environ.get("GOME_SEED", "0"))
test = pd.read_csv("input/test.csv")
pd.DataFrame({{"id": test["id"], "target": {marker}}}).to_csv("submission.csv", index=False)
json.dump({{"score": {score}}}, open("scores.json", "w"))
'''


def _step(trace, step, score, code_dir):
    return StepRecord(trace=trace, step=step, kind="improve", stage="improve", status="accepted", accepted=True,
                      score=score, code_dir=code_dir, runtime_s=1.0, started_at=now_iso())


@pytest.fixture
def setting(tmp_path):
    data = build_breast_cancer(tmp_path / "comp")
    workdir = tmp_path / "run"
    events = EventLog(workdir / "events.jsonl")
    task = sample_task().model_copy(update={"data_dir": data, "sample_path": find_sample_submission(data)})
    return data, workdir, events, task


def _candidate(workdir, events, trace, step, score, score_expr, marker):
    folder = workdir / "traces" / f"t{trace}" / f"s{step:04d}" / "a0"
    folder.mkdir(parents=True)
    (folder / "main.py").write_text(SOLUTION.format(score=score_expr, marker=marker))
    pd.DataFrame({"id": [0], "target": [marker]}).to_csv(folder / "submission.csv", index=False)
    events.write(_step(trace, step, score, str(folder.relative_to(workdir))))


def test_lucky_candidate_loses_to_a_stable_one(setting):
    data, workdir, events, task = setting
    _candidate(workdir, events, 0, 2, 0.90, "0.90 if seed == 0 else 0.60", 0.111)   # lucky split
    _candidate(workdir, events, 1, 3, 0.85, "0.85 + 0.001 * seed", 0.222)            # robust
    _candidate(workdir, events, 0, 1, 0.80, "0.80", 0.333)                           # stable but weaker
    # The published best so far is the lucky one.
    lucky = workdir / "traces" / "t0" / "s0002" / "a0"
    keeper = BestKeeper(workdir, higher_is_better=True)
    keeper.offer(score=0.90, trace=0, step=2, attempt_dir=lucky)
    sample = load_sample_submission(find_sample_submission(data))
    selector = FinalSelector(
        workdir=workdir, task=task, sample=sample,
        executor=Executor(data_dir=data, cache_dir=workdir / "cache"),
        scheduler=ResourceScheduler(workdir / "scheduler", source=NoGpuSource(), cpus=2, slots=2),
        keeper=keeper, events=events, budget=Budget(600, started_at=time.time() - 500, reserve_s=120),
        seeds=[1, 2], limit=3, slots=2,
    )
    selection = selector.run()
    assert selection is not None
    assert (selection.chosen_trace, selection.chosen_step) == (1, 3)
    by_step = {(c.trace, c.step): c for c in selection.candidates}
    assert by_step[(0, 2)].rerun_scores == [0.60, 0.60]
    assert by_step[(1, 3)].mean == pytest.approx((0.85 + 0.851 + 0.852) / 3)
    # The submission in place is now the robust candidate's, from its original run.
    assert pd.read_csv(keeper.submission_path)["target"].iloc[0] == pytest.approx(0.222)
    assert keeper.current().source == "final_selection"
    assert any(isinstance(e, FinalSelection) for e in events.read())
    assert (workdir / "final" / "t1-s0003" / "seed2" / "scores.json").exists()


def test_failed_rerun_is_not_trusted(setting):
    data, workdir, events, task = setting
    _candidate(workdir, events, 0, 2, 0.95, "0.95 if seed == 0 else float('nan')", 0.1)
    _candidate(workdir, events, 1, 2, 0.90, "0.90", 0.2)
    keeper = BestKeeper(workdir, higher_is_better=True)
    selector = FinalSelector(
        workdir=workdir, task=task, sample=load_sample_submission(find_sample_submission(data)),
        executor=Executor(data_dir=data, cache_dir=workdir / "cache"),
        scheduler=ResourceScheduler(workdir / "scheduler", source=NoGpuSource(), cpus=2, slots=2),
        keeper=keeper, events=events, budget=Budget(600, started_at=time.time() - 500, reserve_s=120),
        seeds=[1], limit=4, slots=2,
    )
    selection = selector.run()
    assert (selection.chosen_trace, selection.chosen_step) == (1, 2)
    assert [c.rerun_scores for c in selection.candidates if c.trace == 0] == [[None]]


def test_candidates_cover_every_trace_then_the_best_overall():
    records = [_step(0, 1, 0.80, "a"), _step(0, 2, 0.90, "b"), _step(0, 3, 0.91, "c"),
               _step(1, 1, 0.70, "d"), _step(2, 1, 0.60, "e")]
    task = sample_task()
    picked = pick_candidates(records, task, 4)
    assert [(s.trace, s.step) for s in picked] == [(0, 3), (1, 1), (2, 1), (0, 2)]
    lower = task.model_copy(update={"higher_is_better": False})
    assert [(s.trace, s.step) for s in pick_candidates(records, lower, 2)] == [(2, 1), (1, 1)]


def test_robust_order_uses_mean_then_spread():
    a = Rerun(trace=0, step=1, score=0.9, rerun_scores=[0.7], mean=0.8, std=0.1)
    b = Rerun(trace=1, step=1, score=0.8, rerun_scores=[0.8], mean=0.8, std=0.0)
    c = Rerun(trace=2, step=1, score=0.99, rerun_scores=[None], mean=0.99, std=0.0)
    assert [x.trace for x in robust_order([a, b, c], True)] == [1, 0]


def _selector(data, workdir, events, task, keeper, *, remaining_s, seeds, limit=4):
    return FinalSelector(
        workdir=workdir, task=task, sample=load_sample_submission(find_sample_submission(data)),
        executor=Executor(data_dir=data, cache_dir=workdir / "cache"),
        scheduler=ResourceScheduler(workdir / "scheduler", source=NoGpuSource(), cpus=2, slots=2),
        keeper=keeper, events=events, budget=Budget(600, started_at=time.time() - 600 + remaining_s, reserve_s=120),
        seeds=seeds, limit=limit, slots=2,
    )


def test_a_candidate_whose_rerun_timed_out_is_not_replaced_by_a_weaker_one(setting):
    data, workdir, events, task = setting
    # The strong candidate is slow with another seed: its re-run is cut off by the reserve's end.
    _candidate(workdir, events, 0, 2, 0.95, "0.95 if seed == 0 else __import__('time').sleep(100)", 0.1)
    _candidate(workdir, events, 1, 2, 0.90, "0.90 + 0.001 * seed", 0.2)
    keeper = BestKeeper(workdir, higher_is_better=True)
    keeper.offer(score=0.95, trace=0, step=2, attempt_dir=workdir / "traces" / "t0" / "s0002" / "a0")
    started = time.monotonic()
    selection = _selector(data, workdir, events, task, keeper, remaining_s=22, seeds=[1]).run()
    assert time.monotonic() - started < 30
    assert (selection.chosen_trace, selection.chosen_step) == (0, 2)
    strong = next(c for c in selection.candidates if c.trace == 0)
    assert strong.rerun_outcomes == ["no_time"] and strong.mean == pytest.approx(0.95)
    assert "trace 0 step 2: 1 re-run(s) without time, no evidence" in selection.reason


def test_reruns_that_cannot_finish_in_the_reserve_are_not_started(setting):
    data, workdir, events, task = setting
    _candidate(workdir, events, 0, 2, 0.95, "0.95", 0.1)
    _candidate(workdir, events, 1, 2, 0.90, "0.90 + 0.001 * seed", 0.2)
    # The first candidate took 10 minutes: no re-run of it fits in the 30 s left.
    records = [s.model_copy(update={"runtime_s": 600.0 if s.trace == 0 else 1.0}) for s in events.steps()]
    events.path.unlink()
    for record in records:
        events.write(record)
    keeper = BestKeeper(workdir, higher_is_better=True)
    selection = _selector(data, workdir, events, task, keeper, remaining_s=30, seeds=[1, 2]).run()
    slow = next(c for c in selection.candidates if c.trace == 0)
    assert slow.rerun_outcomes == ["no_time", "no_time"] and not (workdir / "final" / "t0-s0002").exists()
    assert (selection.chosen_trace, selection.chosen_step) == (0, 2)


def test_a_seed_that_changes_nothing_is_no_evidence_of_robustness(setting):
    data, workdir, events, task = setting
    _candidate(workdir, events, 0, 2, 0.91, "0.91", 0.1)  # ignores GOME_SEED: same score, same predictions
    test = pd.read_csv(data / "test.csv")
    original = workdir / "traces" / "t0" / "s0002" / "a0" / "submission.csv"
    pd.DataFrame({"id": test["id"], "target": 0.1}).to_csv(original, index=False)  # what its own run wrote
    _candidate(workdir, events, 1, 2, 0.90, "0.90 + 0.001 * seed", 0.2)
    keeper = BestKeeper(workdir, higher_is_better=True)
    selection = _selector(data, workdir, events, task, keeper, remaining_s=120, seeds=[1]).run()
    fixed = next(c for c in selection.candidates if c.trace == 0)
    assert fixed.rerun_outcomes == ["unchanged"] and fixed.mean == pytest.approx(0.91) and fixed.std == 0.0
    assert "trace 0 step 2: another seed changed nothing (GOME_SEED ignored), not counted" in selection.reason


def test_reruns_are_planned_best_first_within_the_time_and_the_lanes():
    a = _step(0, 1, 0.9, "a").model_copy(update={"runtime_s": 40.0})   # 60 s planned
    b = _step(1, 1, 0.8, "b").model_copy(update={"runtime_s": 8.0})    # 20 s planned
    planned, skipped = plan_reruns([a, b], [1, 2], slots=2, available_s=75)
    assert [(s.trace, seed) for s, seed in planned] == [(0, 1), (1, 1), (1, 2)]
    assert [(s.trace, seed) for s, seed in skipped] == [(0, 2)]
    assert rerun_makespan([a, b], [1, 2], slots=2) == pytest.approx(80.0)
    assert rerun_makespan([a, b], [1, 2], slots=1) == pytest.approx(160.0)


def test_the_reserve_grows_with_the_candidates_run_times_within_its_bounds():
    fast = [_step(0, 1, 0.9, "a").model_copy(update={"runtime_s": 8.0}),
            _step(1, 1, 0.8, "b").model_copy(update={"runtime_s": 8.0})]
    slow = [s.model_copy(update={"runtime_s": 400.0}) for s in fast]
    bounds = {"configured_s": 300.0, "ceiling_s": 900.0, "stop_s": 75.0}
    assert sized_reserve(fast, [1, 2], 2, **bounds) == 300.0          # 2 x 20 s + 75 s: the configured share
    assert sized_reserve(slow[:1], [1, 2], 2, **bounds) == 300.0      # one candidate: no selection to size
    assert sized_reserve(slow, [1, 2], 1, **bounds) == 900.0          # 4 x 510 s + 75 s, capped
    assert sized_reserve(slow, [1], 2, **bounds) == pytest.approx(510.0 + 75.0)
