"""Grading the offline benchmark the way MLE-bench grades its competitions.

`grade_csv` checks a submission against the private answers (`InvalidSubmission`
says what is wrong), computes the competition's metric, rounds it to 5 decimals
and places it on the competition's leaderboard with MLE-bench's medal rule
(`medal_thresholds`, contract §8.6). `grade_jsonl` grades a whole
`submission.jsonl` and writes MLE-bench's aggregate report. The report fields
are exactly MLE-bench's, so tools built for its reports read ours.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sklearn.metrics import cohen_kappa_score, f1_score, roc_auc_score

from gome_agent.bench.competitions import (
    DEFAULT_DATA_DIR,
    Competition,
    CompetitionSpec,
    MetricName,
    load_competition,
)
from gome_agent.errors import GomeError, TaskError

log = logging.getLogger(__name__)

ROW_SUM_TOLERANCE = 1e-6  # multiclass probabilities must sum to 1 this closely, as in MLE-bench
LOG_LOSS_EPS = 1e-15
SCORE_DECIMALS = 5
_EXAMPLES = 3
# Spellings of "no value" in a submission cell.
_MISSING = frozenset({"", "nan", "NaN", "NAN", "-nan", "NA", "N/A", "n/a", "null", "NULL", "None", "<NA>"})
_PROBABILITY_METRICS: frozenset[MetricName] = frozenset({"roc_auc", "log_loss"})


class InvalidSubmission(GomeError):
    """A submission that cannot be scored; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LeaderboardError(TaskError):
    """A leaderboard file that the medal rule cannot use."""


class CompetitionReport(BaseModel):
    """One competition's grade, with exactly the fields of MLE-bench's `CompetitionReport`."""

    competition_id: str
    score: float | None
    gold_threshold: float
    silver_threshold: float
    bronze_threshold: float
    median_threshold: float
    any_medal: bool
    gold_medal: bool
    silver_medal: bool
    bronze_medal: bool
    above_median: bool
    submission_exists: bool
    valid_submission: bool
    is_lower_better: bool
    created_at: str
    submission_path: str
    # Why the submission scored nothing; kept out of the JSON so the report stays MLE-bench's.
    invalid_reason: str | None = Field(default=None, exclude=True)

    def to_dict(self) -> dict[str, object]:
        return self.model_dump()


# ---------------------------------------------------------------------------------------------
# The medal rule.


@dataclass(frozen=True)
class Thresholds:
    """Medal thresholds of one leaderboard, and which way its scores improve."""

    gold: float
    silver: float
    bronze: float
    median: float
    is_lower_better: bool
    n_teams: int


@dataclass(frozen=True)
class Medals:
    gold: bool
    silver: bool
    bronze: bool
    above_median: bool

    @property
    def any(self) -> bool:
        return self.gold or self.silver or self.bronze


def read_leaderboard(path: Path) -> pd.DataFrame:
    """A leaderboard file with a numeric `score` column, rows in rank order (best first)."""
    if not path.is_file():
        raise LeaderboardError(f"leaderboard {path} does not exist")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise LeaderboardError(f"leaderboard {path} is empty: the medal rule needs at least one team") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise LeaderboardError(f"leaderboard {path} is not a readable CSV file: {exc}") from exc
    if "score" not in frame.columns:
        raise LeaderboardError(f"leaderboard {path} has no 'score' column (columns: {list(frame.columns)})")
    scores = pd.to_numeric(frame["score"], errors="coerce")
    text = scores.isna() & frame["score"].notna()
    if text.any():
        raise LeaderboardError(
            f"leaderboard {path}: 'score' has non-numeric value(s), e.g. {frame['score'][text].iloc[0]!r}"
        )
    frame["score"] = scores.astype(float)
    return frame


def medal_thresholds(scores: pd.Series, source: Path | str) -> Thresholds:
    """MLE-bench's medal rule (contract §8.6) on a leaderboard's scores in rank order.

    N counts every row, positions are 1-indexed and truncated with int(); the
    direction is "lower is better" exactly when the first score is below the last.
    """
    n = len(scores)
    if n == 0:
        raise LeaderboardError(f"leaderboard {source} has no rows: the medal rule needs at least one team")
    values = scores.astype(float).reset_index(drop=True)

    def at(position: int) -> float:
        if not 1 <= position <= n:
            raise LeaderboardError(f"leaderboard {source}: position {position} is outside its {n} rows")
        return float(values.iloc[position - 1])

    if n < 100:
        gold, silver, bronze = at(max(1, int(n * 0.1))), at(max(1, int(n * 0.2))), at(max(1, int(n * 0.4)))
    elif n < 250:
        gold, silver, bronze = at(10), at(max(1, int(n * 0.2))), at(max(1, int(n * 0.4)))
    elif n < 1000:
        gold, silver, bronze = at(10 + int(n * 0.002)), at(50), at(100)
    else:
        gold, silver, bronze = at(10 + int(n * 0.002)), at(max(1, int(n * 0.05))), at(max(1, int(n * 0.1)))
    lower = bool(values.iloc[0] < values.iloc[-1])
    _check_sorted(values, lower, source)
    return Thresholds(gold=gold, silver=silver, bronze=bronze, median=float(values.median()),
                      is_lower_better=lower, n_teams=n)


def _check_sorted(values: pd.Series, lower: bool, source: Path | str) -> None:
    """Thresholds read by position are only meaningful when the rows are in rank order."""
    known = values.dropna().to_numpy()
    steps = np.diff(known)
    wrong = np.flatnonzero(steps < 0) if lower else np.flatnonzero(steps > 0)
    if wrong.size:
        i = int(wrong[0])
        order = "ascending (lower is better)" if lower else "descending (higher is better)"
        raise LeaderboardError(
            f"leaderboard {source} is not sorted best first: its first and last scores make it {order}, "
            f"but score {float(known[i])!r} is followed by {float(known[i + 1])!r}"
        )


def award(score: float | None, thresholds: Thresholds) -> Medals:
    """Medals for a score; a tie with a threshold earns it, beating the median must be strict."""
    if score is None:
        return Medals(gold=False, silver=False, bronze=False, above_median=False)
    if thresholds.is_lower_better:
        gold = score <= thresholds.gold
        silver = not gold and score <= thresholds.silver
        bronze = not gold and not silver and score <= thresholds.bronze
        above = score < thresholds.median
    else:
        gold = score >= thresholds.gold
        silver = not gold and score >= thresholds.silver
        bronze = not gold and not silver and score >= thresholds.bronze
        above = score > thresholds.median
    return Medals(gold=bool(gold), silver=bool(silver), bronze=bool(bronze), above_median=bool(above))


# ---------------------------------------------------------------------------------------------
# Reading and checking a submission.


def read_submission(source: Path | io.StringIO) -> pd.DataFrame:
    """Every cell as written (text), so that checks can quote the offending values."""
    name = source.name if isinstance(source, Path) else "the submission"
    try:
        frame = pd.read_csv(source, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError as exc:
        raise InvalidSubmission(f"{name} is empty (no header, no rows)") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidSubmission(f"{name} cannot be read as CSV: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def read_answers(competition: Competition) -> pd.DataFrame:
    return pd.read_csv(competition.answers_path, dtype=str, keep_default_na=False, na_filter=False)


def _examples(values: Iterable[object]) -> str:
    shown: list[str] = []
    for value in values:
        if repr(value) not in shown:
            shown.append(repr(value))
        if len(shown) == _EXAMPLES:
            break
    return ", ".join(shown)


def _canonical(values: pd.Series) -> pd.Series:
    """Text with surrounding blanks removed and whole numbers written as integers ("7.0" -> "7")."""
    text = values.astype(str).str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    whole = numbers.notna() & np.isfinite(numbers) & (numbers == numbers.round()) & (numbers.abs() < 2**53)
    text = text.where(~whole, numbers[whole].astype("int64").astype(str))
    return text


def _check_ids(submission: pd.DataFrame, answers: pd.DataFrame, id_column: str) -> pd.Series:
    """The submission's ids in canonical form, once each, exactly the answers' set."""
    ids = _canonical(submission[id_column])
    duplicated = ids.duplicated()
    if duplicated.any():
        raise InvalidSubmission(
            f"{int(duplicated.sum())} duplicate id(s) in column {id_column!r} "
            f"(e.g. {_examples(ids[duplicated])}); every test id must appear once"
        )
    expected = set(_canonical(answers[id_column]))
    present = set(ids)
    missing, unknown = sorted(expected - present), sorted(present - expected)
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"{len(missing)} test id(s) missing (e.g. {_examples(missing)})")
        if unknown:
            parts.append(f"{len(unknown)} id(s) not in the test set (e.g. {_examples(unknown)})")
        raise InvalidSubmission(f"column {id_column!r}: " + "; ".join(parts))
    return ids


def _numbers(cells: pd.Series, column: str, ids: pd.Series) -> np.ndarray:
    text = cells.astype(str).str.strip()
    missing = text.isin(_MISSING)
    if missing.any():
        raise InvalidSubmission(
            f"column {column!r} has {int(missing.sum())} missing value(s) (NaN or empty) "
            f"at id {_examples(ids[missing])}; every row needs a prediction"
        )
    numbers = pd.to_numeric(text, errors="coerce")
    bad = numbers.isna()
    if bad.any():
        raise InvalidSubmission(
            f"column {column!r} has {int(bad.sum())} non-numeric value(s) (e.g. {_examples(cells[bad])})"
        )
    values = numbers.to_numpy(dtype=float)
    infinite = ~np.isfinite(values)
    if infinite.any():
        raise InvalidSubmission(
            f"column {column!r} has {int(infinite.sum())} infinite value(s) at id {_examples(ids[infinite])}"
        )
    return values


def _labels(cells: pd.Series, column: str, ids: pd.Series) -> np.ndarray:
    text = _canonical(cells)
    missing = text.isin(_MISSING)
    if missing.any():
        raise InvalidSubmission(
            f"column {column!r} has {int(missing.sum())} missing label(s) (NaN or empty) "
            f"at id {_examples(ids[missing])}; every row needs a prediction"
        )
    return text.to_numpy(dtype=object)


def _probabilities(values: np.ndarray, column: str, ids: pd.Series) -> np.ndarray:
    outside = (values < 0) | (values > 1)
    if outside.any():
        raise InvalidSubmission(
            f"column {column!r} has {int(outside.sum())} probability(ies) outside [0, 1] "
            f"(e.g. {_examples(values[outside])} at id {_examples(ids[outside])})"
        )
    return values


# ---------------------------------------------------------------------------------------------
# Metrics.


def _log_loss(truth: np.ndarray, predicted: np.ndarray) -> float:
    clipped = np.clip(predicted, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    return float(-np.mean(np.sum(truth * np.log(clipped), axis=1)))


def score_frames(submission: pd.DataFrame, answers: pd.DataFrame, spec: CompetitionSpec) -> float:
    """The metric of a submission (cells as text) against the answers; `InvalidSubmission` if it cannot be scored."""
    id_column = spec.id_column
    required = list(answers.columns)
    missing = [c for c in required if c not in submission.columns]
    if missing:
        raise InvalidSubmission(
            f"missing column(s) {_examples(missing)}; the submission needs the columns {required}"
        )
    if len(submission) != len(answers):
        raise InvalidSubmission(
            f"{len(submission)} rows, expected {len(answers)} (one per test id)"
        )
    ids = _check_ids(submission, answers, id_column)
    # Align the submission with the answers' row order.
    position = pd.Series(np.arange(len(ids)), index=ids.to_numpy())
    order = position.loc[_canonical(answers[id_column]).to_numpy()].to_numpy()
    rows = submission.iloc[order].reset_index(drop=True)
    row_ids = ids.iloc[order].reset_index(drop=True)
    targets = required[1:]
    metric = spec.metric

    if metric == "log_loss":
        predicted = np.column_stack([
            _probabilities(_numbers(rows[c], c, row_ids), c, row_ids) for c in targets
        ])
        sums = predicted.sum(axis=1)
        off = np.abs(sums - 1) > ROW_SUM_TOLERANCE
        if off.any():
            raise InvalidSubmission(
                f"{int(off.sum())} row(s) whose probabilities do not sum to 1 (within {ROW_SUM_TOLERANCE:g}): "
                f"e.g. id {_examples(row_ids[off])} sums to {_examples(np.round(sums[off], 8))}"
            )
        truth = answers[targets].astype(float).to_numpy()
        return _log_loss(truth, predicted)

    column = targets[0]
    if metric in ("accuracy", "macro_f1"):
        truth_labels = _canonical(answers[column]).to_numpy(dtype=object)
        predicted_labels = _labels(rows[column], column, row_ids)
        if metric == "accuracy":
            return float(np.mean(truth_labels == predicted_labels))
        classes = sorted(set(truth_labels))
        return float(f1_score(truth_labels, predicted_labels, labels=classes, average="macro", zero_division=0))

    values = _numbers(rows[column], column, row_ids)
    truth = answers[column].astype(float).to_numpy()
    if metric in _PROBABILITY_METRICS:
        values = _probabilities(values, column, row_ids)
    match metric:
        case "roc_auc":
            return float(roc_auc_score(truth, values))
        case "qwk":
            classes = sorted(set(truth.tolist()))
            outside = ~np.isin(values, classes)
            if outside.any():
                raise InvalidSubmission(
                    f"column {column!r} has {int(outside.sum())} value(s) that are not one of the classes "
                    f"{[int(c) for c in classes]} (e.g. {_examples(values[outside])})"
                )
            return float(cohen_kappa_score(truth.astype(int), values.astype(int), labels=[int(c) for c in classes],
                                           weights="quadratic"))
        case "rmse":
            return float(np.sqrt(np.mean((values - truth) ** 2)))
        case "rmsle":
            negative = values < 0
            if negative.any():
                raise InvalidSubmission(
                    f"column {column!r} has {int(negative.sum())} negative value(s) "
                    f"(e.g. {_examples(values[negative])}); RMSLE needs predictions >= 0"
                )
            return float(np.sqrt(np.mean((np.log1p(values) - np.log1p(truth)) ** 2)))
    raise AssertionError(f"metric {metric!r} has no implementation")


def score_csv(submission_path: Path | io.StringIO, competition: Competition,
              answers: pd.DataFrame | None = None) -> float:
    """The metric of a submission file; `answers` may be passed in when many submissions are scored."""
    frame = read_submission(submission_path)
    return score_frames(frame, read_answers(competition) if answers is None else answers, competition.spec)


# ---------------------------------------------------------------------------------------------
# Reports.


def competition_thresholds(competition: Competition) -> Thresholds:
    """The medal thresholds of a prepared competition, its leaderboard checked against its metric."""
    path = competition.leaderboard_path
    thresholds = medal_thresholds(read_leaderboard(path)["score"], path)
    if thresholds.is_lower_better != competition.spec.is_lower_better:
        ranked = "lower" if thresholds.is_lower_better else "higher"
        raise LeaderboardError(
            f"leaderboard {path} ranks {ranked} scores first, but the metric {competition.spec.metric!r} of "
            f"{competition.id!r} is {'lower' if competition.spec.is_lower_better else 'higher'}-is-better"
        )
    return thresholds


def grade_csv(submission_path: Path, competition: Competition) -> CompetitionReport:
    """Grade one submission file the way `mlebench grade-sample` does."""
    thresholds = competition_thresholds(competition)
    exists = submission_path.is_file() and submission_path.suffix.lower() == ".csv"
    score: float | None = None
    reason: str | None = None
    if not exists:
        reason = f"no submission: {submission_path} is not an existing .csv file"
    else:
        try:
            score = round(score_csv(submission_path, competition), SCORE_DECIMALS)
        except InvalidSubmission as exc:
            reason = exc.reason
    if reason is not None:
        log.warning("%s: invalid submission %s: %s", competition.id, submission_path, reason)
    medals = award(score, thresholds)
    return CompetitionReport(
        competition_id=competition.id,
        score=score,
        gold_threshold=thresholds.gold,
        silver_threshold=thresholds.silver,
        bronze_threshold=thresholds.bronze,
        median_threshold=thresholds.median,
        any_medal=medals.any,
        gold_medal=medals.gold,
        silver_medal=medals.silver,
        bronze_medal=medals.bronze,
        above_median=medals.above_median,
        submission_exists=exists,
        valid_submission=score is not None,
        is_lower_better=thresholds.is_lower_better,
        created_at=datetime.now().isoformat(),
        submission_path=str(submission_path),
        invalid_reason=reason,
    )


class SubmissionEntry(BaseModel):
    """One line of MLE-bench's `submission.jsonl` (other keys, such as logs_path, are ignored)."""

    model_config = ConfigDict(extra="ignore")

    competition_id: str
    submission_path: str | None


def read_submission_entries(path: Path) -> list[SubmissionEntry]:
    """The entries of a `submission.jsonl`; blank lines and lines starting with # or // are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise TaskError(f"cannot read the submissions file {path}: {exc}") from exc
    entries = []
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "//")):
            continue
        try:
            entries.append(SubmissionEntry.model_validate(json.loads(stripped)))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise TaskError(
                f"{path}:{number} is not a submission entry ({{\"competition_id\": ..., \"submission_path\": ...}}): "
                f"{exc}"
            ) from exc
    if not entries:
        raise TaskError(f"{path} lists no submissions")
    return entries


def aggregate_reports(reports: list[CompetitionReport]) -> dict[str, object]:
    """MLE-bench's grading report: totals, then every competition's report in input order."""
    return {
        "total_runs": len(reports),
        "total_runs_with_submissions": sum(r.submission_exists for r in reports),
        "total_valid_submissions": sum(r.valid_submission for r in reports),
        "total_medals": sum(r.any_medal for r in reports),
        "total_gold_medals": sum(r.gold_medal for r in reports),
        "total_silver_medals": sum(r.silver_medal for r in reports),
        "total_bronze_medals": sum(r.bronze_medal for r in reports),
        "total_above_median": sum(r.above_median for r in reports),
        "competition_reports": [r.to_dict() for r in reports],
    }


def grade_jsonl(submissions_jsonl: Path, output_dir: Path, data_dir: Path = DEFAULT_DATA_DIR) -> Path:
    """Grade every entry of `submissions_jsonl`; write and return `<output_dir>/<timestamp>_grading_report.json`."""
    entries = read_submission_entries(submissions_jsonl)
    reports = []
    for entry in entries:
        competition = load_competition(data_dir, entry.competition_id)
        # As in MLE-bench, a null path becomes the path "None", which never exists.
        path = Path(entry.submission_path) if entry.submission_path is not None else Path("None")
        reports.append(grade_csv(path, competition))
    output_dir.mkdir(parents=True, exist_ok=True)
    out = output_dir / f"{datetime.now().strftime('%Y-%m-%dT%H-%M-%S-%f')}_grading_report.json"
    out.write_text(json.dumps(aggregate_reports(reports), indent=4) + "\n", encoding="utf-8")
    return out
