"""Changes that often raise a scaffolded tabular model's score: the list a small model's compact
diagnosis is shown (prompts/function_gradient.j2), and what completes a diagnosis that only repeats
changes already tried.

The 0.5B model copies the prompt's "changes tried before" back as its directions, outcome and all
("... - rejected (0.48297)"): in a 2026-12-06 run of osu-leaf-outlines, every direction of its
fourth step's diagnosis repeated a rejected step, and the step went to the same change again. When
that happens, the listed changes that the code does not have and the trace has not tried come first
(`untried`); the ranking then weighs them with the model's own as usual.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gome_agent.optimizer.gradient import SIMILAR, Component, Direction
from gome_agent.optimizer.similarity import max_similarity

_LINEAR = r"LogisticRegression|Ridge|Lasso|ElasticNet|LinearSVC|LinearRegression|SGD"


@dataclass(frozen=True)
class CommonChange:
    """One change of the list; `needs` is what the code must use for it to apply (None: any code),
    `present` what shows the code has it already (None: never certain)."""

    component: Component
    text: str
    needs: str | None = None
    present: str | None = None

    def fits(self, code: str) -> bool:
        """Whether the change applies to `code` and is not in it yet."""
        if self.needs is not None and re.search(self.needs, code) is None:
            return False
        return self.present is None or re.search(self.present, code) is None


def common_changes(kind: str | None) -> list[CommonChange]:
    """The list for a scaffold's prediction kind ("numbers" is regression; the others classify)."""
    numbers = kind == "numbers"
    boosted = "HistGradientBoostingRegressor" if numbers else "HistGradientBoostingClassifier"
    return [
        CommonChange("model", f"use a gradient-boosted model, {boosted}(max_iter=300, learning_rate=0.05)",
                     present=r"HistGradientBoosting|XGB|LGBM|CatBoost"),
        CommonChange("model", "use more and deeper trees in the forest, or ExtraTrees instead of RandomForest",
                     needs=r"RandomForest|ExtraTrees"),
        CommonChange("model", "tune the regularisation strength (C or alpha) of the linear model", needs=_LINEAR),
        CommonChange("data", "scale the features with StandardScaler in a pipeline (for linear models and neighbours)",
                     needs=rf"{_LINEAR}|SVC|SVR|KNeighbors|MLP", present=r"StandardScaler|MinMaxScaler|RobustScaler"),
        CommonChange("data", "predict log1p of the target and convert back with expm1 (for a positive, skewed target)",
                     present=r"log1p|np\.log\(")
        if numbers else
        CommonChange("model", 'use class_weight="balanced" (for rare classes)',
                     needs=rf"RandomForest|ExtraTrees|DecisionTree|HistGradientBoosting|SVC|{_LINEAR}",
                     present=r"class_weight"),
        CommonChange("ensemble", "average the predictions of two different models",
                     present=r"Voting|Stacking"),
    ]


def fitting(kind: str | None, code: str) -> list[CommonChange]:
    """The changes of the list for `kind` that fit `code`: those a small model's diagnosis is shown."""
    return [c for c in common_changes(kind) if c.fits(code)]


def untried(kind: str | None, code: str, *, exclude: list[str], limit: int) -> list[Direction]:
    """Up to `limit` changes of the list that fit `code` and are like none of `exclude` (the changes
    tried without success, and those the code already has), as directions that say where they came from."""
    fresh = [c for c in fitting(kind, code) if not exclude or max_similarity(c.text, exclude) < SIMILAR]
    return [Direction(hypothesis=c.text, component=c.component, expected_impact="",
                      reasoning="from the list of common changes: every direction the reply listed repeats "
                                "a change that did not improve")
            for c in fresh[:limit]]
