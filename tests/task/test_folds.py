import pandas as pd
import pytest

from gome_agent.task import folds as folds_module
from gome_agent.task.folds import copy_folds, folds_problem, plan_folds
from gome_agent.task.scan import scan_competition
from tests.task.test_profile import make_competition as _make


def make_competition(folder):
    folder.mkdir(parents=True)
    return _make(folder)


def plan(scan, tmp_path, **kw):
    return plan_folds(scan, id_column="PassengerId", target_columns=["Survived"], task_type="binary classification",
                      seeds=[0, 1], out=tmp_path / "validation", **kw)


def test_folds_are_stratified_deterministic_and_fresh_for_another_seed(tmp_path):
    scan, _ = make_competition(tmp_path / "comp")
    result = plan(scan, tmp_path)
    assert result.available and result.stratified and (result.folds, result.rows) == (5, 400)
    assert result.reason == "5 folds of the 400 rows of train.csv by PassengerId, stratified by Survived"
    folds = pd.read_csv(tmp_path / "validation" / "folds.csv")
    train = pd.read_csv(tmp_path / "comp" / "train.csv")
    assert list(folds.columns) == ["PassengerId", "fold"] and folds["PassengerId"].tolist() == train["PassengerId"].tolist()
    assert sorted(folds["fold"].unique()) == [0, 1, 2, 3, 4] and folds["fold"].value_counts().max() == 80
    share = train.groupby(folds["fold"])["Survived"].mean()
    assert share.max() - share.min() < 0.02  # each fold has the label's share
    again = plan(scan, tmp_path / "again")
    assert again == result and (tmp_path / "again" / "validation" / "folds.csv").read_bytes() == \
        (tmp_path / "validation" / "folds.csv").read_bytes()
    other = pd.read_csv(tmp_path / "validation" / "folds-seed1.csv")
    assert (other["fold"] != folds["fold"]).mean() > 0.5


def test_no_folds_without_a_labelled_table_keyed_by_unique_ids_or_for_a_huge_one(tmp_path, monkeypatch):
    scan, _ = make_competition(tmp_path / "comp")
    missing = plan_folds(scan, id_column="nope", target_columns=["Survived"], task_type="binary classification",
                         seeds=[0], out=tmp_path / "v1")
    assert not missing.available and "no training table has the id column 'nope'" in missing.reason
    monkeypatch.setattr(folds_module, "MAX_FOLD_ROWS", 100)
    huge = plan(scan, tmp_path)
    assert not huge.available and "has 400 rows, more than the 100 a fold file lists" in huge.reason
    monkeypatch.undo()
    train = pd.read_csv(tmp_path / "comp" / "train.csv")
    train.loc[1, "PassengerId"] = train.loc[0, "PassengerId"]
    train.to_csv(tmp_path / "comp" / "train.csv", index=False)
    repeated = plan(scan_competition(tmp_path / "comp"), tmp_path / "v2")
    assert not repeated.available and "missing, repeated or too few" in repeated.reason


def test_an_attempt_gets_its_folds_and_a_changed_or_deleted_copy_is_named(tmp_path):
    scan, _ = make_competition(tmp_path / "comp")
    plan(scan, tmp_path)
    attempt = tmp_path / "a0"
    attempt.mkdir()
    assert copy_folds(tmp_path / "validation", attempt) and folds_problem(tmp_path / "validation", attempt) is None
    (attempt / "folds.csv").write_text("PassengerId,fold\n")
    assert "changed ./folds.csv" in folds_problem(tmp_path / "validation", attempt)
    (attempt / "folds.csv").unlink()
    assert "deleted ./folds.csv" in folds_problem(tmp_path / "validation", attempt)
    copy_folds(tmp_path / "validation", attempt, seed=1)
    assert (attempt / "folds.csv").read_bytes() == (tmp_path / "validation" / "folds-seed1.csv").read_bytes()
    assert not copy_folds(tmp_path / "nowhere", attempt)


@pytest.mark.parametrize("task_type, stratified", [("regression", False), ("multiclass classification", True)])
def test_stratification_only_for_classification(tmp_path, task_type, stratified):
    scan, _ = make_competition(tmp_path / "comp")
    result = plan_folds(scan, id_column="PassengerId", target_columns=["Survived"], task_type=task_type,
                        seeds=[0], out=tmp_path / "v")
    assert result.available and result.stratified is stratified
