import numpy as np
import pandas as pd

from gome_agent.task.analysis import Task
from gome_agent.task.profile import profile_tables
from gome_agent.task.scan import scan_competition


def make_competition(tmp_path, *, targets=("Survived",)):
    rng = np.random.default_rng(0)
    n = 400
    train = pd.DataFrame({
        "PassengerId": [f"w{i:04d}" for i in range(n)],
        "Age": np.where(rng.random(n) < 0.2, np.nan, rng.uniform(0.4, 80, n).round(1)),
        "Sex": rng.choice(["male", "female"], n, p=[0.65, 0.35]),
        "Name": [f"Passenger number {i}, Mr. Example" for i in range(n)],
        "Fare": rng.exponential(30, n).round(2),
        "Survived": rng.choice([0, 1], n, p=[0.6, 0.4]),
    })
    test = train.drop(columns=["Survived"]).iloc[:100].copy()
    test.loc[:9, "Fare"] = np.nan
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    pd.DataFrame({"PassengerId": test["PassengerId"], **{t: 0 for t in targets}}).to_csv(
        tmp_path / "sample_submission.csv", index=False)
    (tmp_path / "description.md").write_text("# Titanic\n\n## Evaluation\nAccuracy. Higher is better.\n")
    scan = scan_competition(tmp_path)
    task = Task(competition_id="titanic", data_dir=tmp_path, goal="g", task_type="binary classification",
                metric_name="accuracy", higher_is_better=True, direction_source="description",
                id_column="PassengerId", target_columns=list(targets), submission_format="f",
                sample_path=tmp_path / "sample_submission.csv", description=scan.description, files_text="")
    return scan, task


def test_the_profile_shows_types_missing_values_ranges_and_the_target(tmp_path):
    scan, task = make_competition(tmp_path)
    text = profile_tables(scan, task)
    lines = text.splitlines()
    assert lines[0] == "train.csv (400 rows, 6 columns):"
    assert lines[1].startswith("- target `Survived`: 2 classes: '0' ") and "%)" in lines[1]
    assert "- id `PassengerId`: text, all values unique" in text  # an id like w0119 is no number
    assert "- `Sex`: category, 2 unique: 'male' " in text
    assert "- `Name`: text, 400 unique, e.g. 'Passenger number 0, Mr. Example'" in text
    assert "- numeric (min..max): Age 0." in text and "% missing), Fare 0" in text
    assert text.endswith("test.csv (100 rows): the columns of train.csv without Survived; missing values in "
                         "Age (19.0% missing), Fare (10.0% missing)")


def test_probability_columns_take_the_distribution_of_the_label_column_only_train_has(tmp_path):
    scan, task = make_competition(tmp_path, targets=("p0", "p1"))
    text = profile_tables(scan, task)
    assert "- target `Survived`: 2 classes:" in text


def test_no_readable_table_gives_no_profile(tmp_path):
    scan, task = make_competition(tmp_path)
    (tmp_path / "train.csv").write_text("")
    (tmp_path / "test.csv").write_text("")
    scan = scan_competition(tmp_path)
    assert profile_tables(scan, task) == ""
