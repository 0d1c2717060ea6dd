"""The scaffold: what a runnable main.py skeleton for a task must know, worked out once per run.

A weak model's drafts fail on the plumbing (reading the files, separating the id and the labels,
the validation folds, the output files), not on the modelling. The scaffold hands it that plumbing
as a runnable `main.py` (rendered from `prompts/scaffold.j2`) in which the model writes only
`make_features` and `fit_predict`; the skeleton itself learns nothing. It exists for a table keyed
by the id column with labels, a test table with the same id column, the harness's folds and
held-out rows, and a metric whose fold score the skeleton can compute exactly as gome does (so
its self-reported score agrees with gome's measurement). Otherwise the plan says why not, and
drafts are written free.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from gome_agent.task.folds import FOLDS_FILE, FoldPlan
from gome_agent.task.holdout import PREDICTIONS_FILE, HoldoutPlan
from gome_agent.task.scan import CompetitionScan, FileInfo, text_table_separator

Kind = Literal["probability", "class_probabilities", "labels", "numbers"]
Mode = Literal["auto", "on", "off"]

# The metrics the skeleton's `score` computes the way task/scoring.py does, by what the model predicts.
_PROBABILITY = {"roc_auc", "pr_auc", "log_loss", "brier"}
_CLASS_PROBABILITY = {"roc_auc", "log_loss", "brier"}
_NUMBERS = {"rmse", "mse", "mae", "rmsle", "msle", "median_absolute_error", "r2", "mape", "pearson", "spearman"}
_LABELS = {"accuracy", "error_rate", "balanced_accuracy", "mcc", "kappa", "f1", "precision", "recall"}
WEAK_MODEL_BILLIONS = 30.0  # auto: a model whose name states fewer parameters than this is weak
_SIZE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*b(?![a-z])", re.IGNORECASE)


class ScaffoldPlan(BaseModel):
    """What the skeleton reads, predicts and scores (saved in task.json), or why there is none."""

    available: bool
    reason: str
    train_file: str | None = None  # relative to the competition folder (the solutions' ./input/)
    test_file: str | None = None
    holdout_file: str | None = None
    sample_file: str | None = None
    train_separator: str = ","
    test_separator: str = ","
    id_column: str | None = None
    labels: list[str] = []  # label columns of the training table
    predictions: list[str] = []  # the submission's prediction columns, one per label (or per class)
    kind: Kind | None = None
    classes: list[str] = []  # class_probabilities: the label value of each prediction column
    positive: str | None = None  # probability: the label value whose probability is predicted
    metric: str | None = None
    variant: str | None = None
    folds_file: str = FOLDS_FILE
    predictions_file: str = PREDICTIONS_FILE

    @property
    def prediction(self) -> str | None:
        """What fit_predict returns for a fitted `model` (one label column only; None otherwise)."""
        if len(self.labels) != 1 or self.kind is None:
            return None
        return {"probability": "model.predict_proba(X_new)[:, 1]",
                "class_probabilities": "model.predict_proba(X_new)"}.get(self.kind, "model.predict(X_new)")


def _kind(metric: str, form: str, variant: str | None) -> Kind | str:
    if form == "class_probabilities":
        return "class_probabilities" if metric in _CLASS_PROBABILITY else f"{metric} over class probabilities"
    if metric in _PROBABILITY:
        return "probability"
    if metric in _NUMBERS:
        return "numbers"
    if metric in _LABELS and (variant is not None or metric not in {"f1", "precision", "recall"}):
        return "labels"
    return f"the metric {metric}" + (" without a named averaging" if metric in _LABELS else "")


def _test_table(scan: CompetitionScan, id_column: str, train: str) -> FileInfo | None:
    tables = [f for f in scan.text_tables() if f.path != train and id_column in (f.columns or [])]
    named = [f for f in tables if "test" in f.path.lower()]
    return named[0] if named else (tables[0] if len(tables) == 1 else None)


def plan_scaffold(scan: CompetitionScan, *, id_column: str, folds: FoldPlan, holdout: HoldoutPlan) -> ScaffoldPlan:
    """The skeleton's plan for this competition, or why it has none."""
    if not folds.available or folds.table is None:
        return ScaffoldPlan(available=False, reason=f"no validation folds ({folds.reason})")
    if not holdout.available or holdout.metric is None or holdout.file is None:
        return ScaffoldPlan(available=False, reason=f"no held-out rows scored by gome ({holdout.reason})")
    spec = holdout.metric
    kind = _kind(spec.metric, spec.form, spec.variant)
    if kind not in ("probability", "class_probabilities", "labels", "numbers"):
        return ScaffoldPlan(available=False, reason=f"the scaffold does not compute {kind}")
    test = _test_table(scan, id_column, folds.table)
    if test is None:
        return ScaffoldPlan(available=False, reason=f"no single test table with the id column {id_column!r}")
    sample = Path(scan.sample_path).resolve().relative_to(Path(scan.data_dir).resolve()).as_posix()
    return ScaffoldPlan(
        available=True,
        reason=f"{folds.table} -> {test.path}: {kind} of {', '.join(spec.prediction_columns[:5])}"
               + (" ..." if len(spec.prediction_columns) > 5 else "") + f", {spec.metric} per fold",
        train_file=folds.table, test_file=test.path, holdout_file=holdout.file, sample_file=sample,
        train_separator=text_table_separator(folds.table) or ",", test_separator=text_table_separator(test.path) or ",",
        id_column=id_column, labels=spec.label_columns, predictions=spec.prediction_columns, kind=kind,
        classes=spec.classes or [], positive=spec.positive, metric=spec.metric, variant=spec.variant,
    )


def model_billions(model: str) -> float | None:
    """The parameter count (in billions) a model's name states ("qwen2.5-coder-0.5b" -> 0.5), if any."""
    sizes = [float(m.group(1)) for m in _SIZE.finditer(model)]
    return max(sizes) if sizes else None


def is_weak_model(model: str) -> bool:
    """Whether `auto` scaffolds from the first draft: the model's name states fewer than
    WEAK_MODEL_BILLIONS parameters."""
    size = model_billions(model)
    return size is not None and size < WEAK_MODEL_BILLIONS
