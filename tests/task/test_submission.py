"""Submission and score-file checks: each contract violation is found and worded exactly."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gome_agent.task.sample import SampleSubmission, load_sample_submission
from gome_agent.task.submission import OutputCheck, check_outputs, check_submission, read_score

SAMPLE = "id,target,label\n" + "".join(f"{i},0.5,cat\n" for i in range(1, 11))


@pytest.fixture
def sample(tmp_path: Path) -> SampleSubmission:
    path = tmp_path / "sample_submission.csv"
    path.write_text(SAMPLE)
    return load_sample_submission(path)


def good_rows() -> list[dict[str, object]]:
    return [{"id": str(i), "target": i / 10, "label": "dog" if i % 2 else "cat"} for i in range(1, 11)]


def write(tmp_path: Path, rows: list[dict[str, object]] | str, name: str = "submission.csv") -> Path:
    path = tmp_path / name
    if isinstance(rows, str):
        path.write_text(rows)
    else:
        pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_valid_submission_has_no_problem(tmp_path: Path, sample: SampleSubmission) -> None:
    assert check_submission(write(tmp_path, good_rows()), sample) == []


def test_column_order_does_not_matter(tmp_path: Path, sample: SampleSubmission) -> None:
    frame = pd.DataFrame(good_rows())[["label", "target", "id"]]
    path = tmp_path / "submission.csv"
    frame.to_csv(path, index=False)
    assert check_submission(path, sample) == []


def test_missing_file(tmp_path: Path, sample: SampleSubmission) -> None:
    path = tmp_path / "submission.csv"
    assert check_submission(path, sample) == [f"no submission: {path} does not exist"]


def test_empty_file(tmp_path: Path, sample: SampleSubmission) -> None:
    assert check_submission(write(tmp_path, ""), sample) == ["submission.csv is empty (no header, no rows)"]


def test_unreadable_csv_names_the_parser_reason(tmp_path: Path, sample: SampleSubmission) -> None:
    problems = check_submission(write(tmp_path, 'id,target,label\n1,0.5,"cat\n2,0.5,dog\n'), sample)
    assert len(problems) == 1
    assert problems[0].startswith("submission.csv cannot be read as CSV: ")
    assert "EOF" in problems[0]


def test_header_without_rows_is_a_row_count_problem(tmp_path: Path, sample: SampleSubmission) -> None:
    problems = check_submission(write(tmp_path, "id,target,label\n"), sample)
    assert "wrong row count: got 0, expected 10 (one row per id of the sample submission)" in problems


def test_sample_copy_is_rejected(tmp_path: Path, sample: SampleSubmission) -> None:
    path = write(tmp_path, SAMPLE)
    assert check_submission(path, sample) == ["submission.csv is the sample submission itself, not predictions"]


def test_compressed_sample_copy_is_rejected(tmp_path: Path) -> None:
    zipped = tmp_path / "sample_submission.csv.gz"
    zipped.write_bytes(gzip.compress(SAMPLE.encode()))
    sample = load_sample_submission(zipped)
    path = write(tmp_path, SAMPLE)
    assert check_submission(path, sample) == ["submission.csv is the sample submission itself, not predictions"]


def test_missing_and_extra_columns(tmp_path: Path, sample: SampleSubmission) -> None:
    rows = [{"id": r["id"], "target": r["target"], "score": 1} for r in good_rows()]
    problems = check_submission(write(tmp_path, rows), sample)
    assert problems == [
        "missing column(s): 'label' (expected columns: 'id', 'target', 'label')",
        "unexpected extra column(s): 'score' (expected only: 'id', 'target', 'label')",
    ]


def test_written_index_gets_a_hint(tmp_path: Path, sample: SampleSubmission) -> None:
    path = tmp_path / "submission.csv"
    pd.DataFrame(good_rows()).to_csv(path)
    (problem,) = check_submission(path, sample)
    assert problem.startswith("unexpected extra column(s): 'Unnamed: 0'")
    assert "index=False" in problem


def test_wrong_row_count_and_missing_ids(tmp_path: Path, sample: SampleSubmission) -> None:
    problems = check_submission(write(tmp_path, good_rows()[:7]), sample)
    assert problems == [
        "wrong row count: got 7, expected 10 (one row per id of the sample submission)",
        "3 id(s) of the sample submission are missing from column 'id' (e.g. '10', '8', '9')",
    ]


def test_duplicate_ids(tmp_path: Path, sample: SampleSubmission) -> None:
    rows = good_rows()
    rows[9] = dict(rows[0])
    problems = check_submission(write(tmp_path, rows), sample)
    assert problems == [
        "1 duplicate id(s) in column 'id': every id must appear once (e.g. '1')",
        "1 id(s) of the sample submission are missing from column 'id' (e.g. '10')",
    ]


def test_ids_not_in_sample(tmp_path: Path, sample: SampleSubmission) -> None:
    rows = good_rows()
    rows[0]["id"], rows[1]["id"] = "x1", "x2"
    problems = check_submission(write(tmp_path, rows), sample)
    assert problems == [
        "2 id(s) in column 'id' are not in the sample submission (e.g. 'x1', 'x2')",
        "2 id(s) of the sample submission are missing from column 'id' (e.g. '1', '2')",
    ]


def test_float_ids_get_a_hint(tmp_path: Path, sample: SampleSubmission) -> None:
    rows = good_rows()
    for row in rows:
        row["id"] = f"{row['id']}.0"
    problems = check_submission(write(tmp_path, rows), sample)
    assert problems[0].startswith(
        "10 id(s) in column 'id' are not in the sample submission (e.g. '1.0', '10.0', '2.0')"
    )
    assert "written as floats" in problems[0]


def test_ids_compare_as_text(tmp_path: Path) -> None:
    path = tmp_path / "sample_submission.csv"
    path.write_text("id,target\n001,0\n002,0\n")
    sample = load_sample_submission(path)
    assert check_submission(write(tmp_path, "id,target\n001,1\n002,0\n"), sample) == []
    problems = check_submission(write(tmp_path, "id,target\n1,1\n2,0\n"), sample)
    assert problems[0] == "2 id(s) in column 'id' are not in the sample submission (e.g. '1', '2')"


def test_nan_and_empty_predictions(tmp_path: Path, sample: SampleSubmission) -> None:
    rows = good_rows()
    rows[2]["target"] = float("nan")
    rows[4]["target"] = "NaN"
    rows[6]["label"] = None
    problems = check_submission(write(tmp_path, rows), sample)
    assert problems == [
        "column 'target' has 2 NaN or empty value(s) (at id '3', '5'); every row needs a prediction",
        "column 'label' has 1 NaN or empty value(s) (at id '7'); every row needs a prediction",
    ]


def test_text_nan_spelled_out(tmp_path: Path, sample: SampleSubmission) -> None:
    rows = good_rows()
    rows[0]["label"] = "nan"
    problems = check_submission(write(tmp_path, rows), sample)
    assert problems == ["column 'label' has 1 NaN or empty value(s) (at id '1'); every row needs a prediction"]


def test_empty_values_allowed_when_the_sample_has_them(tmp_path: Path) -> None:
    path = tmp_path / "sample_submission.csv"
    path.write_text("image_id,PredictionString\na,\nb,\n")
    sample = load_sample_submission(path)
    assert check_submission(write(tmp_path, "image_id,PredictionString\na,1 0.9 0 0 5 5\nb,\n"), sample) == []


def test_non_numeric_values_in_numeric_column(tmp_path: Path, sample: SampleSubmission) -> None:
    rows = good_rows()
    rows[0]["target"], rows[1]["target"] = "high", "[0.2]"
    problems = check_submission(write(tmp_path, rows), sample)
    assert problems == [
        "column 'target' has 2 non-numeric value(s) (e.g. 'high', '[0.2]'); the sample submission has numbers there"
    ]


def test_infinite_values(tmp_path: Path, sample: SampleSubmission) -> None:
    rows = good_rows()
    rows[3]["target"] = float("inf")
    assert check_submission(write(tmp_path, rows), sample) == ["column 'target' has 1 infinite value(s) (at id '4')"]


def test_large_submission_checks_quickly(tmp_path: Path) -> None:
    n = 1_000_000
    ids = np.arange(n).astype(str)
    path = tmp_path / "sample_submission.csv"
    pd.DataFrame({"id": ids, "target": 0.5}).to_csv(path, index=False)
    sample = load_sample_submission(path)
    frame = pd.DataFrame({"id": ids, "target": np.linspace(0, 1, n)})
    frame.loc[123, "target"] = np.nan
    submission = tmp_path / "submission.csv"
    frame.to_csv(submission, index=False)
    started = time.perf_counter()
    problems = check_submission(submission, sample)
    elapsed = time.perf_counter() - started
    assert problems == ["column 'target' has 1 NaN or empty value(s) (at id '123'); every row needs a prediction"]
    print(f"1M-row check: {elapsed:.2f} s")


# Score file -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"score": 0.87}', (0.87, None)),
        ('{"score": 3}', (3.0, None)),
        ('{"validation_score": -1.5}', (-1.5, None)),
        ('{"score": 0.1, "validation_score": 0.9}', (0.1, None)),
        ("{score: 1}", (None, "scores.json is not valid JSON: "
                              "Expecting property name enclosed in double quotes at line 1 column 2")),
        ("[0.5]", (None, 'scores.json must hold a JSON object such as {"score": 0.87}, not a list')),
        ('{"auc": 0.5}', (None, "scores.json has no \"score\" key (its keys: 'auc')")),
        ('{"score": "0.5"}', (None, "\"score\" in scores.json must be a number, not str '0.5'")),
        ('{"score": true}', (None, '"score" in scores.json must be a number, not bool True')),
        ('{"score": null}', (None, '"score" in scores.json must be a number, not NoneType None')),
        ('{"score": NaN}', (None, '"score" in scores.json is NaN')),
        ('{"score": -Infinity}', (None, '"score" in scores.json is infinite')),
    ],
)
def test_read_score(tmp_path: Path, content: str, expected: tuple[float | None, str | None]) -> None:
    path = tmp_path / "scores.json"
    path.write_text(content)
    assert read_score(path) == expected


def test_read_score_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "scores.json"
    expected = f'no score file: {path} does not exist (write {{"score": <validation score>}} to it)'
    assert read_score(path) == (None, expected)


# Both together ----------------------------------------------------------------------


def test_check_outputs_ok(tmp_path: Path, sample: SampleSubmission) -> None:
    write(tmp_path, good_rows())
    (tmp_path / "scores.json").write_text(json.dumps({"score": 0.75}))
    check = check_outputs(tmp_path, sample)
    assert check == OutputCheck(submission_exists=True, valid_submission=True, score=0.75, problems=[])
    assert check.ok


def test_check_outputs_valid_submission_without_score(tmp_path: Path, sample: SampleSubmission) -> None:
    write(tmp_path, good_rows())
    check = check_outputs(tmp_path, sample)
    assert check.submission_exists and check.valid_submission
    assert check.score is None and not check.ok
    assert len(check.problems) == 1 and check.problems[0].startswith("no score file:")


def test_check_outputs_scored_but_invalid(tmp_path: Path, sample: SampleSubmission) -> None:
    write(tmp_path, good_rows()[:5], name="preds.csv")
    (tmp_path / "val.json").write_text('{"score": 0.5}')
    check = check_outputs(tmp_path, sample, submission_name="preds.csv", score_name="val.json")
    assert check.submission_exists and not check.valid_submission and not check.ok
    assert check.score == 0.5
    assert check.problems[0] == "wrong row count: got 5, expected 10 (one row per id of the sample submission)"


def test_check_outputs_nothing_written(tmp_path: Path, sample: SampleSubmission) -> None:
    check = check_outputs(tmp_path, sample)
    assert not check.submission_exists and not check.valid_submission and check.score is None
    assert len(check.problems) == 2


def test_the_score_table_a_solution_reports_is_read_and_bounded(tmp_path):
    from gome_agent.task.submission import read_score_table

    path = tmp_path / "scores.json"
    path.write_text(json.dumps({
        "score": 0.87, "folds": [0.86, 0.88, 0.87], "models": {"lgbm": 0.86, "ensemble": 0.87},
        "times": {"load": 3.5, "train": 140}, "notes": "ignored", "nested": {"a": {"b": 1}, "c": [1, 2]},
    }))
    assert read_score_table(path) == (
        "folds: 0.86 0.88 0.87 (mean 0.87, std 0.01)\n"
        "models: lgbm 0.86, ensemble 0.87\n"
        "times: load 3.5s, train 140s\n"
        "nested.c: 1 2 (mean 1.5, std 0.707)"
    )
    path.write_text(json.dumps({"score": 0.5}))
    assert read_score_table(path) is None
    path.write_text("not json")
    assert read_score_table(path) is None
    path.write_text(json.dumps({"score": 1, "folds": list(range(5000))}))
    table = read_score_table(path)
    assert table is not None and "(5000 in all)" in table and len(table) <= 1204
