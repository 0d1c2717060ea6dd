"""The harness's folds in real runs: every attempt of every trace validates on the same folds, and a
solution that rewrites them fails with the reason."""

from __future__ import annotations

import pandas as pd
import pytest

from gome_agent.bench.competitions import build_breast_cancer
from gome_agent.records.events import EventLog, Note
from tests.scripted_agent import Script, analysis_reply, edit, full, gradient
from tests.strategies.test_trace import make_config, start, steps_of

ON_FOLDS = '''import json, os
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

train = pd.read_csv("input/train.csv").merge(pd.read_csv(os.environ["GOME_FOLDS"]), on="id")
test = pd.read_csv("input/test.csv")
X = ["mean_texture", "mean_radius"]
scores = []
for k in sorted(train["fold"].unique()):
    fit, val = train[train["fold"] != k], train[train["fold"] == k]
    model = LogisticRegression(max_iter=2000).fit(fit[X], fit["target"])
    scores.append(roc_auc_score(val["target"], model.predict_proba(val[X])[:, 1]))
model = LogisticRegression(max_iter=2000).fit(train[X], train["target"])
pd.DataFrame({"id": test["id"], "target": model.predict_proba(test[X])[:, 1]}).to_csv("submission.csv", index=False)
held = pd.read_csv(os.environ["GOME_HOLDOUT"])
pd.DataFrame({"id": held["id"], "target": model.predict_proba(held[X])[:, 1]}).to_csv("holdout_predictions.csv", index=False)
json.dump({"score": sum(scores) / len(scores), "folds": scores}, open("scores.json", "w"))
'''


@pytest.fixture(scope="module")
def competition(tmp_path_factory):
    return build_breast_cancer(tmp_path_factory.mktemp("comp"))


def test_every_trace_validates_on_the_same_harness_folds(tmp_path, competition, fake_llm, monkeypatch):
    rewrite = 'open("folds.csv", "w").write("id,fold\\n")\nX = ["mean_texture", "mean_radius"]'
    script = (
        Script()
        .add("task_analysis", analysis_reply())
        .add("draft", full(ON_FOLDS, "logistic regression on the folds"))
        .add("gradient", gradient("Write my own folds"))
        .add("update", edit('X = ["mean_texture", "mean_radius"]', rewrite, "rewrite the folds"))
    )
    fake_llm.set_responder(script)
    # Every attempt keeps its copy of the folds (by default the copies go once the step is recorded).
    config = make_config(tmp_path, competition, fake_llm, max_steps=2, max_debug=0,
                         execution={"keep_outputs": "all"}).model_copy(update={"traces": 2})
    start(config, monkeypatch)
    master = (config.workdir / "validation" / "folds.csv").read_bytes()
    notes = [e.message for e in EventLog(config.workdir / "events.jsonl").read() if isinstance(e, Note)]
    assert "scores measured by gome on 127 held-out rows" in notes
    assert ("validation folds: 5 folds of the 299 rows of train.csv that gome does not hold out by id, "
            "stratified by target") in notes
    # The folds list exactly the rows solutions see; the held-out rows are in neither.
    folded = set(pd.read_csv(config.workdir / "validation" / "folds.csv")["id"])
    held = set(pd.read_csv(config.workdir / "validation" / "holdout_labels.csv")["id"])
    visible = set(pd.read_csv(config.workdir / "validation" / "input" / "train.csv")["id"])
    assert folded == visible and not folded & held and len(folded | held) == 426
    steps = steps_of(config)
    drafts = [s for s in steps if s.kind == "draft"]
    assert {s.trace for s in drafts} == {0, 1} and all(s.status == "accepted" for s in drafts)
    for s in drafts:  # both traces ran on the very same assignment, and report a score per fold
        assert (config.workdir / s.code_dir / "folds.csv").read_bytes() == master and len(s.fold_scores or []) == 5
    assert drafts[0].score == pytest.approx(drafts[1].score)
    changed = [s for s in steps if s.kind == "improve"]
    assert changed and all(s.status == "failed" for s in changed)
    assert all("the solution changed ./folds.csv" in s.lesson for s in changed)
    assert "Validation: `./folds.csv` (columns `id`, `fold`)" in script.prompts("draft")[0]
