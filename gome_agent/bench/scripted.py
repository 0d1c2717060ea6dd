"""A scripted "LLM" for benchmarks: deterministic replies to the agent's own templates.

It recognises which template a request comes from by the template's fixed
headings, and answers with valid JSON or code whose validation score it
controls, so the optimizer's machinery can be measured without a model.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable

from gome_agent.llm.types import Message

_MARKERS = (
    ("task_analysis", "describe its task precisely"),
    ("gradient", "## Your job: diagnose"),
    ("function_gradient", "Diagnose the Python function `fit_predict`"),
    ("update", "## The change to make"),
    ("debug", "## What went wrong"),
    ("draft", "Write the first complete solution"),
    ("function", "Write the body of the Python function `fit_predict`"),
    ("function_change", "Improve the Python function `fit_predict`"),
    ("function_fix", "Fix the Python function `fit_predict`"),
    ("direct", "with one change to this code"),
)

IDEAS = [
    ("Standardise the features before the linear model", "features"),
    ("Replace logistic regression by gradient-boosted trees", "model"),
    ("Average predictions over five stratified folds", "ensemble"),
    ("Tune the regularisation strength with a small grid", "model"),
    ("Add pairwise ratio features of radius and area", "features"),
    ("Clip extreme feature values at the 1st and 99th percentiles", "data"),
    ("Blend the linear model with a random forest", "ensemble"),
    ("Use class weights to balance the two classes", "model"),
]


def template_of(messages: list[Message]) -> str:
    text = messages[-1].content
    for name, marker in _MARKERS:
        if marker in text:
            return name
    raise ValueError("the scripted LLM does not recognise this request")


def solution_code(score: float, target: str = "target", seconds: float = 0.0) -> str:
    """A main.py that honours the contract and reports `score` as its validation score."""
    return f'''import json
import time

import pandas as pd

SCORE = {score:.6f}
time.sleep({seconds})
test = pd.read_csv("input/test.csv")
pd.DataFrame({{"id": test["id"], "{target}": 0.25}}).to_csv("submission.csv", index=False)
json.dump({{"score": SCORE}}, open("scores.json", "w"))
print("validation score", SCORE)
'''


class ScriptedPolicy:
    """Replies for the scripted provider: `policy(messages, model) -> text`."""

    def __init__(
        self,
        analysis: dict[str, object],
        *,
        seed: int = 0,
        accept_rate: float = 0.6,
        run_seconds: float = 0.0,
        code: Callable[[float], str] | None = None,
    ) -> None:
        self.analysis = analysis
        self.rng = random.Random(seed)
        self.accept_rate = accept_rate
        # The draft's code for a given score; it must hold a line "SCORE = <score>" that updates edit.
        self.code = code or (lambda score: solution_code(score, seconds=run_seconds))

    def __call__(self, messages: list[Message], model: str) -> str:
        name = template_of(messages)
        if name == "task_analysis":
            return json.dumps(self.analysis)
        if name == "draft":
            return "Approach: constant baseline\n```python\n" + self.code(0.70) + "```\n"
        if name == "gradient":
            picks = self.rng.sample(IDEAS, 3)
            return json.dumps({
                "observations": ["The model is a constant baseline.", "Validation uses a single split."],
                "limiting_problem": "The predictions carry no signal from the features.",
                "candidates": [
                    {"hypothesis": h, "reasoning": "It should add signal.", "expected_impact": "+0.01",
                     "component": c, "scores": {"alignment": self.rng.randint(5, 9), "impact": self.rng.randint(4, 9),
                                                "novelty": 6, "feasibility": 8, "risk_reward": 7}}
                    for h, c in picks
                ],
            })
        match = re.search(r"^SCORE = ([0-9.]+)$", messages[-1].content, re.MULTILINE)
        old = float(match.group(1)) if match else 0.70
        delta = self.rng.uniform(0.0005, 0.005) if self.rng.random() < self.accept_rate else -self.rng.uniform(0.001, 0.01)
        return (
            f"Change: move the score to {old + delta:.6f}\n"
            f"<<<<<<< SEARCH\nSCORE = {old:.6f}\n=======\nSCORE = {old + delta:.6f}\n>>>>>>> REPLACE\n"
        )
