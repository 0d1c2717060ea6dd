"""Grading the offline benchmark: the medal rule, every competition's grader, and MLE-bench's reports."""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gome_agent.bench.competitions import COMPETITIONS, Competition, get_spec
from gome_agent.bench.grading import (
    CompetitionReport,
    LeaderboardError,
    Thresholds,
    award,
    grade_csv,
    grade_jsonl,
    medal_thresholds,
    read_leaderboard,
    read_submission_entries,
)
from gome_agent.bench.prepare import prepare
from gome_agent.errors import TaskError

IDS = list(COMPETITIONS)
REPORT_FIELDS = [
    "competition_id", "score", "gold_threshold", "silver_threshold", "bronze_threshold", "median_threshold",
    "any_medal", "gold_medal", "silver_medal", "bronze_medal", "above_median", "submission_exists",
    "valid_submission", "is_lower_better", "created_at", "submission_path",
]
AGGREGATE_FIELDS = [
    "total_runs", "total_runs_with_submissions", "total_valid_submissions", "total_medals", "total_gold_medals",
    "total_silver_medals", "total_bronze_medals", "total_above_median", "competition_reports",
]


# ---------------------------------------------------------------------------------------------
# gome's copy of the medal rule, used without the mlebench package (test_mlebench_grading.py checks it
# against MLE-bench's Grader; with mlebench installed, the reports below come from MLE-bench's code).


def _board(n: int, *, lower: bool = False) -> pd.Series:
    """N distinct scores, best first; position p holds N - p + 1 (higher better) or p (lower better)."""
    positions = np.arange(1, n + 1)
    return pd.Series((positions if lower else n - positions + 1).astype(float))


def _at(n: int, position: int, *, lower: bool = False) -> float:
    return float(position if lower else n - position + 1)


@pytest.mark.parametrize(("n", "gold", "silver", "bronze"), [
    (1, 1, 1, 1),
    (5, 1, 1, 2),
    (50, 5, 10, 20),
    (99, 9, 19, 39),  # int() truncates 9.9, 19.8, 39.6
    (100, 10, 20, 40),
    (150, 10, 30, 60),
    (249, 10, 49, 99),
    (250, 10, 50, 100),
    (500, 11, 50, 100),
    (999, 11, 50, 100),
    (1000, 12, 50, 100),
    (1500, 13, 75, 150),
])
@pytest.mark.parametrize("lower", [False, True])
def test_thresholds_sit_at_the_positions_of_each_bracket(n: int, gold: int, silver: int, bronze: int, lower: bool):
    thresholds = medal_thresholds(_board(n, lower=lower), "board.csv")
    assert thresholds.gold == _at(n, gold, lower=lower)
    assert thresholds.silver == _at(n, silver, lower=lower)
    assert thresholds.bronze == _at(n, bronze, lower=lower)
    assert thresholds.median == (n + 1) / 2
    assert thresholds.is_lower_better == (lower and n > 1)
    assert thresholds.n_teams == n


def test_a_tie_with_a_threshold_earns_the_medal_and_the_median_must_be_beaten():
    higher = medal_thresholds(_board(50), "board.csv")  # gold 46, silver 41, bronze 31, median 25.5
    assert award(46.0, higher).gold and not award(45.9, higher).gold
    assert award(45.9, higher).silver and award(41.0, higher).silver and not award(40.9, higher).silver
    assert award(31.0, higher).bronze and not award(30.9, higher).any
    medals = award(46.0, higher)
    assert (medals.gold, medals.silver, medals.bronze, medals.any) == (True, False, False, True)
    assert award(25.6, higher).above_median and not award(25.5, higher).above_median

    lower = medal_thresholds(_board(50, lower=True), "board.csv")  # gold 5, silver 10, bronze 20, median 25.5
    assert lower.is_lower_better
    assert award(5.0, lower).gold and not award(5.1, lower).gold and award(5.1, lower).silver
    assert award(10.0, lower).silver and award(20.0, lower).bronze and not award(20.1, lower).any
    assert award(25.4, lower).above_median and not award(25.5, lower).above_median
    assert not award(100.0, lower).above_median and award(-1.0, lower).gold


def test_no_score_earns_nothing():
    thresholds = Thresholds(gold=1, silver=1, bronze=1, median=1, is_lower_better=False, n_teams=1)
    medals = award(None, thresholds)
    assert (medals.gold, medals.silver, medals.bronze, medals.above_median, medals.any) == (False,) * 5


def test_ties_between_first_and_last_rows_mean_higher_is_better():
    thresholds = medal_thresholds(pd.Series([0.7] * 20), "board.csv")
    assert not thresholds.is_lower_better
    assert award(0.7, thresholds).gold and not award(0.7, thresholds).above_median


def test_rows_without_a_score_count_in_n_but_not_in_the_median():
    scores = pd.concat([_board(99) + 1, pd.Series([float("nan")])], ignore_index=True)  # 100..2, then NaN
    thresholds = medal_thresholds(scores, "board.csv")
    assert thresholds.n_teams == 100
    assert thresholds.gold == 91.0  # 100 teams: gold is position 10, not 10% of the 99 scored rows
    assert thresholds.silver == 81.0 and thresholds.bronze == 61.0
    assert thresholds.median == 51.0
    assert not thresholds.is_lower_better


def _write_board(path: Path, scores: list[float]) -> Path:
    pd.DataFrame({
        "scoreNullable": scores, "teamId": range(1, len(scores) + 1), "hasTeamName": True,
        "submissionDate": "2025-01-01 00:00:00", "score": scores, "hasScore": True,
    }).to_csv(path, index=False)
    return path


def test_an_empty_leaderboard_is_an_error_naming_the_file(tmp_path: Path):
    header_only = _write_board(tmp_path / "leaderboard.csv", [])
    with pytest.raises(LeaderboardError, match=re.escape(f"leaderboard {header_only} has no rows")):
        medal_thresholds(read_leaderboard(header_only)["score"], header_only)
    blank = tmp_path / "blank.csv"
    blank.write_text("")
    with pytest.raises(LeaderboardError, match=re.escape(f"leaderboard {blank} is empty")):
        read_leaderboard(blank)


def test_an_unsorted_leaderboard_is_an_error_naming_the_file(tmp_path: Path):
    path = _write_board(tmp_path / "leaderboard.csv", [0.9, 0.8, 0.85, 0.7])
    with pytest.raises(LeaderboardError, match=re.escape(f"leaderboard {path} is not sorted best first") +
                       ".*descending.*0.8 is followed by 0.85"):
        medal_thresholds(read_leaderboard(path)["score"], path)
    path = _write_board(tmp_path / "lower.csv", [0.1, 0.3, 0.2, 0.5])
    with pytest.raises(LeaderboardError, match="lower.csv is not sorted best first.*ascending"):
        medal_thresholds(read_leaderboard(path)["score"], path)


def test_a_leaderboard_without_numeric_scores_is_an_error(tmp_path: Path):
    path = tmp_path / "leaderboard.csv"
    pd.DataFrame({"teamId": [1]}).to_csv(path, index=False)
    with pytest.raises(LeaderboardError, match="has no 'score' column"):
        read_leaderboard(path)
    pd.DataFrame({"score": ["0.5", "high"]}).to_csv(path, index=False)
    with pytest.raises(LeaderboardError, match="non-numeric value.*'high'"):
        read_leaderboard(path)
    with pytest.raises(LeaderboardError, match="does not exist"):
        read_leaderboard(tmp_path / "absent.csv")


# ---------------------------------------------------------------------------------------------
# Every competition's grader.

PERFECT = {"roc_auc": 1.0, "accuracy": 1.0, "macro_f1": 1.0, "qwk": 1.0, "log_loss": 0.0, "rmse": 0.0, "rmsle": 0.0}


def _constant_score(competition: Competition) -> float:
    """What the sample's constant guess must score, from the metric's definition."""
    spec = competition.spec
    answers = pd.read_csv(competition.answers_path)
    sample = pd.read_csv(competition.sample_path)
    if spec.metric == "log_loss":
        return math.log(answers.shape[1] - 1)
    truth = answers[spec.answer_column]
    guess = sample[spec.answer_column].iloc[0]
    share = float((truth == guess).mean())
    return {
        "roc_auc": lambda: 0.5,
        "qwk": lambda: 0.0,
        "accuracy": lambda: share,
        "macro_f1": lambda: (2 * share / (1 + share)) / truth.nunique(),
        "rmse": lambda: float(np.sqrt(np.mean((truth - guess) ** 2))),
        "rmsle": lambda: float(np.sqrt(np.mean((np.log1p(truth) - np.log1p(guess)) ** 2))),
    }[spec.metric]()


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All competitions, each with a 20-team leaderboard from the perfect score down to the constant guess."""
    out = tmp_path_factory.mktemp("bench")
    prepare(out, leaderboards=False)
    for cid in IDS:
        competition = Competition(get_spec(cid), out / cid)
        _write_board(competition.leaderboard_path,
                     list(np.linspace(PERFECT[competition.spec.metric], _constant_score(competition), 20)))
    return out


def _competition(bench: Path, cid: str) -> Competition:
    return Competition(get_spec(cid), bench / cid)


def _submission(competition: Competition, tmp_path: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Path:
    """The answers as a submission (cells as text), changed by `change`."""
    frame = pd.read_csv(competition.answers_path, dtype=str, keep_default_na=False)
    path = tmp_path / "submission.csv"
    change(frame).to_csv(path, index=False)
    return path


def _assert_fields(report: CompetitionReport) -> dict[str, object]:
    data = report.to_dict()
    assert list(data) == REPORT_FIELDS
    return data


@pytest.mark.parametrize("cid", IDS)
def test_the_answers_score_perfectly_and_win_gold(bench: Path, tmp_path: Path, cid: str):
    competition = _competition(bench, cid)
    path = _submission(competition, tmp_path, lambda f: f.sample(frac=1.0, random_state=0))  # row order is free
    report = grade_csv(path, competition)
    data = _assert_fields(report)
    assert report.score == PERFECT[competition.spec.metric]
    assert report.valid_submission and report.submission_exists
    assert report.gold_medal and report.any_medal and report.above_median
    assert not report.silver_medal and not report.bronze_medal
    assert report.is_lower_better == competition.spec.is_lower_better
    assert data["submission_path"] == str(path) and data["competition_id"] == cid


@pytest.mark.parametrize("cid", IDS)
def test_the_sample_scores_like_a_constant_guess(bench: Path, cid: str):
    competition = _competition(bench, cid)
    report = grade_csv(competition.sample_path, competition)
    assert report.valid_submission
    assert report.score == pytest.approx(round(_constant_score(competition), 5), abs=1e-9)
    assert not report.any_medal and not report.above_median
    assert report.bronze_threshold == pytest.approx(
        float(np.linspace(PERFECT[competition.spec.metric], _constant_score(competition), 20)[7]))


def _first_prediction_column(frame: pd.DataFrame) -> str:
    return str(frame.columns[1])


def _set(column_of: Callable[[pd.DataFrame], str], value: str, row: int = 0) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[row, column_of(frame)] = value
        return frame
    return change


def _replace_id(frame: pd.DataFrame) -> pd.DataFrame:
    frame.iloc[0, 0] = "no-such-id"
    return frame


def _duplicate_id(frame: pd.DataFrame) -> pd.DataFrame:
    frame.iloc[1, 0] = frame.iloc[0, 0]
    return frame


def _rename_prediction(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns={frame.columns[1]: "prediction"})


COMMON_BREAKAGES: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], str]] = {
    "a missing row": (lambda f: f.iloc[1:], "rows, expected"),
    "an extra row": (lambda f: pd.concat([f, f.iloc[:1]]), "rows, expected"),
    "an unknown id": (_replace_id, r"1 test id\(s\) missing.*1 id\(s\) not in the test set.*'no-such-id'"),
    "a duplicate id": (_duplicate_id, "1 duplicate id"),
    "a wrong column": (_rename_prediction, "missing column"),
    "an empty prediction": (_set(_first_prediction_column, ""), "missing (value|label)"),
    "a NaN prediction": (_set(_first_prediction_column, "NaN"), "missing (value|label)"),
}


@pytest.mark.parametrize("cid", IDS)
@pytest.mark.parametrize("breakage", list(COMMON_BREAKAGES))
def test_malformed_submissions_are_rejected_with_the_reason(bench: Path, tmp_path: Path, cid: str, breakage: str):
    competition = _competition(bench, cid)
    change, reason = COMMON_BREAKAGES[breakage]
    report = grade_csv(_submission(competition, tmp_path, change), competition)
    assert report.submission_exists and not report.valid_submission and report.score is None
    assert not (report.any_medal or report.gold_medal or report.silver_medal or report.bronze_medal
                or report.above_median)
    assert math.isfinite(report.gold_threshold) and math.isfinite(report.median_threshold)
    assert report.invalid_reason is not None and re.search(reason, report.invalid_reason), report.invalid_reason
    assert "invalid_reason" not in report.to_dict()


NUMERIC = [cid for cid, spec in COMPETITIONS.items() if spec.metric not in ("accuracy", "macro_f1")]
PROBABILITY = [cid for cid, spec in COMPETITIONS.items() if spec.metric in ("roc_auc", "log_loss")]


@pytest.mark.parametrize("cid", NUMERIC)
def test_text_in_a_numeric_column_is_rejected(bench: Path, tmp_path: Path, cid: str):
    competition = _competition(bench, cid)
    report = grade_csv(_submission(competition, tmp_path, _set(_first_prediction_column, "abc")), competition)
    assert not report.valid_submission
    assert "non-numeric value(s) (e.g. 'abc')" in report.invalid_reason


@pytest.mark.parametrize("cid", PROBABILITY)
@pytest.mark.parametrize("value", ["1.5", "-0.1"])
def test_probabilities_outside_0_1_are_rejected(bench: Path, tmp_path: Path, cid: str, value: str):
    competition = _competition(bench, cid)
    report = grade_csv(_submission(competition, tmp_path, _set(_first_prediction_column, value)), competition)
    assert not report.valid_submission and "outside [0, 1]" in report.invalid_reason


def test_multiclass_probabilities_must_sum_to_one(bench: Path, tmp_path: Path):
    competition = _competition(bench, "leaf-species")
    sample = pd.read_csv(competition.sample_path, dtype=str)
    classes = sample.columns[1:]

    def halve_first_row(frame: pd.DataFrame) -> pd.DataFrame:
        frame = sample.copy()
        frame.loc[0, classes] = str(0.5 / len(classes))
        return frame

    report = grade_csv(_submission(competition, tmp_path, halve_first_row), competition)
    assert not report.valid_submission
    assert "1 row(s) whose probabilities do not sum to 1 (within 1e-06)" in report.invalid_reason

    def nearly_uniform(frame: pd.DataFrame) -> pd.DataFrame:
        frame = sample.copy()
        frame.loc[0, classes[0]] = str(1 / len(classes) + 5e-7)  # off by less than the tolerance
        return frame

    report = grade_csv(_submission(competition, tmp_path, nearly_uniform), competition)
    assert report.valid_submission and report.score == pytest.approx(math.log(len(classes)), abs=1e-5)


def test_rmsle_refuses_negative_predictions(bench: Path, tmp_path: Path):
    competition = _competition(bench, "ames-house-prices")
    report = grade_csv(_submission(competition, tmp_path, _set(_first_prediction_column, "-5")), competition)
    assert not report.valid_submission and "negative value(s)" in report.invalid_reason


@pytest.mark.parametrize("value", ["7", "1.5"])
def test_kappa_predictions_must_be_classes(bench: Path, tmp_path: Path, value: str):
    competition = _competition(bench, "hpc-job-class")
    report = grade_csv(_submission(competition, tmp_path, _set(_first_prediction_column, value)), competition)
    assert not report.valid_submission and "not one of the classes [0, 1, 2, 3]" in report.invalid_reason


def test_labels_and_ids_written_as_floats_still_match(bench: Path, tmp_path: Path):
    competition = _competition(bench, "digit-images")

    def as_floats(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.astype(float)

    report = grade_csv(_submission(competition, tmp_path, as_floats), competition)
    assert report.valid_submission and report.score == 1.0


def test_an_unknown_label_is_wrong_but_valid(bench: Path, tmp_path: Path):
    macro_f1 = _competition(bench, "osu-leaf-outlines")
    report = grade_csv(_submission(macro_f1, tmp_path, _set(_first_prediction_column, "maple")), macro_f1)
    assert report.valid_submission and 0.9 < report.score < 1.0
    accuracy = _competition(bench, "digit-images")
    report = grade_csv(_submission(accuracy, tmp_path, _set(_first_prediction_column, "seven")), accuracy)
    assert report.score == round(1 - 1 / len(pd.read_csv(accuracy.answers_path)), 5)


def test_a_missing_or_unreadable_submission_scores_nothing(bench: Path, tmp_path: Path):
    competition = _competition(bench, "breast-cancer")
    report = grade_csv(tmp_path / "absent.csv", competition)
    data = _assert_fields(report)
    assert not report.submission_exists and not report.valid_submission and report.score is None
    assert not report.any_medal and data["gold_threshold"] == pytest.approx(np.linspace(1.0, 0.5, 20)[1])
    text = tmp_path / "submission.txt"
    shutil.copyfile(competition.answers_path, text)
    assert not grade_csv(text, competition).submission_exists  # MLE-bench grades only .csv files
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    report = grade_csv(empty, competition)
    assert report.submission_exists and not report.valid_submission and "empty" in report.invalid_reason


def test_a_leaderboard_against_the_metric_direction_is_refused(bench: Path, tmp_path: Path):
    shutil.copytree(bench / "penguin-body-mass", tmp_path / "penguin-body-mass")
    competition = Competition(get_spec("penguin-body-mass"), tmp_path / "penguin-body-mass")
    _write_board(competition.leaderboard_path, [900.0, 500.0, 300.0])
    with pytest.raises(LeaderboardError, match="ranks higher scores first, but the metric 'rmse'"):
        grade_csv(competition.sample_path, competition)


# ---------------------------------------------------------------------------------------------
# submission.jsonl and the aggregate report.


def test_grade_jsonl_writes_mlebench_aggregate_report(bench: Path, tmp_path: Path):
    perfect = tmp_path / "perfect.csv"
    shutil.copyfile(_competition(bench, "telco-churn").answers_path, perfect)
    broken = tmp_path / "broken.csv"
    pd.read_csv(_competition(bench, "ames-house-prices").answers_path).iloc[:-1].to_csv(broken, index=False)
    lines = [
        "# a comment",
        json.dumps({"competition_id": "telco-churn", "submission_path": str(perfect), "logs_path": "x"}),
        "",
        "// another comment",
        json.dumps({"competition_id": "ames-house-prices", "submission_path": str(broken)}),
        json.dumps({"competition_id": "digit-images", "submission_path": None}),
        json.dumps({"competition_id": "penguin-body-mass",
                    "submission_path": str(_competition(bench, "penguin-body-mass").sample_path)}),
    ]
    jsonl = tmp_path / "submission.jsonl"
    jsonl.write_text("\n".join(lines) + "\n")
    out = grade_jsonl(jsonl, tmp_path / "reports" / "nested", bench)
    assert out.parent == tmp_path / "reports" / "nested"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d+_grading_report\.json", out.name)
    report = json.loads(out.read_text())
    assert list(report) == AGGREGATE_FIELDS
    assert report["total_runs"] == 4
    assert report["total_runs_with_submissions"] == 3
    assert report["total_valid_submissions"] == 2
    assert report["total_medals"] == report["total_gold_medals"] == 1
    assert report["total_silver_medals"] == report["total_bronze_medals"] == 0
    assert report["total_above_median"] == 1
    reports = report["competition_reports"]
    assert [r["competition_id"] for r in reports] == ["telco-churn", "ames-house-prices", "digit-images",
                                                       "penguin-body-mass"]
    assert all(list(r) == REPORT_FIELDS for r in reports)
    assert reports[0]["score"] == 1.0 and reports[0]["gold_medal"]
    assert reports[1]["score"] is None and reports[1]["submission_exists"] and not reports[1]["valid_submission"]
    assert reports[2]["submission_path"] == "None" and not reports[2]["submission_exists"]
    assert reports[2]["score"] is None and isinstance(reports[2]["gold_threshold"], float)
    assert reports[3]["is_lower_better"] and not reports[3]["any_medal"]
    assert all(isinstance(r["created_at"], str) and "T" in r["created_at"] for r in reports)


def test_a_malformed_submissions_file_names_the_line(tmp_path: Path, bench: Path):
    jsonl = tmp_path / "submission.jsonl"
    jsonl.write_text('# header\n{"competition_id": "telco-churn", "submission_path": null}\n{"submission_path": 3}\n')
    with pytest.raises(TaskError, match=re.escape(f"{jsonl}:3 is not a submission entry")):
        read_submission_entries(jsonl)
    jsonl.write_text("# nothing\n\n")
    with pytest.raises(TaskError, match="lists no submissions"):
        grade_jsonl(jsonl, tmp_path / "out", bench)


def test_grade_jsonl_needs_the_leaderboard(tmp_path: Path, bench: Path):
    data_dir = tmp_path / "data"
    shutil.copytree(bench / "telco-churn", data_dir / "telco-churn")
    (data_dir / "telco-churn" / "leaderboard.csv").unlink()
    jsonl = tmp_path / "submission.jsonl"
    jsonl.write_text('{"competition_id": "telco-churn", "submission_path": null}\n')
    with pytest.raises(TaskError, match="incompletely prepared.*leaderboard.csv is missing"):
        grade_jsonl(jsonl, tmp_path / "out", data_dir)
    assert not (tmp_path / "out").exists()
