"""Disk housekeeping: a real run whose solutions write large files keeps only what later steps, the
report, resume and the final selection read; the free-disk check; the size `gome status` shows."""

from __future__ import annotations

import json
import os

import pytest

from gome_agent.bench.competitions import build_breast_cancer
from gome_agent.llm.client import LLMClient
from gome_agent.llm.providers import build_provider
from gome_agent.records.events import EventLog, FallbackWritten, FinalSelection, Note, StepRecord
from gome_agent.records.housekeeping import (
    disk_bytes,
    free_space_problem,
    submittable_dirs,
    tidy_step,
    unneeded,
)
from gome_agent.run.coordinator import resume
from gome_agent.strategies import evaluation
from gome_agent.strategies.evaluation import Evaluator
from gome_agent.strategies.step import TraceState
from gome_agent.task.analysis import Task
from gome_agent.task.sample import find_sample_submission, load_sample_submission
from gome_agent.task.submission import check_submission
from gome_agent.views.report import write_report
from gome_agent.views.runview import RunView
from tests.scripted_agent import ALL_FEATURES, DRAFT, Script, analysis_reply, edit, full, gradient
from tests.strategies.test_trace import make_config, start, steps_of

MB = 2**20
# What a solution leaves besides its outputs: a checkpoint and a folder of cached features.
JUNK = '''os.makedirs("cache/features", exist_ok=True)
open("cache/features/part0.npy", "wb").write(b"f" * 3_000_000)
open("model.ckpt", "wb").write(b"c" * 2_000_000)
'''
SOLUTION = DRAFT.replace('json.dump({"score"', JUNK + 'json.dump({"score"')
BROKEN = SOLUTION.replace('train["target"]', 'train["label"]')


@pytest.fixture(scope="module")
def competition(tmp_path_factory):
    return build_breast_cancer(tmp_path_factory.mktemp("comp"))


def test_unneeded_keeps_code_scores_and_logs_and_submissions_only_when_submittable():
    names = ["main.py", "scores.json", "stdout.txt", "stderr.txt", "submission.csv", "holdout_predictions.csv",
             "model.ckpt", "cache", "input", "folds.csv", ".tmp"]
    assert unneeded(names, submittable=True) == [".tmp", "cache", "folds.csv", "input", "model.ckpt"]
    assert unneeded(names, submittable=False) == [".tmp", "cache", "folds.csv", "holdout_predictions.csv", "input",
                                                  "model.ckpt", "submission.csv"]


def _step(trace: int, step: int, score: float | None, *, accepted: bool = True) -> StepRecord:
    return StepRecord(trace=trace, step=step, kind="improve", stage="draft", status="accepted" if accepted else "rejected",
                      accepted=accepted, score=score, code_dir=f"traces/t{trace}/s{step:04d}/a0", started_at="")


def test_submittable_dirs_are_the_candidates_and_the_named_ones():
    task = Task.model_construct(higher_is_better=True)
    steps = [_step(0, 1, 0.5), _step(0, 2, 0.7), _step(1, 1, 0.6), _step(1, 2, 0.65), _step(1, 3, 0.9, accepted=False)]
    # Two candidates: the best step of each trace.
    assert submittable_dirs(steps, task, 2, also=[None]) == {"traces/t0/s0002/a0", "traces/t1/s0002/a0"}
    assert submittable_dirs(steps, task, 2, also=["traces/t0/s0001/a0", None]) == {
        "traces/t0/s0001/a0", "traces/t0/s0002/a0", "traces/t1/s0002/a0"}


def test_tidy_step_follows_no_link_and_deletes_read_only_folders(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("id,target\n1,0\n")
    workdir = tmp_path / "run"
    attempt = workdir / "traces" / "t0" / "s0001" / "a0"
    (attempt / "locked" / "inner").mkdir(parents=True)
    (attempt / "locked" / "inner" / "weights.bin").write_bytes(b"w" * 10_000)
    (attempt / "locked" / "inner").chmod(0o500)
    (attempt / "locked").chmod(0o500)
    (attempt / "input").symlink_to(data, target_is_directory=True)
    for name in ("main.py", "stdout.txt", "submission.csv"):
        (attempt / name).write_text(name)
    record = _step(0, 1, 0.5, accepted=False)
    freed = tidy_step(workdir, attempt.parent, record, trace_steps=[record], submittable=None)
    assert sorted(os.listdir(attempt)) == ["main.py", "stdout.txt"]
    assert freed >= 10_000
    assert (data / "train.csv").read_text() == "id,target\n1,0\n"  # the link's target is untouched


def test_free_space_problem_names_the_space_and_the_path(tmp_path):
    assert free_space_problem(tmp_path, 0.0) is None
    problem = free_space_problem(tmp_path, 1e9)
    assert problem is not None and str(tmp_path) in problem and " free on the file system of " in problem
    assert "execution.min_free_disk_gb" in problem


def _files(folder):
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def test_a_run_keeps_what_is_read_again_and_deletes_the_rest(tmp_path, competition, fake_llm, monkeypatch):
    script = (
        Script()
        .add("task_analysis", analysis_reply())
        .add("draft", full(BROKEN))  # a0 fails, the debug attempt a1 works
        .add("debug", edit('train["label"]', 'train["target"]', "use the right target column"))
        .add("gradient", gradient("Use all thirty features instead of one"),
             gradient("Keep only the smoothness feature"), gradient("Use balanced class weights"),
             gradient("Use balanced class weights"))
        .add("update",
             edit('FEATURES = ["mean_texture"]', ALL_FEATURES, "use every feature"),
             edit(ALL_FEATURES, 'FEATURES = ["mean_smoothness"]', "one weak feature"),
             edit("LogisticRegression(max_iter=2000)", 'LogisticRegression(max_iter=2000, class_weight="balanced")'))
    )
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=3, max_debug=1,
                         execution={"static_checks": False}).model_copy(
        update={"final_reserve_fraction": 0.05, "final_seeds": [1]})
    config = config.model_copy(update={"validation": config.validation.model_copy(update={"refit": False})})
    start(config, monkeypatch)
    workdir = config.workdir
    records = steps_of(config)
    assert [r.status for r in records] == ["accepted", "accepted", "rejected"]
    assert records[0].code_dir.endswith("s0001/a1")

    traces = workdir / "traces"
    attempts = sorted(p for p in traces.glob("t0/s*/a*") if p.is_dir())
    assert {p.relative_to(traces).as_posix() for p in attempts} == {
        "t0/s0001/a0", "t0/s0001/a0-smoke", "t0/s0001/a1", "t0/s0001/a1-smoke",
        "t0/s0002/a0", "t0/s0002/a0-smoke", "t0/s0003/a0", "t0/s0003/a0-smoke"}
    # No checkpoint, cache, data link, folds copy or temp folder is left anywhere.
    for attempt in attempts:
        left = set(os.listdir(attempt))
        assert left <= {"main.py", "scores.json", "stdout.txt", "stderr.txt", "submission.csv",
                        "holdout_predictions.csv"}, (attempt, left)
        assert "main.py" in left
    assert all((workdir / r.code_dir / "stdout.txt").is_file() for r in records)  # a failed smoke run's too
    assert disk_bytes(traces) < 1 * MB  # each run wrote 5 MB
    # The accepted steps (both candidates of the final selection) keep their submissions; no other attempt does.
    kept = {p.parent.relative_to(workdir).as_posix() for p in traces.rglob("submission.csv")}
    assert kept == {records[0].code_dir, records[1].code_dir}
    assert all((workdir / d / "holdout_predictions.csv").is_file() for d in kept)
    # The final selection compared each re-run with the candidate's own submission: the code ignores
    # GOME_SEED, so every re-run came out "unchanged" (without the submission it would count as a new score).
    [selection] = [e for e in EventLog(workdir / "events.jsonl").read() if isinstance(e, FinalSelection)]
    assert [c.rerun_outcomes for c in selection.candidates] == [["unchanged"], ["unchanged"]]
    reruns = sorted(p for p in (workdir / "final").glob("t0-s*/seed1"))
    assert len(reruns) == 2 and all(set(os.listdir(p)) <= {"main.py", "scores.json", "stdout.txt", "stderr.txt"}
                                    for p in reruns)
    sample = load_sample_submission(find_sample_submission(competition))
    assert check_submission(workdir / "submission" / "submission.csv", sample) == []
    best = json.loads((workdir / "code" / "best.json").read_text())
    assert (workdir / "submission" / "submission.csv").read_bytes() == (
        workdir / best["code_dir"] / "submission.csv").read_bytes()

    # The report still shows every step's code, diff and logs.
    html = write_report(workdir).read_text()
    assert "diff against step 1" in html and "main.py is missing" not in html
    assert "validation auc" in html  # a kept stdout.txt
    # gome status says how much the run folder holds.
    assert "disk: the run folder holds " in RunView.load(workdir).summary_text()

    # Resume: the trace's best comes back from the kept files, and the next steps build on it.
    state = TraceState.restore(steps_of(config), workdir)
    assert state.best is not None and state.best.step == 2 and ALL_FEATURES in (state.best_code or "")
    record = json.loads((workdir / "config.json").read_text())
    record["optimizer"]["max_steps"] = 4
    (workdir / "config.json").write_text(json.dumps(record))
    resume(workdir, llm=LLMClient(config.llm, workdir / "llm_calls.jsonl",
                                  provider=build_provider(config.llm, strict=True)))
    records = steps_of(config)
    assert [r.step for r in records] == [1, 2, 3, 4] and records[3].kind == "improve"
    assert ALL_FEATURES in script.prompts("update")[-1]  # edited the restored best
    assert not [p for p in traces.rglob("*") if p.name in ("model.ckpt", "cache", "input")]


def test_no_step_starts_while_the_disk_is_too_full(tmp_path, competition, fake_llm, monkeypatch):
    monkeypatch.setattr(evaluation, "DISK_WAIT_S", 0.2)
    script = Script().add("task_analysis", analysis_reply()).add("draft", full(SOLUTION))
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=1,
                         execution={"min_free_disk_gb": 1e9}).model_copy(update={"time_limit_s": 6})
    summary = start(config, monkeypatch)
    assert steps_of(config) == [] and not script.prompts("draft")  # no LLM call was spent on a step
    events = EventLog(config.workdir / "events.jsonl").read()
    notes = [e.message for e in events if isinstance(e, Note) and e.level == "warning"]
    assert any(n.endswith("solution runs wait until space is freed") and str(config.workdir) in n for n in notes)
    waits = [n for n in notes if n.startswith("no new step until space is freed: only ")]
    assert len(waits) == 1 and "execution.min_free_disk_gb" in waits[0]  # said once, not at every look
    assert [e for e in events if isinstance(e, FallbackWritten)] and summary.submission is not None


def test_a_disk_that_fills_during_a_step_stops_its_run(tmp_path, competition, fake_llm, monkeypatch):
    # The step began with enough space (the trace's look before it), but there is too little when its run would start.
    monkeypatch.setattr(Evaluator, "wait_for_disk", lambda self, stop: False)
    script = Script().add("task_analysis", analysis_reply()).add("draft", full(SOLUTION))
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=1, execution={"min_free_disk_gb": 1e9})
    start(config, monkeypatch)
    [record] = steps_of(config)
    assert record.status == "failed" and record.runs == 0 and record.smoke_runs == 0
    assert record.message.startswith("not run: only ") and str(config.workdir) in record.message
    assert "execution.min_free_disk_gb" in record.message
    assert (config.workdir / record.code_dir / "main.py").read_text() == SOLUTION
