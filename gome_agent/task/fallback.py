"""A constant-prediction submission, for when no solution has produced anything better.

It keeps the sample submission's exact shape (ids, order, columns) and replaces
each prediction column with one value learned from the training labels: a class
frequency for probabilities, the mean or median for regression, the most
frequent label for label metrics. Without training labels it keeps the
sample's own values, which are valid by definition.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gome_agent.errors import TaskError
from gome_agent.task.analysis import Task
from gome_agent.task.metrics import normalize_metric_name
from gome_agent.task.sample import SampleSubmission, read_csv_checked
from gome_agent.task.scan import text_table_separator

PROBABILITY_EPS = 1e-3  # keeps log loss finite when a class never occurs in training
MAX_TRAIN_ROWS = 2_000_000  # a constant needs no more; big label files (taxi fares) stay fast
_LABEL_HEAD_ROWS = 1000

_SAMPLE_NAME = re.compile(r"sample[_\- ]?submission", re.IGNORECASE)
_LABEL_METRICS = frozenset({
    "accuracy", "balanced_accuracy", "f1", "fbeta", "precision", "recall", "specificity", "mcc", "kappa",
    "error_rate",
})
_REGRESSION_METRICS = frozenset({
    "rmse", "mse", "mae", "rmsle", "msle", "mape", "smape", "median_absolute_error", "r2", "pinball",
})
_MEDIAN_METRICS = frozenset({"mae", "median_absolute_error", "mape", "smape"})
_LOG_METRICS = frozenset({"rmsle", "msle"})


@dataclass(frozen=True)
class _Labels:
    path: Path
    label_column: str | None  # set when the targets are class names and this column holds the class


def build_constant_submission(task: Task, sample: SampleSubmission, out_path: Path) -> str:
    """Write a constant-prediction submission in the sample's exact format; return what it did, in one sentence."""
    frame = read_csv_checked(sample.path, dtype=str, keep_default_na=False)
    targets = [c for c in task.target_columns if c in frame.columns]
    if not targets:
        raise TaskError(
            f"none of the task's target columns {task.target_columns} is a column of {sample.path.name}"
        )
    labels = _find_labels(Path(task.data_dir), sample.path, targets)
    if labels is None:
        _write(frame, out_path)
        return (
            f"Wrote {out_path.name} ({len(frame):,} rows): no training labels for {_names(targets)} were found "
            f"in {task.data_dir}, so it keeps the sample submission's own values."
        )
    metric = normalize_metric_name(task.metric_name)
    if labels.label_column is not None:
        values, read_rows = _class_frequencies(labels.path, labels.label_column, targets)
        described = [f"{c}={float(values[c]):.4g}" for c in targets]
        how = f"class frequencies of {labels.label_column!r}"
        kept: list[str] = []
    else:
        values, read_rows, described, kept = _per_column_constants(labels.path, targets, frame, metric)
        how = "constants"
    for column, value in values.items():
        frame[column] = value
    _write(frame, out_path)
    parts = []
    if described:
        parts.append(f"{how} learned from {labels.path.name} ({read_rows:,} rows): {_names(described)}")
    if kept:
        parts.append(f"the sample submission's own values for {_names(kept)}")
    return f"Wrote {out_path.name} ({len(frame):,} rows) with " + "; ".join(parts) + "."


def _find_labels(data_dir: Path, sample_path: Path, targets: list[str]) -> _Labels | None:
    candidates = _candidate_tables(data_dir, sample_path)
    for path in candidates:
        header = _header(path)
        if header is not None and all(t in header for t in targets):
            return _Labels(path, None)
    if len(targets) < 2:
        return None
    # Probability columns named after classes (spooky: EAP, HPL, MWS) learn from one label column.
    wanted = set(targets)
    for path in candidates:
        head = _read(path, nrows=_LABEL_HEAD_ROWS)
        if head is None:
            continue
        for column in head.columns:
            seen = set(head[column].dropna())
            if seen and seen <= wanted:
                return _Labels(path, str(column))
    return None


def _candidate_tables(data_dir: Path, sample_path: Path) -> list[Path]:
    """CSV files at the top level, then one level down; names with "train", then "label", first."""
    root = data_dir.resolve()
    found: list[Path] = []
    for pattern in ("*", "*/*"):
        level = [
            p for p in data_dir.glob(pattern)
            if text_table_separator(p.name) and not _SAMPLE_NAME.search(p.name) and p.is_file()
            and p.resolve() != sample_path.resolve() and p.resolve().is_relative_to(root)
        ]
        level.sort(key=lambda p: ("train" not in p.name.lower(), "label" not in p.name.lower(), p.name))
        found.extend(level)
    return found


def _header(path: Path) -> list[str] | None:
    head = _read(path, nrows=0)
    return None if head is None else [str(c) for c in head.columns]


def _read(path: Path, **kwargs: object) -> pd.DataFrame | None:
    """A training table read as strings, or None when it cannot be read (a bad extra file is skipped)."""
    try:
        return read_csv_checked(path, sep=text_table_separator(path.name), dtype=str, **kwargs)
    except TaskError:
        return None


def _class_frequencies(path: Path, label_column: str, targets: list[str]) -> tuple[dict[str, str], int]:
    labels = _read(path, usecols=[label_column], nrows=MAX_TRAIN_ROWS)
    if labels is None:
        raise TaskError(f"{path} could be read in part but not its label column {label_column!r}")
    counts = labels[label_column].dropna().value_counts()
    freq = np.array([float(counts.get(t, 0)) for t in targets])
    probs = _normalized(np.clip(freq / max(freq.sum(), 1.0), PROBABILITY_EPS, 1 - PROBABILITY_EPS))
    return {t: repr(float(p)) for t, p in zip(targets, probs)}, len(labels)


def _normalized(probs: np.ndarray) -> np.ndarray:
    return probs / probs.sum()


def _per_column_constants(
    path: Path, targets: list[str], sample: pd.DataFrame, metric: str
) -> tuple[dict[str, str], int, list[str], list[str]]:
    """One value per target column, chosen by the column's values and the metric."""
    train = _read(path, usecols=targets, nrows=MAX_TRAIN_ROWS)
    if train is None:
        raise TaskError(f"{path} could be read in part but not its target columns {targets}")
    values: dict[str, str] = {}
    described: list[str] = []
    kept: list[str] = []
    probabilities: list[str] = []
    for column in targets:
        series = train[column].dropna()
        numbers = pd.to_numeric(series, errors="coerce")
        if series.empty:
            kept.append(f"{column} (no labels in {path.name})")
            continue
        if numbers.isna().any():
            if sample[column].nunique() > 1:
                # Varying string predictions carry per-row information (text normalization's
                # sample copies each input token) that one label cannot beat.
                kept.append(f"{column} (row-specific)")
                continue
            values[column] = str(series.value_counts().idxmax())
            described.append(f"{column}={values[column]!r} (most frequent)")
            continue
        value, how = _numeric_constant(series, numbers, sample[column], metric)
        if how == "positive rate":
            probabilities.append(column)
        values[column] = value
        described.append(f"{column}={_short(value)} ({how})")
    if metric == "log_loss" and len(probabilities) >= 2 and len(probabilities) == len(targets):
        # One-hot classes scored by multi-class log loss: rows must sum to one.
        probs = _normalized(np.array([float(values[c]) for c in probabilities]))
        values.update({c: repr(float(p)) for c, p in zip(probabilities, probs)})
        described = [f"{c}={float(values[c]):.4g} (class frequency)" for c in probabilities]
    return values, len(train), described, kept


def _numeric_constant(series: pd.Series, numbers: pd.Series, sample_column: pd.Series, metric: str) -> tuple[str, str]:
    binary = bool(numbers.isin([0, 1]).all())
    integral = bool((numbers == numbers.round()).all())
    sample_numbers = pd.to_numeric(sample_column, errors="coerce")
    sample_integral = bool(sample_numbers.notna().all() and (sample_numbers == sample_numbers.round()).all())
    if metric in _LABEL_METRICS:
        return str(series.value_counts().idxmax()), "most frequent"
    if binary and metric not in _REGRESSION_METRICS:
        rate = float(np.clip(numbers.mean(), PROBABILITY_EPS, 1 - PROBABILITY_EPS))
        return repr(rate), "positive rate"
    if metric not in _REGRESSION_METRICS and integral and sample_integral:
        # An unknown metric on integer labels with an integer sample: a mean could be no valid class.
        return str(series.value_counts().idxmax()), "most frequent"
    if metric in _MEDIAN_METRICS:
        return repr(float(numbers.median())), "median"
    if metric in _LOG_METRICS and bool((numbers > -1).all()):
        # The constant that minimises a squared log error is the mean in log space.
        return repr(float(np.expm1(np.log1p(numbers).mean()))), "log-space mean"
    return repr(float(numbers.mean())), "mean"


def _short(value: str) -> str:
    try:
        return f"{float(value):.4g}"
    except ValueError:
        return value


def _names(items: list[str], shown: int = 5) -> str:
    text = ", ".join(items[:shown])
    if len(items) > shown:
        text += f" and {len(items) - shown} more"
    return text


def _write(frame: pd.DataFrame, out_path: Path) -> None:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    frame.to_csv(partial, index=False)
    os.replace(partial, out_path)
