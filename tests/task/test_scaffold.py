"""The scaffold: when a competition gets a main.py skeleton, and that the skeleton, filled with two
plain functions, runs on the harness's data and reports the score gome itself measures (so its
steps are trusted), for each kind of prediction: a probability, class probabilities, numbers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gome_agent.bench.competitions import build_competition, get_spec
from gome_agent.optimizer.edits import new_code
from gome_agent.strategies.prompts import Prompts
from gome_agent.task.analysis import TaskAnalysis, check_analysis
from gome_agent.task.folds import FoldPlan, copy_folds, plan_folds
from gome_agent.task.holdout import HoldoutPlan, held_ids, holdout_scorer, plan_holdout
from gome_agent.task.scaffold import is_weak_model, model_billions, plan_scaffold
from gome_agent.task.scan import scan_competition
from gome_agent.task.submission import check_outputs

FEATURES = '''import pandas as pd

def make_features(frame):
    numbers = frame.select_dtypes("number")
    return numbers.fillna(numbers.median())
'''
FIT = {
    "probability": '''from sklearn.linear_model import LogisticRegression

def fit_predict(X, y, X_new):
    return LogisticRegression(max_iter=3000).fit(X, y).predict_proba(X_new)
''',
    "class_probabilities": '''from sklearn.ensemble import RandomForestClassifier

def fit_predict(X, y, X_new):
    return RandomForestClassifier(n_estimators=50, random_state=SEED, n_jobs=THREADS).fit(X, y).predict_proba(X_new)
''',
    "numbers": '''from sklearn.linear_model import Ridge

def fit_predict(X, y, X_new):
    return Ridge().fit(X, y).predict(X_new)
''',
}


def _analysis(spec) -> TaskAnalysis:
    return TaskAnalysis(goal="predict", task_type="regression" if spec.kind == "regression" else
                        "multiclass classification" if spec.kind == "multiclass" else "binary classification",
                        metric_name=spec.metric, higher_is_better=not spec.is_lower_better, direction_evidence="",
                        id_column=spec.id_column, target_columns=[], submission_format="csv")


def _prepared(competition_id: str, tmp_path):
    """The competition, its task, and the run's validation folder as a run would write them."""
    spec = get_spec(competition_id)
    public = build_competition(spec, tmp_path / "comp").public_dir
    scan = scan_competition(public)
    sample = scan.sample_submission()
    analysis = _analysis(spec).model_copy(update={"target_columns": sample.target_columns})
    task = check_analysis(analysis, scan, sample)
    out = tmp_path / "validation"
    holdout = plan_holdout(scan, metric_name=task.metric_name, id_column=task.id_column,
                           target_columns=task.target_columns, task_type=task.task_type, sample=sample,
                           fraction=0.15, max_rows=5000, min_rows=50, seed=0, out=out)
    folds = plan_folds(scan, id_column=task.id_column, target_columns=task.target_columns, task_type=task.task_type,
                       seeds=[0], out=out, exclude=held_ids(out, task.id_column))
    return scan, task, holdout, folds, out


@pytest.mark.parametrize(("competition_id", "kind", "metric"), [
    ("breast-cancer", "probability", "roc_auc"),
    ("leaf-species", "class_probabilities", "log_loss"),
    ("penguin-body-mass", "numbers", "rmse"),
], ids=["probability", "class-probabilities", "numbers"])
def test_a_filled_scaffold_runs_and_reports_what_gome_measures(tmp_path, competition_id, kind, metric):
    scan, task, holdout, folds, validation = _prepared(competition_id, tmp_path)
    plan = plan_scaffold(scan, id_column=task.id_column, folds=folds, holdout=holdout)
    assert plan.available, plan.reason
    assert (plan.kind, plan.metric, plan.train_file, plan.test_file) == (kind, metric, "train.csv", "test.csv")
    skeleton = Prompts().render("scaffold", plan=plan)

    # The skeleton alone learns nothing: it stops at the model, left to write.
    attempt = tmp_path / "attempt"
    attempt.mkdir()
    (attempt / "input").symlink_to(validation / "input")
    copy_folds(validation, attempt)
    (attempt / "main.py").write_text(skeleton)
    empty = subprocess.run([sys.executable, "main.py"], cwd=attempt, capture_output=True, text=True)
    assert empty.returncode == 1 and "NotImplementedError: write fit_predict" in empty.stderr

    code, approach = new_code(f"Approach: plain model\n```python\n{FEATURES}\n{FIT[kind]}```\n", skeleton)
    assert approach == "plain model" and "raise NotImplementedError" not in code
    (attempt / "main.py").write_text(code)
    done = subprocess.run([sys.executable, "main.py"], cwd=attempt, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"fold 4: {metric}" in done.stdout

    scorer = holdout_scorer(holdout, validation, id_column=task.id_column, tolerance_se=3.0, tolerance_relative=0.1)
    assert scorer is not None
    check = scorer.check(attempt, check_outputs(attempt, scan.sample_submission()))
    # A valid submission, gome's own score of the held-out rows, and a self-reported score that agrees.
    assert check.ok and check.valid_submission and check.scored_by == "gome" and check.untrusted is None, check
    assert check.reported_score is not None and check.reported_folds is not None and len(check.reported_folds) == 5
    assert abs(check.score - check.reported_score) <= 0.1 * abs(check.score) + 0.05


def test_no_scaffold_without_folds_or_held_out_rows(tmp_path):
    scan, task, holdout, folds, _ = _prepared("breast-cancer", tmp_path)
    no_folds = FoldPlan(available=False, reason="the user turned them off")
    plan = plan_scaffold(scan, id_column=task.id_column, folds=no_folds, holdout=holdout)
    assert not plan.available and plan.reason == "no validation folds (the user turned them off)"
    self_reported = HoldoutPlan(available=False, reason="validation.scoring is self-reported")
    plan = plan_scaffold(scan, id_column=task.id_column, folds=folds, holdout=self_reported)
    assert not plan.available and plan.reason == "no held-out rows scored by gome (validation.scoring is self-reported)"


@pytest.mark.parametrize(("model", "billions", "weak"), [
    ("qwen2.5-coder-0.5b", 0.5, True),
    ("Qwen2.5-Coder-1.5B-Instruct-GGUF", 1.5, True),
    ("meta-llama/Llama-3.1-8B-Instruct", 8.0, True),
    ("qwen2.5-coder-32b-instruct", 32.0, False),
    ("gpt-5", None, False),
    ("claude-sonnet-4-5", None, False),
    ("Mixtral-8x7B", None, False),
])
def test_weak_models_are_told_by_the_size_their_name_states(model, billions, weak):
    assert model_billions(model) == billions
    assert is_weak_model(model) is weak


@pytest.mark.parametrize(("body", "message"), [
    # The 0.5B model's own mistakes: the predictions with their score, and predictions of its own split of X.
    ("return model.predict(X_new), 0.9", "fit_predict returned tuple of 2 values; it must return only the "
                                          "predictions for X_new: an array with one row per row of X_new"),
    ("return model.predict(X[: len(X) // 5])", "; predict X_new itself, not a split of X"),
    ("return model.score(X, y)", "fit_predict returned float; it must return only the predictions for X_new"),
])
def test_the_scaffold_says_plainly_what_fit_predict_returned_wrongly(tmp_path, body, message):
    scan, task, holdout, folds, validation = _prepared("breast-cancer", tmp_path)
    skeleton = Prompts().render("scaffold", plan=plan_scaffold(scan, id_column=task.id_column, folds=folds,
                                                               holdout=holdout))
    fit = ("from sklearn.linear_model import LogisticRegression\n\ndef fit_predict(X, y, X_new):\n"
           f"    model = LogisticRegression(max_iter=3000).fit(X, y)\n    {body}\n")
    code, _ = new_code(f"Approach: plain\n```python\n{FEATURES}\n{fit}```\n", skeleton)
    attempt = tmp_path / "attempt"
    attempt.mkdir()
    (attempt / "input").symlink_to(validation / "input")
    copy_folds(validation, attempt)
    (attempt / "main.py").write_text(code)
    done = subprocess.run([sys.executable, "main.py"], cwd=attempt, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and message in done.stderr.splitlines()[-1]
