"""Computing a competition's metric from labels and predictions in the submission's format.

gome scores the solutions' predictions for the rows it holds out itself (task/holdout.py), so it
must know how the submission's columns relate to the training table's labels and which variant of
the metric the competition uses. `plan_metric` works that out once, at the start of a run, and
says why when it cannot; it never guesses. Three shapes of submission are understood:

- `columns`: each prediction column is a label column (same name, or the one label column under
  another name, e.g. `label` -> `Label`); the metric is computed per column and averaged
  ("mean column-wise RMSE", multi-label AUC);
- `class_probabilities`: one label column whose values name the prediction columns (one
  probability per class, e.g. multi-class log loss);
- within `columns`, a probability metric on a two-valued label scores the probability of the
  larger label value (1 of 0/1, True of False).

A metric whose variant the name leaves open (F1 over more than two classes with no averaging
named) or that gome cannot compute (MAP@k, BLEU, IoU, ...) gives a reason instead, and the run
falls back to the solutions' self-reported scores.
"""

from __future__ import annotations

import math
import re
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel
from scipy import stats
from sklearn import metrics as skm

from gome_agent.errors import GomeError
from gome_agent.task.metrics import normalize_metric_name

Form = Literal["columns", "class_probabilities"]

_REGRESSION = {"rmse", "mse", "mae", "rmsle", "msle", "mape", "smape", "r2", "median_absolute_error",
               "pearson", "spearman"}
_LABELS = {"accuracy", "balanced_accuracy", "error_rate", "f1", "precision", "recall", "mcc", "kappa"}
_PROBABILITY = {"roc_auc", "pr_auc", "log_loss", "brier"}
_AVERAGED = {"f1", "precision", "recall"}
LOG_LOSS_EPS = 1e-15


class ScoringError(GomeError):
    """Predictions the metric cannot be computed on; the message says why."""


class MetricSpec(BaseModel):
    """How gome computes the competition's metric (saved in task.json)."""

    metric: str  # the canonical name (task/metrics.py)
    variant: str | None = None  # "quadratic" / "linear" kappa, "macro" / "micro" / "weighted" averaging
    form: Form
    label_columns: list[str]  # in the training table
    prediction_columns: list[str]  # in the submission, matching label_columns one to one for `columns`
    classes: list[str] | None = None  # class_probabilities: the label value of each prediction column
    positive: str | None = None  # a two-valued label's positive value (probability metrics, binary F1)

    def describe(self) -> str:
        name = self.metric + (f" ({self.variant})" if self.variant else "")
        if self.form == "class_probabilities":
            return f"{name} of the {len(self.prediction_columns)} class probabilities against {self.label_columns[0]}"
        pairs = ", ".join(f"{p} vs {lab}" if p != lab else p for p, lab in zip(self.prediction_columns, self.label_columns))
        mean = "mean over the columns of " if len(self.label_columns) > 1 else ""
        of = f" (probability of {self.positive!r})" if self.metric in _PROBABILITY else ""
        return f"{mean}{name} of {pairs}{of}"


def _variant(metric: str, raw: str) -> str | None:
    words = set(re.findall(r"[a-z0-9]+", raw.lower()))
    if metric == "kappa":
        if words & {"quadratic", "qwk", "quadratically"}:
            return "quadratic"
        return "linear" if "linear" in words else None
    if metric in _AVERAGED:
        found = words & {"macro", "micro", "weighted"}
        return found.pop() if len(found) == 1 else None
    return None


def with_described_variant(metric_name: str, description: str) -> str:
    """`metric_name` with the variant the description states ("macro-averaged F1"), when the name leaves
    it open and the description names exactly one; else `metric_name` as it is.

    The 0.5B model's task analysis named osu-leaf-outlines' "macro-averaged F1" plain `f1`: over six
    classes gome could not score it, so the run had no held-out rows and no scaffold, and fell back.
    """
    metric = normalize_metric_name(metric_name)
    if _variant(metric, metric_name) is not None:
        return metric_name
    variant = _variant(metric, description)
    return metric_name if variant is None else f"{variant} {metric_name}"


def _numeric(values: pd.Series) -> pd.Series | None:
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers if numbers.notna().all() else None


def _positive(values: pd.Series) -> str | None:
    """The label value a probability is for, when the label has exactly two values with a clear order."""
    distinct = sorted(set(values.astype(str)))
    if len(distinct) != 2:
        return None
    if {d.lower() for d in distinct} == {"true", "false"}:
        return next(d for d in distinct if d.lower() == "true")
    numbers = _numeric(pd.Series(distinct))
    return None if numbers is None else distinct[int(np.argmax(numbers.to_numpy()))]


def plan_metric(metric_name: str, labels: pd.DataFrame, prediction_columns: list[str],
                numeric_predictions: frozenset[str]) -> MetricSpec | str:
    """How to compute `metric_name` on predictions with `prediction_columns` against `labels` (the
    training table's label columns, as text), or why gome cannot."""
    metric = normalize_metric_name(metric_name)
    if metric not in _REGRESSION | _LABELS | _PROBABILITY:
        return f"gome cannot compute the metric {metric_name!r} itself"
    variant = _variant(metric, metric_name)
    label_columns = list(labels.columns)
    if set(prediction_columns) <= set(label_columns):
        pairs = [(p, p) for p in prediction_columns]
    elif len(label_columns) == 1 and len(prediction_columns) == 1:
        pairs = [(prediction_columns[0], label_columns[0])]
    elif len(label_columns) == 1 and set(prediction_columns) == set(labels[label_columns[0]].astype(str)):
        if metric not in {"log_loss", "roc_auc", "brier"}:
            return f"{metric} on one prediction column per class is not a metric gome computes"
        spec = MetricSpec(metric=metric, form="class_probabilities", label_columns=label_columns,
                          prediction_columns=prediction_columns, classes=list(prediction_columns))
        return _checked(spec, labels)
    else:
        return (f"the submission's columns {prediction_columns} do not match the labels {label_columns} "
                "of the training table")
    positives = set()
    for prediction, label in pairs:
        values = labels[label]
        if metric in _REGRESSION and _numeric(values) is None:
            return f"{metric} needs numeric labels, but {label!r} holds text"
        if metric in _PROBABILITY:
            if prediction not in numeric_predictions:
                return f"{metric} needs probabilities, but the sample's {prediction!r} is not numeric"
            positives.add(_positive(values))
            if None in positives:
                return f"{metric} needs a two-valued label with a clear positive value, and {label!r} is not one"
        if metric in _AVERAGED and variant is None:
            if values.nunique() > 2:
                return (f"{metric_name!r} over {values.nunique()} classes does not say how it averages "
                        "(macro, micro, weighted)")
            positives.add(_positive(values))
            if None in positives:
                return f"binary {metric} needs a clear positive class, and {label!r} has none"
    if len(positives) > 1:
        return f"the label columns' positive values differ ({sorted(map(str, positives))})"
    spec = MetricSpec(metric=metric, variant=variant, form="columns", label_columns=[lab for _, lab in pairs],
                      prediction_columns=[p for p, _ in pairs], positive=positives.pop() if positives else None)
    return _checked(spec, labels)


def _checked(spec: MetricSpec, labels: pd.DataFrame) -> MetricSpec | str:
    """The spec, if it scores perfect predictions made from the labels themselves."""
    try:
        value = compute_metric(spec, labels, oracle(spec, labels))
    except ScoringError as exc:
        return f"{spec.metric} cannot be computed on the labels: {exc}"
    return spec if math.isfinite(value) else f"{spec.metric} of perfect predictions is not finite"


def oracle(spec: MetricSpec, labels: pd.DataFrame) -> pd.DataFrame:
    """Perfect predictions in the submission's format (a check of the spec, and a test helper)."""
    if spec.form == "class_probabilities":
        column = labels[spec.label_columns[0]].astype(str)
        return pd.DataFrame({c: (column == c).astype(float) for c in spec.prediction_columns}, index=labels.index)
    out = {}
    for prediction, label in zip(spec.prediction_columns, spec.label_columns):
        values = labels[label]
        out[prediction] = (values.astype(str) == spec.positive).astype(float) if spec.metric in _PROBABILITY else values
    return pd.DataFrame(out, index=labels.index)


def _as_labels(truth: pd.Series, predicted: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predicted labels, compared as numbers when both are numeric ("3" equals "3.0")."""
    t, p = _numeric(truth.astype(str)), _numeric(predicted.astype(str))
    if t is not None and p is not None:
        return t.to_numpy(dtype=float), p.to_numpy(dtype=float)
    return truth.astype(str).str.strip().to_numpy(), predicted.astype(str).str.strip().to_numpy()


def _floats(values: pd.Series, what: str) -> np.ndarray:
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any():
        raise ScoringError(f"{what} has {int(numbers.isna().sum())} value(s) that are not numbers")
    array = numbers.to_numpy(dtype=float)
    if not np.isfinite(array).all():
        raise ScoringError(f"{what} has infinite values")
    return array


def _regression(metric: str, y: np.ndarray, p: np.ndarray) -> float:
    if metric in ("rmsle", "msle"):
        if (y < -1).any() or (p < -1).any():
            raise ScoringError(f"{metric} is undefined for values below -1")
        y, p = np.log1p(y), np.log1p(p)
        metric = "rmse" if metric == "rmsle" else "mse"
    if metric == "rmse":
        return float(np.sqrt(np.mean((y - p) ** 2)))
    if metric == "mse":
        return float(np.mean((y - p) ** 2))
    if metric == "mae":
        return float(np.mean(np.abs(y - p)))
    if metric == "median_absolute_error":
        return float(np.median(np.abs(y - p)))
    if metric == "mape":
        if (y == 0).any():
            raise ScoringError("mape is undefined when a label is 0")
        return float(np.mean(np.abs((y - p) / y)))
    if metric == "smape":
        denominator = np.abs(y) + np.abs(p)
        ratio = np.divide(2 * np.abs(y - p), denominator, out=np.zeros_like(y), where=denominator > 0)
        return float(100 * np.mean(ratio))
    if metric == "r2":
        return float(skm.r2_score(y, p))
    if np.std(p) == 0 or np.std(y) == 0:
        raise ScoringError(f"{metric} correlation is undefined for constant values")
    result = stats.pearsonr(y, p) if metric == "pearson" else stats.spearmanr(y, p)
    return float(result[0])


def _label_metric(metric: str, variant: str | None, positive: str | None, y: np.ndarray, p: np.ndarray) -> float:
    if metric == "accuracy":
        return float(np.mean(y == p))
    if metric == "error_rate":
        return float(np.mean(y != p))
    if metric == "balanced_accuracy":
        return float(skm.balanced_accuracy_score(y, p))
    if metric == "mcc":
        return float(skm.matthews_corrcoef(y, p))
    if metric == "kappa":
        return float(skm.cohen_kappa_score(y, p, weights=variant))
    kwargs: dict[str, object] = {"average": variant or "binary", "zero_division": 0}
    if variant is None:
        kwargs["pos_label"] = float(positive) if y.dtype.kind == "f" else positive  # type: ignore[arg-type]
    function = {"f1": skm.f1_score, "precision": skm.precision_score, "recall": skm.recall_score}[metric]
    return float(function(y, p, **kwargs))


def _probability(metric: str, y: np.ndarray, p: np.ndarray) -> float:
    if metric in ("log_loss", "brier") and ((p < 0).any() or (p > 1).any()):
        raise ScoringError(f"{metric} needs probabilities in [0, 1]")
    if metric == "roc_auc":
        if len(set(y)) < 2:
            raise ScoringError("roc_auc needs both classes among the rows")
        return float(skm.roc_auc_score(y, p))
    if metric == "pr_auc":
        return float(skm.average_precision_score(y, p))
    if metric == "brier":
        return float(np.mean((p - y) ** 2))
    clipped = np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)))


def _class_probabilities(spec: MetricSpec, labels: pd.Series, predictions: pd.DataFrame) -> float:
    classes = spec.classes or []
    matrix = np.column_stack([_floats(predictions[c], f"column {c!r}") for c in classes])
    if (matrix < 0).any():
        raise ScoringError("class probabilities must not be negative")
    truth = labels.astype(str).to_numpy()
    onehot = np.column_stack([(truth == c).astype(float) for c in classes])
    if spec.metric == "roc_auc":
        present = [i for i in range(len(classes)) if 0 < onehot[:, i].sum() < len(truth)]
        if not present:
            raise ScoringError("roc_auc needs at least one class both present and absent among the rows")
        return float(np.mean([skm.roc_auc_score(onehot[:, i], matrix[:, i]) for i in present]))
    sums = matrix.sum(axis=1, keepdims=True)
    if (sums <= 0).any():
        raise ScoringError("a row's class probabilities sum to 0")
    matrix = matrix / sums  # Kaggle rescales each row to sum to 1
    if spec.metric == "brier":
        return float(np.mean(np.sum((matrix - onehot) ** 2, axis=1)))
    clipped = np.clip(matrix, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return float(-np.mean(np.sum(onehot * np.log(clipped), axis=1)))


def compute_metric(spec: MetricSpec, labels: pd.DataFrame, predictions: pd.DataFrame) -> float:
    """The metric of `predictions` against `labels`, both indexed by id in the same order.

    Raises ScoringError, naming the cause, for predictions the metric cannot be computed on."""
    if len(labels) == 0:
        raise ScoringError("there are no rows to score")
    try:
        if spec.form == "class_probabilities":
            return _class_probabilities(spec, labels[spec.label_columns[0]], predictions)
        values = []
        for prediction, label in zip(spec.prediction_columns, spec.label_columns):
            truth, predicted = labels[label], predictions[prediction]
            if spec.metric in _REGRESSION:
                values.append(_regression(spec.metric, _floats(truth, f"label {label!r}"),
                                          _floats(predicted, f"column {prediction!r}")))
            elif spec.metric in _PROBABILITY:
                y = (truth.astype(str) == spec.positive).to_numpy(dtype=float)
                values.append(_probability(spec.metric, y, _floats(predicted, f"column {prediction!r}")))
            else:
                values.append(_label_metric(spec.metric, spec.variant, spec.positive, *_as_labels(truth, predicted)))
    except ScoringError:
        raise
    except (ValueError, TypeError, ZeroDivisionError, FloatingPointError) as exc:
        raise ScoringError(f"{spec.metric} raised {type(exc).__name__}: {exc}") from exc
    value = float(np.mean(values))
    if not math.isfinite(value):
        raise ScoringError(f"{spec.metric} came out {value}")
    return value
