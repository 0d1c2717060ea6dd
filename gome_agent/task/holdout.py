"""Rows gome holds out and scores itself: a validation score no solution can inflate.

At the start of a run gome sets aside a share of the labelled training rows (stratified for
classification, deterministic from the seed) and keeps their labels to itself. Solutions see the
competition folder through a copy of it (`validation/input/`: links to every file, except that the
training table lacks the held-out rows), plus the held-out rows without their labels as
`./input/holdout.csv` (`GOME_HOLDOUT`). A solution predicts those rows as it predicts the test
set and writes `./holdout_predictions.csv` in the submission's format; gome computes the
competition's metric on them (task/scoring.py), and that number is the step's score. A model that
refits on its own validation rows, scores itself on training rows or writes a number of its own
choosing cannot move it: the labels are out of its reach (hidden in the namespace sandbox).

The held-out rows are split into parts (stratified where possible) whose scores give the noise of
the score; every step is scored on the same rows and parts, so the gains of two steps pair up.

The solution's own score (`scores.json`) stays as a cross-check: when it disagrees with gome's by
more than the tolerance, the step is untrusted and not accepted, and the lesson says why.

Where a task cannot be scored this way (no labelled table keyed by unique ids, a metric gome cannot
compute, too few rows), the plan says why and the run uses the self-reported scores.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from gome_agent.task.folds import FOLDS, FOLDS_FILE, MAX_FOLD_ROWS, can_stratify, training_table
from gome_agent.task.sample import SampleSubmission, load_sample_submission
from gome_agent.task.scan import CompetitionScan, text_table_separator
from gome_agent.task.scoring import MetricSpec, ScoringError, compute_metric, plan_metric
from gome_agent.task.submission import OutputCheck, check_submission

INPUT_DIR = "input"  # the solutions' view of the competition folder, under validation/
REFIT_INPUT_DIR = "refit_input"  # the refit's view: every row, and the held-out file the contract names
REFIT_FOLDS_FILE = "folds-refit.csv"
LABELS_FILE = "holdout_labels.csv"  # ids, labels and part of the held-out rows: gome's alone
SAMPLE_FILE = "holdout_sample.csv"  # the held-out ids in the submission's format, to check predictions
PREDICTIONS_FILE = "holdout_predictions.csv"
MIN_ROWS = 50
MAX_SHARE = 0.3  # never hold out more than this share of the labelled rows


class HoldoutPlan(BaseModel):
    """Which rows gome holds out and how it scores them (saved in task.json), or why it does not."""

    available: bool
    reason: str
    table: str | None = None  # the training table, relative to the competition folder
    id_column: str | None = None
    rows: int = 0
    file: str | None = None  # the held-out rows' features, in the solutions' ./input/
    parts: int = 0
    metric: MetricSpec | None = None


def scoring_note(plan: HoldoutPlan | None) -> str:
    """Who measures a run's scores, for every view of it."""
    if plan is not None and plan.available:
        return f"scores measured by gome on {plan.rows:,} held-out rows"
    return "scores self-reported by the solutions" + (f" ({plan.reason})" if plan is not None else "")


def _holdout_size(n: int, fraction: float, max_rows: int, min_rows: int) -> int | None:
    # A small table's share alone leaves too few rows to tell a small real gain from noise (675 rows
    # of 4,500 rejected a real +0.003 AUC), so it gets up to MAX_SHARE to reach `min_rows`.
    size = min(max(round(fraction * n), min(min_rows, math.floor(MAX_SHARE * n)), MIN_ROWS), max_rows)
    return size if size <= MAX_SHARE * n else None


def _mirror(source: Path, target: Path, replaced: Path) -> None:
    """Make `target` show `source` through links, except the path `replaced` (written separately)."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir()):
        if entry == replaced:
            continue
        if replaced.is_relative_to(entry):
            _mirror(entry, target / entry.name, replaced)
        else:
            os.symlink(entry.resolve(), target / entry.name)


def plan_holdout(scan: CompetitionScan, *, metric_name: str, id_column: str, target_columns: list[str],
                 task_type: str, sample: SampleSubmission, fraction: float, max_rows: int, min_rows: int,
                 seed: int, out: Path) -> HoldoutPlan:
    """Choose the held-out rows, write the solutions' view of the data and gome's labels under
    `out`, and say how the rows are scored; or say why the run cannot be scored by gome."""
    if fraction <= 0:
        return HoldoutPlan(available=False, reason="validation.scoring is self-reported: the solutions' own scores count")
    found = training_table(scan, id_column, target_columns)
    if found is None:
        return HoldoutPlan(available=False, reason=f"no training table has the id column {id_column!r} and the labels")
    info, labels = found
    table = info.path
    if info.rows is not None and info.rows > MAX_FOLD_ROWS:
        return HoldoutPlan(available=False, table=table, reason=f"{table} has {info.rows:,} rows, more than the "
                           f"{MAX_FOLD_ROWS:,} gome copies to hold rows out")
    separator = text_table_separator(table)
    try:
        frame = pd.read_csv(scan.data_dir / table, sep=separator, dtype=str, keep_default_na=False)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        return HoldoutPlan(available=False, table=table, reason=f"{table} cannot be read ({exc})")
    ids = frame[id_column]
    if (ids.str.strip() == "").any() or not ids.is_unique:
        return HoldoutPlan(available=False, table=table, reason=f"the ids of {table} are missing or repeated")
    metric = plan_metric(metric_name, frame[labels], sample.target_columns, sample.numeric_columns)
    if isinstance(metric, str):
        return HoldoutPlan(available=False, table=table, reason=metric)
    size = _holdout_size(len(frame), fraction, max_rows, min_rows)
    if size is None:
        return HoldoutPlan(available=False, table=table, reason=f"{table} has too few rows ({len(frame):,}) to hold "
                           f"out {MIN_ROWS} and keep {1 - MAX_SHARE:.0%} for training")
    label = frame[labels[0]]
    stratify = label if len(labels) == 1 and can_stratify(label, task_type, FOLDS) else None
    kept, held = train_test_split(np.arange(len(frame)), test_size=size, random_state=seed, stratify=stratify)
    held = np.sort(held)
    holdout = frame.iloc[held].reset_index(drop=True)
    held_label = holdout[labels[0]]
    parts = _parts(held_label, stratify is not None and can_stratify(held_label, task_type, FOLDS), seed)

    view = out / INPUT_DIR
    _mirror(scan.data_dir, view, scan.data_dir / table)
    frame.iloc[np.sort(kept)].to_csv(view / table, sep=separator or ",", index=False)
    name = "holdout.csv" if not (scan.data_dir / "holdout.csv").exists() else "gome_holdout.csv"
    holdout.drop(columns=labels).to_csv(view / name, index=False)
    holdout[[id_column, *labels]].assign(part=parts).to_csv(out / LABELS_FILE, index=False)
    _write_sample(sample, holdout[id_column], out / SAMPLE_FILE)
    how = "stratified by " + labels[0] if stratify is not None else "shuffled"
    return HoldoutPlan(
        available=True, table=table, id_column=id_column, rows=size, file=name, parts=int(parts.max()) + 1,
        metric=metric,
        reason=f"gome holds out {size:,} of the {len(frame):,} rows of {table} ({how}) and scores their "
               f"predictions itself: {metric.describe()}",
    )


def _parts(label: pd.Series, stratify: bool, seed: int) -> np.ndarray:
    """The part (0..k-1) of each held-out row, for the score's noise."""
    n = len(label)
    splitter = (StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed) if stratify
                else KFold(n_splits=FOLDS, shuffle=True, random_state=seed))
    part = np.zeros(n, dtype=int)
    for number, (_, rows) in enumerate(splitter.split(np.zeros(n), label if stratify else None)):
        part[rows] = number
    return part


def _write_sample(sample: SampleSubmission, ids: pd.Series, path: Path) -> None:
    """The held-out ids in the submission's format, with the sample's own first values."""
    first = pd.read_csv(sample.path, dtype=str, keep_default_na=False, nrows=1)
    frame = pd.DataFrame({c: ids.to_numpy() if c == sample.id_column else first[c].iloc[0] for c in sample.columns})
    frame.to_csv(path, index=False)


def holdout_env(plan: HoldoutPlan) -> dict[str, str]:
    """What a solution is told of the held-out rows (the contract names both)."""
    return {"GOME_HOLDOUT": f"{INPUT_DIR}/{plan.file}", "GOME_HOLDOUT_PREDICTIONS": PREDICTIONS_FILE}


def refit_view(plan: HoldoutPlan, data_dir: Path, validation_dir: Path) -> Path:
    """The refit's view of the competition (run/refit.py): the folder itself, training table and all,
    plus the held-out features file, so a solution written to the contract runs unchanged."""
    assert plan.available and plan.file is not None
    view = validation_dir / REFIT_INPUT_DIR
    if not view.is_dir():
        _mirror(data_dir, view, data_dir / plan.file)  # a competition file of that name gives way, as in the view
        # A copy, not a link: the sandbox shows solutions this view and the competition folder only.
        shutil.copyfile(validation_dir / INPUT_DIR / plan.file, view / plan.file)
    return view


def refit_folds(validation_dir: Path, id_column: str) -> Path | None:
    """Folds over every labelled row for the refit: the run's folds, and each held-out row in the
    fold of its part (both stratified alike), so a solution that validates on ./folds.csv still can.
    None for a run without folds."""
    path = validation_dir / REFIT_FOLDS_FILE
    if not (validation_dir / FOLDS_FILE).is_file():
        return None
    if not path.is_file():
        folds = pd.read_csv(validation_dir / FOLDS_FILE, dtype=str, keep_default_na=False)
        held = pd.read_csv(validation_dir / LABELS_FILE, dtype=str, keep_default_na=False, usecols=[id_column, "part"])
        held = held.rename(columns={"part": "fold"})
        pd.concat([folds, held], ignore_index=True).to_csv(path, index=False)
    return path


def holdout_scorer(plan: HoldoutPlan | None, validation_dir: Path, *, id_column: str, tolerance_se: float,
                   tolerance_relative: float) -> HoldoutScorer | None:
    """The scorer of a run whose plan holds rows out; None for a run with self-reported scores."""
    if plan is None or not plan.available:
        return None
    return HoldoutScorer(plan, validation_dir, id_column=id_column, tolerance_se=tolerance_se,
                         tolerance_relative=tolerance_relative)


def held_ids(validation_dir: Path, id_column: str) -> frozenset[str]:
    """The ids of the rows gome holds out."""
    labels = pd.read_csv(validation_dir / LABELS_FILE, dtype=str, keep_default_na=False, usecols=[id_column])
    return frozenset(labels[id_column])


class HoldoutScorer:
    """Scores an attempt's held-out predictions and cross-checks its self-reported score."""

    def __init__(self, plan: HoldoutPlan, validation_dir: Path, *, tolerance_se: float, tolerance_relative: float,
                 id_column: str) -> None:
        assert plan.available and plan.metric is not None
        self.plan = plan
        self.metric: MetricSpec = plan.metric
        self.tolerance_se = tolerance_se
        self.tolerance_relative = tolerance_relative
        self.sample = load_sample_submission(validation_dir / SAMPLE_FILE, id_column)
        labels = pd.read_csv(validation_dir / LABELS_FILE, dtype=str, keep_default_na=False)
        self.labels = labels.set_index(plan.id_column or id_column)
        self.part = self.labels.pop("part").astype(int).to_numpy()

    def env(self) -> dict[str, str]:
        return holdout_env(self.plan)

    def score(self, predictions: Path) -> tuple[float | None, list[float] | None, list[str]]:
        """gome's score of `predictions`, the score of each part (None when a part cannot be
        scored), and the problems that keep it from being scored."""
        problems = check_submission(predictions, self.sample)
        if problems:
            return None, None, [f"{PREDICTIONS_FILE}: {p}" for p in problems]
        frame = pd.read_csv(predictions, dtype=str, keep_default_na=False).set_index(self.sample.id_column)
        frame = frame.loc[self.labels.index]
        try:
            total = compute_metric(self.metric, self.labels, frame)
        except ScoringError as exc:
            return None, None, [f"gome could not compute {self.metric.metric} on {PREDICTIONS_FILE}: {exc}"]
        try:
            parts = [compute_metric(self.metric, self.labels[self.part == k], frame[self.part == k])
                     for k in range(self.plan.parts)]
        except ScoringError:
            parts = None
        return total, (parts if parts and len(parts) >= 2 else None), []

    def tolerance(self, score: float, parts: list[float] | None, reported_folds: list[float] | None) -> float:
        """How far a self-reported score may be from gome's: `tolerance_se` standard errors of the
        two scores' difference, never less than `tolerance_relative` of gome's score.

        A solution that reports no fold scores is taken to be as noisy as gome's held-out score
        (its own split is usually no larger); a false alarm fails an honest step, a missed one
        costs nothing, since gome's score is the one that counts."""
        own = statistics.variance(parts) / len(parts) if parts and len(parts) >= 2 else 0.0
        reported = (statistics.variance(reported_folds) / len(reported_folds)
                    if reported_folds and len(reported_folds) >= 2 else own)
        return max(self.tolerance_se * math.sqrt(own + reported), self.tolerance_relative * max(abs(score), 1e-12))

    def check(self, attempt_dir: Path, check: OutputCheck) -> OutputCheck:
        """`check` with gome's score in place of the self-reported one, the held-out parts' scores as
        the fold scores, and the reasons the step cannot be trusted among its problems."""
        score, parts, problems = self.score(attempt_dir / PREDICTIONS_FILE)
        reported = check.score
        # A missing or broken scores.json does not matter once gome has scored the step itself.
        kept = [p for p in check.problems if score is None or p != check.score_problem]
        untrusted = None
        if score is not None and reported is not None:
            allowed = self.tolerance(score, parts, check.fold_scores)
            if abs(reported - score) > allowed:
                untrusted = (f"scores.json reports {reported:.6g}, but gome measured {score:.6g} on the "
                             f"{self.plan.rows:,} rows it holds out (tolerance {allowed:.3g}): measure the score "
                             "on rows the model did not train on, with the competition's metric")
        return check.model_copy(update={
            "score": score, "reported_score": reported, "reported_folds": check.fold_scores, "fold_scores": parts,
            "scored_by": "gome", "untrusted": untrusted,
            "valid_submission": check.valid_submission and not problems and untrusted is None,
            "problems": kept + problems + ([untrusted] if untrusted else []),
        })

