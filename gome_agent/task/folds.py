"""Validation folds the harness owns: one assignment of the labelled training rows, for every step.

At the start of a run gome assigns each row of the training table to one of k folds (stratified by
the label for classification, shuffled otherwise; deterministic from the seed) and writes it as
`validation/folds.csv` (the id column and `fold`). Every attempt gets a copy as `./folds.csv`
(named by `GOME_FOLDS`), and the contract asks solutions to validate on exactly these folds, so the
scores of every step of every trace are measured on the same rows and compare. The final
selection's re-runs get the assignment of their own seed (`folds-seed<N>.csv`), a fresh split.

A task without a labelled table keyed by unique ids, or one too large to list, gets no folds; the
run says why and solutions split the data themselves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel
from sklearn.model_selection import KFold, StratifiedKFold

from gome_agent.task.scan import CompetitionScan, FileInfo, text_table_separator

FOLDS = 5
MAX_FOLD_ROWS = 2_000_000  # a fold file of more rows costs more than it saves; such tasks sample anyway
MAX_STRATA = 50
FOLDS_FILE = "folds.csv"


class FoldPlan(BaseModel):
    """How the harness split the labelled rows (saved in task.json), or why it could not."""

    available: bool
    reason: str  # what the folds are, or why there are none
    table: str | None = None  # the training table, relative to the competition folder
    id_column: str | None = None
    label_column: str | None = None
    folds: int = 0
    stratified: bool = False
    rows: int = 0


def training_table(scan: CompetitionScan, id_column: str, targets: list[str]) -> tuple[FileInfo, list[str]] | None:
    """The training table (keyed by the id column) and its label columns."""
    for info in scan.text_tables():
        if id_column in (info.columns or []) and "test" not in info.path.lower():
            labels = scan.label_columns(info, id_column, targets)
            if labels:
                return info, labels
    return None


def can_stratify(label: pd.Series, task_type: str, k: int) -> bool:
    """Whether splits into `k` parts can keep the classes' shares: a classification task whose
    every class has at least `k` rows, and not too many classes."""
    counts = label.value_counts(dropna=False)
    return "class" in task_type.lower() and len(counts) <= MAX_STRATA and int(counts.min()) >= k


def plan_folds(scan: CompetitionScan, *, id_column: str, target_columns: list[str], task_type: str,
               seeds: list[int], out: Path, k: int = FOLDS, exclude: frozenset[str] = frozenset()) -> FoldPlan:
    """Assign the folds for each of `seeds` (the first is the run's), write them to `out`, and say how.

    `exclude`: ids of rows the solutions do not see (gome's held-out rows, task/holdout.py)."""
    found = training_table(scan, id_column, target_columns)
    if found is None:
        return FoldPlan(available=False, reason=f"no training table has the id column {id_column!r} and the "
                        "labels; solutions make their own validation split")
    info, labels = found
    table = info.path
    if info.rows is not None and info.rows > MAX_FOLD_ROWS:
        return FoldPlan(available=False, table=table, reason=f"{table} has {info.rows:,} rows, more than the "
                        f"{MAX_FOLD_ROWS:,} a fold file lists; solutions make their own validation split")
    try:
        frame = pd.read_csv(scan.data_dir / table, sep=text_table_separator(table), usecols=[id_column, labels[0]],
                            dtype=str, keep_default_na=False)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        return FoldPlan(available=False, table=table, reason=f"{table} cannot be read for folds ({exc})")
    if exclude:
        frame = frame[~frame[id_column].isin(exclude)].reset_index(drop=True)
    ids, label = frame[id_column], frame[labels[0]]
    if len(frame) < 2 * k or (ids.str.strip() == "").any() or not ids.is_unique:
        return FoldPlan(available=False, table=table, reason=f"the ids of {table} are missing, repeated or too few "
                        f"for {k} folds; solutions make their own validation split")
    stratified = len(labels) == 1 and can_stratify(label, task_type, k)
    out.mkdir(parents=True, exist_ok=True)
    for n, seed in enumerate(seeds):
        splitter = (StratifiedKFold(n_splits=k, shuffle=True, random_state=seed) if stratified
                    else KFold(n_splits=k, shuffle=True, random_state=seed))
        fold = np.zeros(len(frame), dtype=int)
        for number, (_, rows) in enumerate(splitter.split(frame, label.astype(str) if stratified else None)):
            fold[rows] = number
        name = FOLDS_FILE if n == 0 else f"folds-seed{seed}.csv"
        pd.DataFrame({id_column: ids, "fold": fold}).to_csv(out / name, index=False)
    how = f"stratified by {labels[0]}" if stratified else "shuffled"
    rows = f"the {len(frame):,} rows of {table}" + (" that gome does not hold out" if exclude else "")
    return FoldPlan(available=True, table=table, id_column=id_column, label_column=labels[0], folds=k,
                    stratified=stratified, rows=len(frame), reason=f"{k} folds of {rows} by {id_column}, {how}")


def _source(validation_dir: Path, seed: int | None) -> Path:
    """The folds of `seed` (a final re-run), else the run's own."""
    own = validation_dir / (FOLDS_FILE if seed is None else f"folds-seed{seed}.csv")
    return own if own.is_file() else validation_dir / FOLDS_FILE


def copy_folds(validation_dir: Path, attempt_dir: Path, seed: int | None = None) -> bool:
    """Put the run's folds (or those of `seed`, for a final re-run) into an attempt folder."""
    source = _source(validation_dir, seed)
    if not source.is_file():
        return False
    (attempt_dir / FOLDS_FILE).write_bytes(source.read_bytes())
    return True


def folds_problem(validation_dir: Path, attempt_dir: Path, seed: int | None = None) -> str | None:
    """Why the attempt's ./folds.csv is not the one it was given (None when it is intact)."""
    source = _source(validation_dir, seed)
    try:
        if (attempt_dir / FOLDS_FILE).read_bytes() == source.read_bytes():
            return None
    except FileNotFoundError:
        return "the solution deleted ./folds.csv; validate on it, never write or remove it"
    return "the solution changed ./folds.csv; validate on it as given, never write it"
