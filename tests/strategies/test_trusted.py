"""Trusted validation end to end: gome's own score decides, so a self-inflated scores.json and a
leaking update are not accepted; a task gome cannot score runs on self-reported scores and says so."""

from __future__ import annotations

import pandas as pd
import pytest

from gome_agent.bench.competitions import build_breast_cancer
from gome_agent.records.events import EventLog, Note
from gome_agent.views.report import write_report
from gome_agent.views.runview import RunView
from tests.scripted_agent import DRAFT, Script, analysis_reply, edit, full, gradient
from tests.strategies.test_trace import make_config, start, steps_of

HONEST = 'score = roc_auc_score(yva, model.predict_proba(Xva)[:, 1])'
INFLATED = 'json.dump({"score": float(score)}, open("scores.json", "w"))'
# Scores the model on the rows it was fitted on: the claimed score rises, the model does not change.
LEAK = 'model.fit(X, y)\nscore = roc_auc_score(y, model.predict_proba(X)[:, 1]) + 0.05'


@pytest.fixture(scope="module")
def competition(tmp_path_factory):
    return build_breast_cancer(tmp_path_factory.mktemp("comp"))


def test_a_self_inflated_score_and_a_leaking_update_are_not_accepted(tmp_path, competition, fake_llm, monkeypatch):
    script = (
        Script()
        .add("task_analysis", analysis_reply())
        .add("draft", full(DRAFT, "logistic regression on one feature"))
        .add("gradient", gradient("Report a better score"), gradient("Validate on all rows"))
        .add("update", edit(INFLATED, 'json.dump({"score": 9.5}, open("scores.json", "w"))', "claim 9.5"),
             edit(HONEST, LEAK, "score on every row"))
    )
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=3, max_debug=0)
    start(config, monkeypatch)
    draft, inflated, leak = steps_of(config)
    assert draft.status == "accepted" and draft.scored_by == "gome" and draft.reported_score is not None
    assert draft.score != draft.reported_score  # the score is gome's, not the solution's
    assert inflated.status == "failed" and not inflated.accepted and inflated.reported_score == 9.5
    assert inflated.untrusted and "scores.json reports 9.5, but gome measured" in inflated.untrusted
    assert "self-reported score cannot be trusted" in inflated.lesson
    # The leak claims more than the draft, but the model is the draft's: gome measures the same score.
    assert leak.reported_score is not None and leak.reported_score > draft.reported_score
    assert leak.status == "rejected" and leak.score == pytest.approx(draft.score)
    notes = [e.message for e in EventLog(config.workdir / "events.jsonl").read() if isinstance(e, Note)]
    assert "scores measured by gome on 127 held-out rows" in notes
    assert "validation: scores measured by gome on 127 held-out rows" in RunView.load(config.workdir).summary_text()


def test_a_task_without_a_labelled_id_table_runs_on_self_reported_scores_and_says_so(
        tmp_path, competition, fake_llm, monkeypatch):
    data = tmp_path / "no-ids"
    data.mkdir()
    for f in competition.iterdir():
        (data / f.name).write_bytes(f.read_bytes())
    pd.read_csv(competition / "train.csv").drop(columns=["id"]).to_csv(data / "train.csv", index=False)
    script = (Script().add("task_analysis", analysis_reply()).add("draft", full(DRAFT, "logistic regression")))
    fake_llm.set_responder(script)
    config = make_config(tmp_path, data, fake_llm, max_steps=1, max_debug=0)
    start(config, monkeypatch)
    (step,) = steps_of(config)
    assert step.status == "accepted" and step.scored_by == "self-reported" and step.reported_score is None
    why = "scores self-reported by the solutions (no training table has the id column 'id' and the labels)"
    notes = [e.message for e in EventLog(config.workdir / "events.jsonl").read() if isinstance(e, Note)]
    assert why in notes
    view = RunView.load(config.workdir)
    assert f"validation: {why}" in view.summary_text()
    html = write_report(config.workdir).read_text()
    assert "these scores are the solutions' own claims, not measured by gome" in html
    assert "Score: self-reported" in html
