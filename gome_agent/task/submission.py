"""Checking what a solution left behind: `submission.csv` against the sample, and its score file.

MLE-bench grades a submission only if it has the sample's columns, ids and row
count (§8.4 of the contract); any violation scores nothing. These checks find
the same problems before the run ends, and word each one so that the debug
prompt can fix it: what is wrong, how many, and up to three examples.
"""

from __future__ import annotations

import csv
import filecmp
import heapq
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel

from gome_agent.task.sample import SampleSubmission

_EXAMPLES = 3
# Spellings of a missing value in a numeric column.
_NUMERIC_NA_SPELLINGS = [
    "", " ", "nan", "NaN", "NAN", "-nan", "-NaN", "NA", "N/A", "n/a", "null", "NULL", "None", "<NA>", "NaT",
]
# Missing values as Python or pandas write them into a text column.
_TEXT_NA = {"", "nan", "NaN", "<NA>"}


class OutputCheck(BaseModel):
    """The verdict on one run's outputs."""

    submission_exists: bool
    valid_submission: bool
    score: float | None
    problems: list[str]
    fold_scores: list[float] | None = None  # the scores per fold (per held-out part when gome scored)
    score_problem: str | None = None  # why scores.json gave no score (also among the problems)
    scored_by: Literal["gome", "self-reported"] = "self-reported"
    reported_score: float | None = None  # the solution's own score, when gome scored the step
    reported_folds: list[float] | None = None
    untrusted: str | None = None  # why the self-reported score cannot be believed (also among the problems)

    @property
    def ok(self) -> bool:
        return self.valid_submission and self.score is not None


def _examples(values: Iterable[object]) -> str:
    shown: list[str] = []
    for value in values:
        text = repr(str(value))
        if text not in shown:
            shown.append(text)
        if len(shown) == _EXAMPLES:
            break
    return ", ".join(shown)


def _names(columns: Iterable[str]) -> str:
    return ", ".join(repr(c) for c in columns)


def _read(path: Path, sample: SampleSubmission) -> pd.DataFrame | str:
    """The CSV, or the reason it cannot be read.

    Ids and text columns stay exactly as written (ids compare as text); only the
    columns that are numeric in the sample parse numbers and missing values.
    """
    text = {c: object for c in sample.columns if c not in sample.numeric_columns}
    missing = {c: _NUMERIC_NA_SPELLINGS for c in sample.numeric_columns}
    try:
        return pd.read_csv(path, dtype=text, keep_default_na=False, na_values=missing)  # type: ignore[arg-type]
    except pd.errors.EmptyDataError:
        return f"{path.name} is empty (no header, no rows)"
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, csv.Error, OSError) as exc:
        return f"{path.name} cannot be read as CSV: {exc}"


def _as_text(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=object, keep_default_na=False, na_filter=False)


def _is_sample_copy(path: Path, frame: pd.DataFrame, sample: SampleSubmission) -> bool:
    if sample.path.suffix.lower() == ".csv":
        return path.stat().st_size == sample.path.stat().st_size and filecmp.cmp(path, sample.path, shallow=False)
    # A compressed sample cannot match byte for byte; compare the cells instead.
    if list(frame.columns) != sample.columns or len(frame) != sample.n_rows:
        return False
    return _as_text(path).equals(_as_text(sample.path))


def _id_problems(ids: pd.Series, sample: SampleSubmission) -> list[str]:
    problems = []
    name = sample.id_column
    duplicated = ids.duplicated()
    if duplicated.any():
        problems.append(
            f"{int(duplicated.sum()):,} duplicate id(s) in column {name!r}: every id must appear once "
            f"(e.g. {_examples(ids[duplicated])})"
        )
    present = set(ids.tolist())
    if present == sample.ids:
        return problems
    unknown = present - sample.ids
    if unknown:
        first = min(unknown)
        hint = ""
        if first.endswith(".0") and first[:-2] in sample.ids:
            hint = "; they look like integers written as floats: write the ids exactly as in the sample"
        problems.append(
            f"{len(unknown):,} id(s) in column {name!r} are not in the sample submission "
            f"(e.g. {_examples(heapq.nsmallest(_EXAMPLES, unknown))}){hint}"
        )
    missing = sample.ids - present
    if missing:
        problems.append(
            f"{len(missing):,} id(s) of the sample submission are missing from column {name!r} "
            f"(e.g. {_examples(heapq.nsmallest(_EXAMPLES, missing))})"
        )
    return problems


def _where(mask: pd.Series, ids: pd.Series | None) -> str:
    """Up to three places of the True cells of `mask`: ids when known, else row numbers."""
    if ids is not None:
        return "at id " + _examples(ids[mask].head(_EXAMPLES))
    return "at row " + ", ".join(str(i + 1) for i in np.flatnonzero(mask.to_numpy())[:_EXAMPLES])


def _sample_has(sample: SampleSubmission, column: str, values: set[str]) -> bool:
    """Whether the sample itself uses one of `values` in `column` (then they are legitimate)."""
    original = pd.read_csv(sample.path, usecols=[column], dtype=object, keep_default_na=False, na_filter=False)
    return bool(original[column].isin(list(values)).any())


def _value_problems(frame: pd.DataFrame, sample: SampleSubmission) -> list[str]:
    problems = []
    ids = frame[sample.id_column] if sample.id_column in frame.columns else None
    for column in sample.target_columns:
        if column not in frame.columns:
            continue
        cells = frame[column]
        if column in sample.numeric_columns:
            missing = cells.isna()
            if missing.any():
                problems.append(
                    f"column {column!r} has {int(missing.sum()):,} NaN or empty value(s) "
                    f"({_where(missing, ids)}); every row needs a prediction"
                )
            numbers = cells if pd.api.types.is_numeric_dtype(cells) else pd.to_numeric(cells, errors="coerce")
            text = numbers.isna() & ~missing
            if text.any():
                problems.append(
                    f"column {column!r} has {int(text.sum()):,} non-numeric value(s) "
                    f"(e.g. {_examples(cells[text])}); the sample submission has numbers there"
                )
            infinite = pd.Series(np.isinf(numbers.to_numpy(dtype=float)), index=cells.index)
            if infinite.any():
                problems.append(
                    f"column {column!r} has {int(infinite.sum()):,} infinite value(s) ({_where(infinite, ids)})"
                )
        else:
            missing = cells.str.strip().isin(list(_TEXT_NA))
            if missing.any() and not _sample_has(sample, column, set(cells[missing].unique())):
                problems.append(
                    f"column {column!r} has {int(missing.sum()):,} NaN or empty value(s) "
                    f"({_where(missing, ids)}); every row needs a prediction"
                )
    return problems


def check_submission(path: Path, sample: SampleSubmission) -> list[str]:
    """Every way in which `path` breaks the sample submission's contract; empty when it meets it."""
    if not path.is_file():
        return [f"no submission: {path} does not exist"]
    frame = _read(path, sample)
    if isinstance(frame, str):
        return [frame]
    frame.columns = [str(c) for c in frame.columns]
    if _is_sample_copy(path, frame, sample):
        return [f"{path.name} is the sample submission itself, not predictions"]
    problems = []
    missing = [c for c in sample.columns if c not in frame.columns]
    if missing:
        problems.append(f"missing column(s): {_names(missing)} (expected columns: {_names(sample.columns)})")
    extra = [c for c in frame.columns if c not in sample.columns]
    if extra:
        hint = ""
        if extra[0].startswith("Unnamed: "):
            hint = "; the DataFrame index was written too: use to_csv(..., index=False)"
        problems.append(
            f"unexpected extra column(s): {_names(extra)} (expected only: {_names(sample.columns)}){hint}"
        )
    if len(frame) != sample.n_rows:
        problems.append(
            f"wrong row count: got {len(frame):,}, expected {sample.n_rows:,} (one row per id of the sample submission)"
        )
    if sample.id_column in frame.columns:
        problems.extend(_id_problems(frame[sample.id_column], sample))
    problems.extend(_value_problems(frame, sample))
    return problems


def read_score(path: Path) -> tuple[float | None, str | None]:
    """The validation score a solution wrote, or None and the exact reason there is none."""
    if not path.is_file():
        return None, f'no score file: {path} does not exist (write {{"score": <validation score>}} to it)'
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return None, f"{path.name} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{path.name} cannot be read: {exc}"
    if not isinstance(data, dict):
        return None, f'{path.name} must hold a JSON object such as {{"score": 0.87}}, not a {type(data).__name__}'
    key = "score" if "score" in data else "validation_score" if "validation_score" in data else None
    if key is None:
        return None, f'{path.name} has no "score" key (its keys: {_names(list(data)[:10]) or "none"})'
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f'"{key}" in {path.name} must be a number, not {type(value).__name__} {value!r}'
    if math.isnan(value):
        return None, f'"{key}" in {path.name} is NaN'
    if math.isinf(value):
        return None, f'"{key}" in {path.name} is infinite'
    return float(value), None


SCORE_TABLE_CHARS = 1200
_TABLE_KEYS = 12
_TABLE_ITEMS = 20


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _row(key: str, value: object, depth: int = 0) -> list[str]:
    unit = "s" if "time" in key.lower() else ""
    number = _number(value)
    if number is not None:
        return [f"{key}: {number:.6g}{unit}"]
    if isinstance(value, list):
        numbers = [n for n in (_number(v) for v in value) if n is not None]
        if not numbers:
            return []
        shown = " ".join(f"{n:.6g}{unit}" for n in numbers[:_TABLE_ITEMS])
        more = f" ... ({len(numbers)} in all)" if len(numbers) > _TABLE_ITEMS else ""
        spread = ""
        if len(numbers) > 1:
            mean = sum(numbers) / len(numbers)
            std = math.sqrt(sum((n - mean) ** 2 for n in numbers) / (len(numbers) - 1))
            spread = f" (mean {mean:.6g}, std {std:.3g})"
        return [f"{key}: {shown}{more}{spread}"]
    if isinstance(value, dict) and depth == 0:
        flat = [(str(k), _number(v)) for k, v in value.items()]
        if flat and all(n is not None for _, n in flat):
            return [f"{key}: " + ", ".join(f"{k} {n:.6g}{unit}" for k, n in flat[:_TABLE_ITEMS])]
        return [row for k, v in list(value.items())[:_TABLE_ITEMS] for row in _row(f"{key}.{k}", v, depth + 1)]
    return []


def read_fold_scores(path: Path) -> list[float] | None:
    """The per-fold validation scores in `scores.json` ("folds"), when it lists at least two finite ones."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    folds = data.get("folds") if isinstance(data, dict) else None
    if not isinstance(folds, list):
        return None
    numbers = [_number(v) for v in folds]
    if len(numbers) < 2 or any(n is None for n in numbers):
        return None
    return [float(n) for n in numbers if n is not None]


def read_score_table(path: Path) -> str | None:
    """The figures a solution reported next to its score in `scores.json` (per fold, per model and
    the ensemble, time per phase), as a few lines of text; None when there are none."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    rows = [row for key, value in data.items() if key not in ("score", "validation_score")
            for row in _row(str(key), value)][:_TABLE_KEYS]
    text = "\n".join(rows)
    if len(text) > SCORE_TABLE_CHARS:
        text = text[:SCORE_TABLE_CHARS] + " ..."
    return text or None


def check_outputs(
    workdir: Path,
    sample: SampleSubmission,
    *,
    submission_name: str = "submission.csv",
    score_name: str = "scores.json",
) -> OutputCheck:
    """Check a finished run's submission and score file together."""
    submission = workdir / submission_name
    submission_problems = check_submission(submission, sample)
    score, score_problem = read_score(workdir / score_name)
    exists = submission.is_file()
    return OutputCheck(
        submission_exists=exists,
        valid_submission=exists and not submission_problems,
        score=score,
        problems=submission_problems + ([score_problem] if score_problem is not None else []),
        score_problem=score_problem,
        fold_scores=read_fold_scores(workdir / score_name) if score is not None else None,
    )
