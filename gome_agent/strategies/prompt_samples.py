"""Sample inputs for every template, used by `gome prompts check` and the tests.

They have the shapes the agent passes at run time, so a template that renders
here renders in a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gome_agent.optimizer.common_changes import common_changes
from gome_agent.strategies.views import AcceptedView, BestView, DirectionView, Failure, MemoryView, StepView
from gome_agent.task.analysis import Task
from gome_agent.task.folds import FoldPlan
from gome_agent.task.holdout import HoldoutPlan
from gome_agent.task.scaffold import ScaffoldPlan
from gome_agent.task.scoring import MetricSpec

_CODE = '''import json
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.metrics import roc_auc_score

train = pd.read_csv("input/train.csv")
X, y = train.drop(columns=["id", "target"]), train["target"]
Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.2, random_state=0)
model = LogisticRegression(max_iter=1000).fit(Xtr, ytr)
json.dump({"score": roc_auc_score(yva, model.predict_proba(Xva)[:, 1])}, open("scores.json", "w"))
'''


def sample_task() -> Task:
    return Task(
        competition_id="sample-binary",
        data_dir=Path("/data/sample-binary"),
        goal="Predict the probability that each customer churns.",
        task_type="binary classification",
        metric_name="ROC AUC",
        higher_is_better=True,
        direction_source="description",
        id_column="id",
        target_columns=["target"],
        submission_format="One row per test id with the predicted probability of churn.",
        sample_path=Path("/data/sample-binary/sample_submission.csv"),
        description="# Sample competition\nPredict churn. Submissions are evaluated on area under the ROC curve.",
        files_text="train.csv: 800 rows x 12 columns\ntest.csv: 200 rows x 11 columns\nsample_submission.csv: 200 rows",
        folds=FoldPlan(available=True, reason="5 folds of the 800 rows of train.csv by id, stratified by target",
                       table="train.csv", id_column="id", label_column="target", folds=5, stratified=True, rows=800),
        holdout=HoldoutPlan(available=True, table="train.csv", id_column="id", rows=120, file="holdout.csv", parts=5,
                            metric=MetricSpec(metric="roc_auc", form="columns", label_columns=["target"],
                                              prediction_columns=["target"], positive="1"),
                            reason="gome holds out 120 of the 920 rows of train.csv (stratified by target) and "
                                   "scores their predictions itself: roc_auc of target (probability of '1')"),
        data_profile="train.csv (800 rows, 12 columns):\n- target target: 2 classes: '0' 560 (70.0%), '1' 240 (30.0%)\n"
                     "- id (id): int, no missing, 800 unique, 1..800, mean 400.5",
    )


def sample_scaffold_plan() -> ScaffoldPlan:
    return ScaffoldPlan(available=True, reason="train.csv -> test.csv: probability of target, roc_auc per fold",
                        train_file="train.csv", test_file="test.csv", holdout_file="holdout.csv",
                        sample_file="sample_submission.csv", id_column="id", labels=["target"], predictions=["target"],
                        kind="probability", positive="1", metric="roc_auc")


def sample_context() -> dict[str, Any]:
    """A value for every input any template may use."""
    best = BestView(
        step=4, score="0.8731", hypothesis="Add target-encoded city feature",
        runtime="1m12s", code=_CODE, stdout_tail="fold 1 auc 0.871\nvalidation auc 0.8731",
    )
    return {
        "task": sample_task(),
        "competition_id": "sample-binary",
        "description": "# Sample competition\nPredict churn. Evaluated on ROC AUC.",
        "files": "train.csv: 800 rows x 12 columns",
        "sample_submission": "sample_submission.csv: 200 rows, columns ['id', 'target']\nid,target\n1,0.5\n",
        "metric_hints": ["roc_auc (higher is better)"],
        "environment": "2 CPU cores, 24 GiB RAM, no GPU. Python 3.11 with numpy 2.4, scikit-learn 1.9.",
        "run_time_limit": "30m00s",
        "stage_guidance": "Improve stage: make targeted changes with a clear expected gain on the validation metric.",
        "budget": "1h10m used of 12h00m, 10h50m left",
        "avoid": ["gradient-boosted trees on raw features"],
        "failures": ["Failed after 2 run(s): exited with code 1 (KeyError: 'target')"],
        "best": best,
        "accepted": [AcceptedView(step=1, hypothesis="first complete solution", score="0.85", gain=None),
                     AcceptedView(step=4, hypothesis="Add target-encoded city feature", score="0.8731", gain="+0.0231")],
        "history": [StepView(step=5, kind="improve", hypothesis="Switch to LightGBM", component="model",
                             status="rejected", score="0.869", lesson="Rejected: ROC AUC 0.869 vs best 0.8731.")],
        "memory": [MemoryView(trace=1, step=3, hypothesis="Stratified 5-fold CV averaging", component="workflow",
                              problem="noisy single split", score="0.88", gain="+0.01", age=4, own=False)],
        "k": 3,
        "direction": DirectionView(hypothesis="Average predictions over 5 stratified folds",
                                   reasoning="A single split is noisy.", expected_impact="+0.003 AUC",
                                   component="workflow"),
        "goal": "Average predictions over 5 stratified folds",
        "code": _CODE,
        "failure": Failure(message="exited with code 1", problems=["scores.json is missing"],
                           stderr_tail="KeyError: 'target'", stdout_tail="loading data",
                           cause="KeyError: 'target' (main.py line 8: `X, y = train.drop(...)`)",
                           traceback='Traceback (most recent call last):\n  File "main.py", line 8, in <module>\n'
                                     "KeyError: 'target'",
                           excerpt=">>    8 | X, y = train.drop(columns=[\"id\", \"target\"]), train[\"target\"]",
                           tables=["input/train.csv: id, age, city, churned"]),
        "plan": sample_scaffold_plan(),
        "scaffold": "def fit_predict(X, y, X_new):\n    raise NotImplementedError(\"write fit_predict\")\n",
        "stub": "def fit_predict(X, y, X_new):\n    \"\"\"Train a model on X, y and predict X_new.\"\"\"",
        "current": "def fit_predict(X, y, X_new):\n    from sklearn.linear_model import LogisticRegression\n"
                   "    return LogisticRegression(max_iter=1000).fit(X, y).predict_proba(X_new)[:, 1]\n",
        "score": "0.8731",
        "tried": ["Add target-encoded city feature: accepted, 0.8731"],
        "worked": ["Add target-encoded city feature (gain +0.0120)"],
        "common": common_changes("probability"),
        "earlier": ["attempt 1: exited with code 1 -> changed: fix the column name"],
        "functions": [],
    }
