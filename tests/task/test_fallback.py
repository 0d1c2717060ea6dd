import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gome_agent.task.analysis import Task
from gome_agent.task.fallback import PROBABILITY_EPS, build_constant_submission
from gome_agent.task.sample import SampleSubmission, load_sample_submission


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def make_task(data_dir: Path, sample: SampleSubmission, metric: str, targets: list[str]) -> Task:
    return Task(
        competition_id=data_dir.name, data_dir=data_dir, goal="g", task_type="t", metric_name=metric,
        higher_is_better=False, direction_source="description", id_column=sample.id_column,
        target_columns=targets, submission_format="f", sample_path=sample.path,
        description="d", files_text="",
    )


def build(
    data_dir: Path, metric: str, id_column: str | None = None, targets: list[str] | None = None
) -> tuple[pd.DataFrame, str]:
    sample_path = next(data_dir.glob("sample*"))
    sample = load_sample_submission(sample_path, id_column=id_column)
    targets = sample.target_columns if targets is None else targets
    out = data_dir.parent / "out" / "submission.csv"
    message = build_constant_submission(make_task(data_dir, sample, metric, targets), sample, out)
    assert_matches_sample(out, sample, targets)
    return pd.read_csv(out, dtype={sample.id_column: str}), message


def assert_matches_sample(out: Path, sample: SampleSubmission, targets: list[str]) -> None:
    written = load_sample_submission(out, id_column=sample.id_column)
    assert written.columns == sample.columns
    assert written.ids == sample.ids
    assert written.n_rows == sample.n_rows
    ours = pd.read_csv(out, dtype=str)
    theirs = pd.read_csv(sample.path, dtype=str)
    assert ours[sample.id_column].tolist() == theirs[sample.id_column].tolist()  # same order
    assert ours[targets].notna().all().all()


def test_regression_target_gets_the_training_mean(tmp_path):
    data = tmp_path / "data"
    write_csv(data / "train.csv", ["id", "x", "y"], [[i, i, v] for i, v in enumerate([1, 2, 3, 10])])
    write_csv(data / "test.csv", ["id", "x"], [[i, i] for i in range(5)])
    write_csv(data / "sample_submission.csv", ["id", "y"], [[i, 0] for i in range(5)])
    frame, message = build(data, "RMSE")
    assert frame["y"].tolist() == [4.0] * 5
    assert "train.csv" in message and "y=4 (mean)" in message


def test_mae_target_gets_the_training_median(tmp_path):
    data = tmp_path / "data"
    write_csv(data / "train.csv", ["id", "y"], [[i, v] for i, v in enumerate([1, 2, 3, 10])])
    write_csv(data / "sample_submission.csv", ["id", "y"], [[i, 0] for i in range(3)])
    frame, message = build(data, "Mean Absolute Error")
    assert frame["y"].tolist() == [2.5] * 3
    assert "median" in message


def test_squared_log_error_target_gets_the_mean_in_log_space(tmp_path):
    data = tmp_path / "data"
    write_csv(data / "train.csv", ["id", "a", "b"], [[0, 0.0, 1.0], [1, 3.0, 1.0]])
    write_csv(data / "sample_submission.csv", ["id", "a", "b"], [[i, 0.1, 0.1] for i in range(3)])
    frame, _ = build(data, "mean column-wise root mean squared logarithmic error")
    assert frame["a"].tolist() == pytest.approx([1.0] * 3)
    assert frame["b"].tolist() == pytest.approx([1.0] * 3)


def test_binary_target_gets_the_positive_rate_as_probability(tmp_path):
    data = tmp_path / "data"
    write_csv(data / "train.csv", ["id", "has_cactus"], [[f"{i}.jpg", int(i % 4 != 0)] for i in range(100)])
    write_csv(data / "sample_submission.csv", ["id", "has_cactus"], [[f"t{i}.jpg", 0.5] for i in range(7)])
    frame, message = build(data, "area under the ROC curve")
    assert frame["has_cactus"].tolist() == [0.75] * 7
    assert "positive rate" in message


def test_a_probability_is_clipped_away_from_zero_and_one(tmp_path):
    data = tmp_path / "data"
    write_csv(data / "train.csv", ["id", "label"], [[i, 0] for i in range(50)])
    write_csv(data / "sample_submission.csv", ["id", "label"], [[i, 0.5] for i in range(4)])
    frame, _ = build(data, "log loss")
    assert frame["label"].tolist() == [PROBABILITY_EPS] * 4


def test_class_name_columns_get_class_frequencies_summing_to_one(tmp_path):
    data = tmp_path / "data"
    authors = ["EAP"] * 5 + ["HPL"] * 3 + ["MWS"] * 2
    write_csv(data / "train.csv", ["id", "text", "author"], [[f"id{i}", "some text", a] for i, a in enumerate(authors)])
    write_csv(data / "test.csv", ["id", "text"], [[f"t{i}", "text"] for i in range(6)])
    write_csv(data / "sample_submission.csv", ["id", "EAP", "HPL", "MWS"], [[f"t{i}", 0.4, 0.3, 0.3] for i in range(6)])
    frame, message = build(data, "multi-class logarithmic loss")
    assert frame.loc[0, ["EAP", "HPL", "MWS"]].tolist() == pytest.approx([0.5, 0.3, 0.2])
    assert np.allclose(frame[["EAP", "HPL", "MWS"]].sum(axis=1), 1.0, atol=1e-12)
    assert "class frequencies of 'author'" in message


def test_a_class_never_seen_in_training_keeps_a_small_probability(tmp_path):
    data = tmp_path / "data"
    write_csv(data / "labels.csv", ["id", "breed"], [[i, "beagle"] for i in range(9)] + [[9, "pug"]])
    breeds = ["beagle", "pug", "akita"]
    write_csv(data / "sample_submission.csv", ["id", *breeds], [[f"t{i}", *[1 / 3] * 3] for i in range(4)])
    frame, _ = build(data, "Multi Class Log Loss")
    assert (frame[breeds] > 0).all().all()
    assert frame.loc[0, "akita"] == pytest.approx(PROBABILITY_EPS, rel=0.01)
    assert np.allclose(frame[breeds].sum(axis=1), 1.0, atol=1e-12)


def test_one_hot_classes_scored_by_log_loss_sum_to_one(tmp_path):
    data = tmp_path / "data"
    classes = ["healthy", "multiple_diseases", "rust", "scab"]
    one_hot = [[f"Train_{i}", *[int(j == i % 4) for j in range(4)]] for i in range(8)] + [["Train_9", 1, 0, 0, 0]]
    write_csv(data / "train.csv", ["image_id", *classes], one_hot)
    write_csv(data / "sample_submission.csv", ["image_id", *classes], [[f"Test_{i}", 0.25, 0.25, 0.25, 0.25]
                                                                      for i in range(3)])
    frame, _ = build(data, "multiclass log loss")
    assert frame.loc[0, "healthy"] == pytest.approx(3 / 9)
    assert np.allclose(frame[classes].sum(axis=1), 1.0, atol=1e-12)


def test_string_labels_get_the_most_frequent_value(tmp_path):
    data = tmp_path / "data"
    write_csv(data / "train.csv", ["PassengerId", "Transported"], [[i, v] for i, v in
                                                                   enumerate(["True", "False", "True", "True"])])
    write_csv(data / "sample_submission.csv", ["PassengerId", "Transported"], [[f"p{i}", "False"] for i in range(5)])
    frame, message = build(data, "classification accuracy")
    assert frame["Transported"].astype(str).tolist() == ["True"] * 5
    assert "most frequent" in message


def test_integer_classes_under_a_label_metric_get_the_most_frequent_class(tmp_path):
    data = tmp_path / "data"
    write_csv(data / "train.csv", ["Id", "Cover_Type"], [[i, v] for i, v in enumerate([1, 2, 2, 2, 7, 3])])
    write_csv(data / "sample_submission.csv", ["Id", "Cover_Type"], [[100 + i, 2] for i in range(4)])
    frame, _ = build(data, "multi-class classification accuracy")
    assert frame["Cover_Type"].tolist() == [2] * 4
    assert frame["Cover_Type"].dtype.kind == "i"  # a class, not a mean such as 2.83


def test_row_specific_string_predictions_of_the_sample_are_kept(tmp_path):
    data = tmp_path / "data"
    write_csv(data / "en_train.csv", ["sentence_id", "token_id", "before", "after"],
              [[0, 0, "Hello", "Hello"], [0, 1, "2", "two"], [0, 2, ".", "."], [1, 0, ".", "."]])
    write_csv(data / "sample_submission.csv", ["id", "after"], [["0_0", "Hi"], ["0_1", "3"], ["0_2", "."]])
    frame, message = build(data, "accuracy")
    assert frame["after"].astype(str).tolist() == ["Hi", "3", "."]
    assert "own values for after (row-specific)" in message


def test_without_training_labels_the_sample_values_are_kept(tmp_path):
    data = tmp_path / "data"
    write_csv(data / "test.csv", ["id", "pixels"], [[i, "0 0 0"] for i in range(3)])
    write_csv(data / "sampleSubmission.csv", ["id", "value"], [["1_1_1", 1], ["1_1_2", 1], ["1_2_1", 0.5]])
    frame, message = build(data, "RMSE")
    assert frame["value"].tolist() == [1, 1, 0.5]
    assert "no training labels" in message and "keeps the sample submission's own values" in message


def test_a_training_table_one_level_down_is_found(tmp_path):
    data = tmp_path / "data"
    write_csv(data / "tables" / "train_labels.csv", ["id", "label"], [[i, i % 2] for i in range(10)])
    write_csv(data / "sample_submission.csv", ["id", "label"], [[f"t{i}", 0] for i in range(2)])
    frame, message = build(data, "ROC AUC")
    assert frame["label"].tolist() == [0.5, 0.5]
    assert "train_labels.csv" in message


def test_tables_named_train_are_preferred(tmp_path):
    data = tmp_path / "data"
    write_csv(data / "another.csv", ["id", "y"], [[i, 100] for i in range(4)])
    write_csv(data / "train.csv", ["id", "y"], [[i, 1] for i in range(4)])
    write_csv(data / "sample_submission.csv", ["id", "y"], [[i, 0] for i in range(2)])
    frame, _ = build(data, "MSE")
    assert frame["y"].tolist() == [1.0, 1.0]


def test_tables_outside_the_data_folder_are_never_read(tmp_path):
    data = tmp_path / "data"
    write_csv(tmp_path / "private" / "answers.csv", ["id", "y"], [[i, 42] for i in range(4)])
    data.mkdir()
    (data / "train.csv").symlink_to(tmp_path / "private" / "answers.csv")
    write_csv(data / "sample_submission.csv", ["id", "y"], [[i, 7] for i in range(2)])
    frame, message = build(data, "RMSE")
    assert frame["y"].tolist() == [7, 7]
    assert "no training labels" in message


def test_extra_sample_columns_and_their_values_are_kept(tmp_path):
    data = tmp_path / "data"
    write_csv(data / "train.csv", ["Insult", "Date", "Comment"], [[1, "", "a"], [0, "20120618Z", "b"], [0, "", "c"],
                                                                  [0, "", "d"]])
    rows = [[0, "20120619Z", "x"], [0, "", "y"], [0, "20120620Z", "z"]]
    write_csv(data / "sample_submission_null.csv", ["Insult", "Date", "Comment"], rows)
    frame, _ = build(data, "AUC", id_column="Comment", targets=["Insult"])
    assert frame["Insult"].tolist() == [0.25] * 3
    written = pd.read_csv(data.parent / "out" / "submission.csv", dtype=str, keep_default_na=False)
    assert written["Date"].tolist() == ["20120619Z", "", "20120620Z"]
