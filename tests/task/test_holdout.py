"""The rows gome holds out: the plan, the solutions' view of the data, and scoring their predictions
(including every bad input the contract names)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gome_agent.bench.competitions import build_breast_cancer
from gome_agent.task.holdout import (
    LABELS_FILE,
    PREDICTIONS_FILE,
    HoldoutPlan,
    held_ids,
    holdout_scorer,
    plan_holdout,
)
from gome_agent.task.sample import find_sample_submission, load_sample_submission
from gome_agent.task.scan import scan_competition
from gome_agent.task.submission import check_outputs


@pytest.fixture(scope="module")
def competition(tmp_path_factory):
    return build_breast_cancer(tmp_path_factory.mktemp("comp"))


def plan(data, out, metric="area under the ROC curve", **kwargs) -> HoldoutPlan:
    sample = load_sample_submission(find_sample_submission(data), "id")
    return plan_holdout(scan_competition(data), metric_name=metric, id_column="id", target_columns=["target"],
                        task_type="binary classification", sample=sample, fraction=kwargs.pop("fraction", 0.15),
                        max_rows=20_000, min_rows=kwargs.pop("min_rows", 50), seed=kwargs.pop("seed", 0), out=out)


@pytest.fixture(scope="module")
def planned(competition, tmp_path_factory):
    out = tmp_path_factory.mktemp("validation")
    return plan(competition, out), out


def test_the_view_lacks_exactly_the_held_out_rows_and_their_labels(competition, planned):
    p, out = planned
    train = pd.read_csv(competition / "train.csv")
    view = pd.read_csv(out / "input" / "train.csv")
    holdout = pd.read_csv(out / "input" / "holdout.csv")
    labels = pd.read_csv(out / LABELS_FILE)
    assert p.available and p.rows == 64 == len(holdout) == len(labels) and p.file == "holdout.csv"
    assert set(view["id"]) | set(holdout["id"]) == set(train["id"]) and not set(view["id"]) & set(holdout["id"])
    assert "target" not in holdout.columns and list(holdout.columns) == [c for c in train.columns if c != "target"]
    assert held_ids(out, "id") == {str(i) for i in labels["id"]}
    # Stratified: the held-out share of positives is the table's.
    assert abs(labels["target"].mean() - train["target"].mean()) < 0.02
    assert sorted(labels["part"].unique()) == [0, 1, 2, 3, 4] and p.parts == 5
    # Every other file is the competition's own, through a link.
    for name in ("test.csv", "sample_submission.csv", "description.md"):
        assert (out / "input" / name).is_symlink() and (out / "input" / name).resolve() == (competition / name).resolve()
    assert "roc_auc of target" in p.reason and "64 of the 426 rows" in p.reason


def test_the_plan_is_deterministic_from_the_seed(competition, tmp_path):
    first = held_ids(plan(competition, tmp_path / "a") and tmp_path / "a", "id")
    again = held_ids(plan(competition, tmp_path / "b") and tmp_path / "b", "id")
    other = held_ids(plan(competition, tmp_path / "c", seed=5) and tmp_path / "c", "id")
    assert first == again and first != other


@pytest.mark.parametrize("metric, reason", [("MAP@5", "gome cannot compute the metric 'MAP@5'")])
def test_a_metric_gome_cannot_compute_means_self_reported_scores(competition, tmp_path, metric, reason):
    p = plan(competition, tmp_path, metric=metric)
    assert not p.available and reason in p.reason and not (tmp_path / "input").exists()


def test_a_task_without_a_labelled_id_table_says_why(tmp_path):
    data = tmp_path / "images"
    data.mkdir()
    pd.DataFrame({"id": ["a", "b"], "target": [0.5, 0.5]}).to_csv(data / "sample_submission.csv", index=False)
    (data / "train").mkdir()
    (data / "description.md").write_text("# Images\nPredict the class of each image; evaluated on AUC.\n")
    sample = load_sample_submission(data / "sample_submission.csv", "id")
    p = plan_holdout(scan_competition(data), metric_name="AUC", id_column="id", target_columns=["target"],
                     task_type="binary classification", sample=sample, fraction=0.15, max_rows=20_000, min_rows=50,
                     seed=0, out=tmp_path / "v")
    assert not p.available and "no training table has the id column 'id' and the labels" in p.reason


def write_attempt(folder, ids, values, score=None, *, test=None):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"id": ids, "target": values}).to_csv(folder / PREDICTIONS_FILE, index=False)
    if test is not None:
        pd.DataFrame({"id": test["id"], "target": 0.3}).to_csv(folder / "submission.csv", index=False)
    if score is not None:
        (folder / "scores.json").write_text(json.dumps(score))


@pytest.fixture(scope="module")
def scorer(planned):
    p, out = planned
    return holdout_scorer(p, out, id_column="id", tolerance_se=5.0, tolerance_relative=0.05)


def truth(planned):
    return pd.read_csv(planned[1] / LABELS_FILE)


def test_gome_scores_the_predictions_and_the_parts(planned, scorer, tmp_path):
    labels = truth(planned)
    noisy = labels["target"] * 0.6 + np.random.default_rng(0).uniform(0, 0.5, len(labels))
    write_attempt(tmp_path, labels["id"], noisy)
    score, parts, problems = scorer.score(tmp_path / PREDICTIONS_FILE)
    from sklearn.metrics import roc_auc_score
    assert problems == [] and score == pytest.approx(roc_auc_score(labels["target"], noisy))
    assert parts is not None and len(parts) == 5
    for k, value in enumerate(parts):
        mask = labels["part"] == k
        assert value == pytest.approx(roc_auc_score(labels["target"][mask], noisy[mask]))


def synthetic(root, rows=4000):
    """A binary competition large enough for a precise held-out score (600 rows)."""
    rng = np.random.default_rng(1)
    root.mkdir()
    x = rng.normal(size=rows + 1000)
    target = (x + rng.normal(size=len(x)) > 0).astype(int)
    ids = [f"r{i:05d}" for i in range(len(x))]
    pd.DataFrame({"id": ids[:rows], "x": x[:rows], "target": target[:rows]}).to_csv(root / "train.csv", index=False)
    pd.DataFrame({"id": ids[rows:], "x": x[rows:]}).to_csv(root / "test.csv", index=False)
    pd.DataFrame({"id": ids[rows:], "target": 0.5}).to_csv(root / "sample_submission.csv", index=False)
    (root / "description.md").write_text("# Synthetic\nPredict target; evaluated on the area under the ROC curve.\n")
    return root


def test_a_self_inflated_score_is_untrusted_and_an_honest_one_is_not(tmp_path):
    data = synthetic(tmp_path / "comp")
    p = plan(data, tmp_path / "v")
    scorer = holdout_scorer(p, tmp_path / "v", id_column="id", tolerance_se=5.0, tolerance_relative=0.05)
    sample = load_sample_submission(data / "sample_submission.csv", "id")
    held = pd.read_csv(tmp_path / "v" / "input" / "holdout.csv")
    test = pd.read_csv(data / "test.csv")
    write_attempt(tmp_path / "honest", held["id"], held["x"], {"score": 0.74}, test=test)
    write_attempt(tmp_path / "inflated", held["id"], held["x"], {"score": 0.999}, test=test)
    honest = scorer.check(tmp_path / "honest", check_outputs(tmp_path / "honest", sample))
    inflated = scorer.check(tmp_path / "inflated", check_outputs(tmp_path / "inflated", sample))
    assert p.rows == 600 and honest.score == pytest.approx(0.76, abs=0.04)
    assert honest.ok and honest.scored_by == "gome" and honest.untrusted is None and honest.reported_score == 0.74
    assert inflated.score == honest.score and inflated.reported_score == 0.999
    assert not inflated.valid_submission and inflated.untrusted
    assert "scores.json reports 0.999, but gome measured" in inflated.untrusted
    assert inflated.untrusted in inflated.problems


def test_without_scores_json_gome_still_scores_the_step(planned, scorer, tmp_path, competition):
    labels = truth(planned)
    sample = load_sample_submission(find_sample_submission(competition), "id")
    write_attempt(tmp_path, labels["id"], labels["target"] * 0.5 + 0.2, test=pd.read_csv(competition / "test.csv"))
    check = scorer.check(tmp_path, check_outputs(tmp_path, sample))
    assert check.ok and check.score == pytest.approx(1.0) and check.reported_score is None and check.problems == []


@pytest.mark.parametrize("damage, problem", [
    ("duplicate", "duplicate id(s)"),
    ("unknown", "not in the sample submission"),
    ("missing", "are missing from column 'id'"),
    ("nan", "NaN or empty value(s)"),
    ("inf", "infinite value(s)"),
    ("absent", "does not exist"),
    ("out_of_range", None),
])
def test_bad_predictions_give_a_clear_problem_and_no_score(planned, scorer, tmp_path, competition, damage, problem):
    labels = truth(planned)
    ids, values = labels["id"].astype(str).tolist(), (labels["target"] * 0.8 + 0.1).tolist()
    if damage == "duplicate":
        ids[1] = ids[0]
    elif damage == "unknown":
        ids[0] = "no-such-id"
    elif damage == "missing":
        ids, values = ids[1:], values[1:]
    elif damage == "nan":
        values[3] = float("nan")
    elif damage == "inf":
        values[3] = float("inf")
    write_attempt(tmp_path, ids, values, {"score": 0.9})
    if damage == "absent":
        (tmp_path / PREDICTIONS_FILE).unlink()
    score, parts, problems = scorer.score(tmp_path / PREDICTIONS_FILE)
    if problem is None:  # AUC takes any real number: not a problem
        assert score == pytest.approx(1.0) and problems == []
        return
    assert score is None and parts is None and len(problems) >= 1
    assert problems[0].startswith(f"{PREDICTIONS_FILE}: ") and problem in " ".join(problems)


def test_a_metric_that_raises_is_a_lesson_not_a_crash(competition, tmp_path):
    p = plan(competition, tmp_path / "v", metric="log loss")
    s = holdout_scorer(p, tmp_path / "v", id_column="id", tolerance_se=5.0, tolerance_relative=0.05)
    labels = pd.read_csv(tmp_path / "v" / LABELS_FILE)
    write_attempt(tmp_path / "a", labels["id"], labels["target"] * 3.0)  # "probabilities" of 3
    score, _, problems = s.score(tmp_path / "a" / PREDICTIONS_FILE)
    assert score is None and problems == [f"gome could not compute log_loss on {PREDICTIONS_FILE}: "
                                          "log_loss needs probabilities in [0, 1]"]


def test_a_small_table_holds_out_up_to_30_percent_to_reach_the_minimum_rows(competition, tmp_path):
    # 426 rows: the 15 % share is 64 rows; a minimum of 2,000 rows is capped at 30 % (127 rows).
    small = plan(competition, tmp_path / "small", min_rows=2_000)
    assert small.available and small.rows == 127 and "127 of the 426 rows" in small.reason
    # A minimum the share already reaches changes nothing.
    assert plan(competition, tmp_path / "reached", min_rows=60).rows == 64
    # Between the share and 30 %, the minimum itself.
    assert plan(competition, tmp_path / "between", min_rows=100).rows == 100
