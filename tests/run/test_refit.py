"""The refit in real runs: the chosen solution trained again on every labelled row is what gets
submitted; a refit that fails leaves the measured submission; a self-reported run has none."""

from __future__ import annotations

import pandas as pd
import pytest

from gome_agent.bench.competitions import build_breast_cancer
from gome_agent.records.best import BestKeeper
from gome_agent.records.events import EventLog, Refit
from gome_agent.views.runview import RunView
from tests.scripted_agent import DRAFT, Script, analysis_reply, full
from tests.strategies.test_trace import make_config, start, steps_of

# Writes how many training rows it saw and which folds it got, then fails when asked to.
COUNTING = DRAFT.replace('print("validation auc", score)', '''print("validation auc", score)
folds = pd.read_csv(os.environ["GOME_FOLDS"])
json.dump({"train_rows": len(train), "fold_rows": len(folds), "fold_ids_match": set(folds["id"]) == set(train["id"])},
          open("seen.json", "w"))
if len(train) > FAIL_ABOVE:
    raise SystemExit("too many rows")''').replace('FEATURES = ["mean_texture"]', 'FEATURES = ["mean_texture"]\nFAIL_ABOVE = LIMIT')


@pytest.fixture(scope="module")
def competition(tmp_path_factory):
    return build_breast_cancer(tmp_path_factory.mktemp("comp"))


def _refits(config) -> list[Refit]:
    return [e for e in EventLog(config.workdir / "events.jsonl").read() if isinstance(e, Refit)]


def test_the_chosen_solution_is_refitted_on_every_labelled_row_and_submitted(tmp_path, competition, fake_llm,
                                                                               monkeypatch):
    fake_llm.set_responder(Script().add("task_analysis", analysis_reply())
                           .add("draft", full(COUNTING.replace("LIMIT", str(10**9)), "logistic regression")))
    # The step's seen.json is read below (by default it goes once the step is recorded).
    config = make_config(tmp_path, competition, fake_llm, max_steps=1, max_debug=0, execution={"keep_outputs": "all"})
    start(config, monkeypatch)
    (step,) = steps_of(config)
    assert step.status == "accepted"
    all_rows = len(pd.read_csv(competition / "train.csv"))
    seen = pd.read_json(config.workdir / step.code_dir / "seen.json", typ="series")
    # 127 = 30 % of 426: a table this small holds out up to that share towards holdout_min_rows.
    assert seen["train_rows"] == all_rows - 127  # the step trained without the held-out rows
    refit = config.workdir / "final" / "refit"
    seen = pd.read_json(refit / "seen.json", typ="series")
    assert seen["train_rows"] == all_rows and seen["fold_rows"] == all_rows and seen["fold_ids_match"]
    (event,) = _refits(config)
    assert (event.trace, event.step, event.outcome) == (0, 1, "submitted")
    best = BestKeeper(config.workdir, higher_is_better=True)
    info = best.current()
    assert info.source == "refit" and info.score == step.score and info.code_dir == "final/refit"
    submitted = best.submission_path.read_bytes()
    assert submitted == (refit / "submission.csv").read_bytes()
    assert submitted != (config.workdir / step.code_dir / "submission.csv").read_bytes()
    assert "refit: submitted" in RunView.load(config.workdir).summary_text()


def test_a_refit_that_fails_leaves_the_measured_submission(tmp_path, competition, fake_llm, monkeypatch):
    limit = len(pd.read_csv(competition / "train.csv")) - 1  # fails only with every row
    fake_llm.set_responder(Script().add("task_analysis", analysis_reply())
                           .add("draft", full(COUNTING.replace("LIMIT", str(limit)), "logistic regression")))
    config = make_config(tmp_path, competition, fake_llm, max_steps=1, max_debug=0)
    start(config, monkeypatch)
    (step,) = steps_of(config)
    (event,) = _refits(config)
    assert event.outcome == "failed" and "the measured submission stays" in event.message
    best = BestKeeper(config.workdir, higher_is_better=True)
    assert best.current().source == "step"
    assert best.submission_path.read_bytes() == (config.workdir / step.code_dir / "submission.csv").read_bytes()


def test_a_self_reported_run_is_not_refitted(tmp_path, competition, fake_llm, monkeypatch):
    fake_llm.set_responder(Script().add("task_analysis", analysis_reply()).add("draft", full(DRAFT, "logistic")))
    config = make_config(tmp_path, competition, fake_llm, max_steps=1, max_debug=0, scoring="self-reported")
    start(config, monkeypatch)
    assert steps_of(config)[0].status == "accepted"
    assert _refits(config) == [] and not (config.workdir / "final" / "refit").exists()
    assert BestKeeper(config.workdir, higher_is_better=True).current().source == "step"
