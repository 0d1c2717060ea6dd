"""Scripted LLM replies with real solution code, for end-to-end tests on the breast-cancer competition.

`Script` routes each fake-server request to a reply by the template it came from
(task analysis, draft, gradient, update, debug) and plays a per-template queue,
so a test describes a whole run as "the model says this, then that".
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from dataclasses import dataclass, field

from gome_agent.bench.scripted import template_of
from gome_agent.llm.types import Message
from tests.fake_llm import FakeRequest, Reply

ANALYSIS = {
    "goal": "Predict the probability that each breast mass is malignant.",
    "task_type": "binary classification",
    "metric_name": "area under the ROC curve",
    "higher_is_better": True,
    "direction_evidence": "Submissions are evaluated on the area under the ROC curve.",
    "id_column": "id",
    "target_columns": ["target"],
    "submission_format": "One row per test id with the probability that the mass is malignant.",
}

DRAFT = '''import json
import os
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

train = pd.read_csv("input/train.csv")
test = pd.read_csv("input/test.csv")
FEATURES = ["mean_texture"]
X, y = train[FEATURES], train["target"]
Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
model = LogisticRegression(max_iter=2000).fit(Xtr, ytr)
score = roc_auc_score(yva, model.predict_proba(Xva)[:, 1])
model.fit(X, y)
pd.DataFrame({"id": test["id"], "target": model.predict_proba(test[FEATURES])[:, 1]}).to_csv("submission.csv", index=False)
if "GOME_HOLDOUT" in os.environ:  # the rows gome holds out and scores itself
    held = pd.read_csv(os.environ["GOME_HOLDOUT"])
    pd.DataFrame({"id": held["id"], "target": model.predict_proba(held[FEATURES])[:, 1]}).to_csv(
        os.environ["GOME_HOLDOUT_PREDICTIONS"], index=False)
json.dump({"score": float(score)}, open("scores.json", "w"))
print("validation auc", score)
'''

ALL_FEATURES = 'FEATURES = [c for c in train.columns if c not in ("id", "target")]'


def edit(search: str, replace: str, summary: str = "apply the direction") -> str:
    return f"Change: {summary}\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


def full(code: str, summary: str = "first solution") -> str:
    return f"Approach: {summary}\n```python\n{code}```\n"


def gradient(*hypotheses: str, problem: str = "The model sees too little of the data.") -> str:
    return json.dumps({
        "observations": ["Only one feature is used.", "Validation is a single stratified split."],
        "limiting_problem": problem,
        "candidates": [
            {"hypothesis": h, "reasoning": "More signal should raise AUC.", "expected_impact": "+0.05 AUC",
             "component": "features", "scores": {"alignment": 8, "impact": 9 - i, "novelty": 5, "feasibility": 9, "risk_reward": 7}}
            for i, h in enumerate(hypotheses)
        ],
    })


@dataclass
class Script:
    """Per-template reply queues; the last reply of a queue repeats when it runs dry."""

    replies: dict[str, deque[str | Reply]] = field(default_factory=lambda: defaultdict(deque))
    seen: list[tuple[str, FakeRequest]] = field(default_factory=list)

    def add(self, template: str, *replies: str | Reply) -> Script:
        self.replies[template].extend(replies)
        return self

    def __call__(self, request: FakeRequest) -> str | Reply:
        name = template_of([Message(role="user", content=request.text)])
        self.seen.append((name, request))
        queue = self.replies[name]
        if not queue:
            raise AssertionError(f"no scripted reply for a {name} request")
        return queue.popleft() if len(queue) > 1 else queue[0]

    def prompts(self, template: str) -> list[str]:
        return [r.text for name, r in self.seen if name == template]


def analysis_reply() -> str:
    return json.dumps(ANALYSIS)
