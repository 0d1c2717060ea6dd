"""Grading the offline benchmark with MLE-bench's own grading code.

Each offline competition has a grader here (`score_frames`: it checks a
submission against the private answers, `InvalidSubmission` saying what is
wrong, and computes the competition's metric), in the form of an MLE-bench
grade function (`grade`). With the `mlebench` package installed, MLE-bench's
`Grader` calls it, rounds the score, places it on the competition's leaderboard
with MLE-bench's medal rule and says which way the leaderboard ranks, and
MLE-bench's `CompetitionReport` makes the report (`MlebenchGrading`). gome does
not need MLE-bench to run, so without it `GomeGrading` applies gome's copy of
that rule (contract §8.6; the tests check it against MLE-bench's), and the
grading says so. `grade_jsonl` grades a whole `submission.jsonl` and writes
MLE-bench's aggregate report.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

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
    # Why the submission scored nothing, and which code decided the medals; kept out of the JSON so the
    # report stays MLE-bench's.
    invalid_reason: str | None = Field(default=None, exclude=True)
    graded_by: str = Field(default="", exclude=True)

    def to_dict(self) -> dict[str, object]:
        return self.model_dump()


# ---------------------------------------------------------------------------------------------
# Leaderboards, and gome's copy of MLE-bench's medal rule (used only without the mlebench package).


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


def check_leaderboard(scores: pd.Series, source: Path | str) -> bool:
    """Whether lower scores rank first, after checking that there are rows and that they are in rank order.

    The direction is MLE-bench's: "lower is better" exactly when the first score is below the last.
    """
    if len(scores) == 0:
        raise LeaderboardError(f"leaderboard {source} has no rows: the medal rule needs at least one team")
    values = scores.astype(float).reset_index(drop=True)
    lower = bool(values.iloc[0] < values.iloc[-1])
    # Thresholds read by position are only meaningful when the rows are in rank order.
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
    return lower


def medal_thresholds(scores: pd.Series, source: Path | str) -> Thresholds:
    """gome's copy of MLE-bench's medal rule (contract §8.6) on a leaderboard's scores in rank order.

    Only for grading without the mlebench package (`GomeGrading`). N counts every row, positions are
    1-indexed and truncated with int().
    """
    lower = check_leaderboard(scores, source)
    n = len(scores)
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
    return Thresholds(gold=gold, silver=silver, bronze=bronze, median=float(values.median()),
                      is_lower_better=lower, n_teams=n)


def award(score: float | None, thresholds: Thresholds) -> Medals:
    """gome's copy of MLE-bench's medals for a score: a tie with a threshold earns it, beating the median must be
    strict."""
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
# Reports: MLE-bench's grading code, or gome's copy of its rule.


# MLE-bench's Grader imports a competition's grade function by this name.
GRADE_FN = f"{__name__}:grade"
MLEBENCH_INSTALL = "pip install -e '.[mlebench]' && bash scripts/install_mlebench.sh PATH/TO/mle-bench"


@dataclass
class GradeAnswers:
    """What `grade` gets as MLE-bench's `answers` argument: the answers (cells as text) and the competition's
    spec. `problem` receives why a submission cannot be scored, which MLE-bench's Grader only logs."""

    frame: pd.DataFrame
    spec: CompetitionSpec
    problem: str | None = None


def grade(submission: pd.DataFrame, answers: GradeAnswers) -> float:
    """An offline competition's grade function in MLE-bench's form, for MLE-bench's `Grader` (GRADE_FN)."""
    try:
        return score_frames(submission, answers.frame, answers.spec)
    except InvalidSubmission as exc:
        answers.problem = exc.reason
        # Only MLE-bench's Grader calls this function, so its package is there.
        from mlebench.grade_helpers import InvalidSubmissionError

        raise InvalidSubmissionError(exc.reason) from exc


class GradingCode(Protocol):
    """Who rounds the score, decides the medals and makes the report."""

    @property
    def label(self) -> str:
        """Which code this is, and for gome's copy, why MLE-bench's is not used and how to get it."""
        ...

    def score(self, submission: pd.DataFrame, answers: pd.DataFrame, spec: CompetitionSpec) -> tuple[float | None,
                                                                                                     str | None]:
        """The rounded score, or None and why the submission cannot be scored."""
        ...

    def report(self, competition: Competition, score: float | None, leaderboard: pd.DataFrame,
               submission_exists: bool, submission_path: Path) -> dict[str, Any]:
        """MLE-bench's report fields for a score on the competition's leaderboard."""
        ...


@dataclass(frozen=True)
class MlebenchGrading:
    """MLE-bench's own code: its `Grader` scores (with `grade`), ranks and tells the direction; its
    `CompetitionReport` makes the report."""

    label: str

    def _grader(self, spec: CompetitionSpec) -> Any:
        from mlebench.grade_helpers import Grader

        return Grader(name=spec.metric, grade_fn=GRADE_FN)

    def score(self, submission: pd.DataFrame, answers: pd.DataFrame, spec: CompetitionSpec) -> tuple[float | None,
                                                                                                     str | None]:
        given = GradeAnswers(answers, spec)
        score = self._grader(spec)(submission, given)
        if score is None and given.problem is None:
            # The Grader turns any error of a grade function into "no score" and logs it.
            return None, "the grader failed on it (MLE-bench's log above names the error)"
        return score, given.problem

    def report(self, competition: Competition, score: float | None, leaderboard: pd.DataFrame,
               submission_exists: bool, submission_path: Path) -> dict[str, Any]:
        from mlebench.grade_helpers import CompetitionReport as MlebenchReport

        grader = self._grader(competition.spec)
        rank = grader.rank_score(score, leaderboard)
        report = MlebenchReport(
            competition_id=competition.id,
            score=score,
            gold_threshold=rank["gold_threshold"],
            silver_threshold=rank["silver_threshold"],
            bronze_threshold=rank["bronze_threshold"],
            median_threshold=rank["median_threshold"],
            any_medal=rank["gold_medal"] or rank["silver_medal"] or rank["bronze_medal"],
            gold_medal=rank["gold_medal"],
            silver_medal=rank["silver_medal"],
            bronze_medal=rank["bronze_medal"],
            above_median=rank["above_median"],
            submission_exists=submission_exists,
            valid_submission=score is not None,
            is_lower_better=grader.is_lower_better(leaderboard),
            created_at=datetime.now(),
            submission_path=str(submission_path),
        )
        result: dict[str, Any] = report.to_dict()
        return result


@dataclass(frozen=True)
class GomeGrading:
    """gome's copy of MLE-bench's rounding, medal rule and report, for a machine without the mlebench package."""

    label: str

    def score(self, submission: pd.DataFrame, answers: pd.DataFrame, spec: CompetitionSpec) -> tuple[float | None,
                                                                                                     str | None]:
        try:
            return round(score_frames(submission, answers, spec), SCORE_DECIMALS), None
        except InvalidSubmission as exc:
            return None, exc.reason

    def report(self, competition: Competition, score: float | None, leaderboard: pd.DataFrame,
               submission_exists: bool, submission_path: Path) -> dict[str, Any]:
        thresholds = medal_thresholds(leaderboard["score"], competition.leaderboard_path)
        medals = award(score, thresholds)
        return {
            "competition_id": competition.id, "score": score,
            "gold_threshold": thresholds.gold, "silver_threshold": thresholds.silver,
            "bronze_threshold": thresholds.bronze, "median_threshold": thresholds.median,
            "any_medal": medals.any, "gold_medal": medals.gold, "silver_medal": medals.silver,
            "bronze_medal": medals.bronze, "above_median": medals.above_median,
            "submission_exists": submission_exists, "valid_submission": score is not None,
            "is_lower_better": thresholds.is_lower_better, "created_at": datetime.now().isoformat(),
            "submission_path": str(submission_path),
        }


def grading_code() -> GradingCode:
    """MLE-bench's own grading code when the mlebench package imports, else gome's copy of its rule."""
    try:
        import mlebench.grade_helpers
    except ImportError as exc:
        return GomeGrading(
            label=f"gome's copy of MLE-bench's medal rule, since the mlebench package cannot be imported ({exc}); "
                  f"to grade with MLE-bench's own code: {MLEBENCH_INSTALL}"
        )
    return MlebenchGrading(label=f"MLE-bench's own grading code (mlebench in "
                                 f"{Path(mlebench.grade_helpers.__file__).parent})")


def competition_leaderboard(competition: Competition) -> pd.DataFrame:
    """The leaderboard of a prepared competition, checked for rank order and against its metric's direction."""
    path = competition.leaderboard_path
    leaderboard = read_leaderboard(path)
    lower = check_leaderboard(leaderboard["score"], path)
    if lower != competition.spec.is_lower_better:
        ranked = "lower" if lower else "higher"
        raise LeaderboardError(
            f"leaderboard {path} ranks {ranked} scores first, but the metric {competition.spec.metric!r} of "
            f"{competition.id!r} is {'lower' if competition.spec.is_lower_better else 'higher'}-is-better"
        )
    return leaderboard


def grade_csv(submission_path: Path, competition: Competition) -> CompetitionReport:
    """Grade one submission file the way `mlebench grade-sample` does."""
    code = grading_code()
    leaderboard = competition_leaderboard(competition)
    exists = submission_path.is_file() and submission_path.suffix.lower() == ".csv"
    score: float | None = None
    reason: str | None = None
    if not exists:
        reason = f"no submission: {submission_path} is not an existing .csv file"
    else:
        try:
            submission = read_submission(submission_path)
        except InvalidSubmission as exc:
            reason = exc.reason
        else:
            score, reason = code.score(submission, read_answers(competition), competition.spec)
    if reason is not None:
        log.warning("%s: invalid submission %s: %s", competition.id, submission_path, reason)
    fields = code.report(competition, score, leaderboard, exists, submission_path)
    return CompetitionReport.model_validate({**fields, "invalid_reason": reason, "graded_by": code.label})


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
    """MLE-bench's grading report: totals, then every competition's report in input order.

    The same sums as MLE-bench's `aggregate_reports` (the tests compare them), made here because its module
    `mlebench.grade` makes a cache folder in the working directory when imported.
    """
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
    code = grading_code()
    log.log(logging.INFO if isinstance(code, MlebenchGrading) else logging.WARNING, "medals decided by %s",
            code.label)
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
