"""gome's own metric: which submissions it can score, the values against sklearn, and the reasons it gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from gome_agent.task.scoring import MetricSpec, ScoringError, compute_metric, oracle, plan_metric


def spec(name, labels, columns, numeric=None) -> MetricSpec:
    found = plan_metric(name, labels, columns, frozenset(columns if numeric is None else numeric))
    assert isinstance(found, MetricSpec), found
    return found


def test_binary_auc_scores_the_probability_of_the_larger_label():
    labels = pd.DataFrame({"target": ["0", "1", "1", "0", "1", "0"]})
    s = spec("Area under the ROC curve", labels, ["target"])
    p = pd.DataFrame({"target": [0.1, 0.9, 0.4, 0.5, 0.8, 0.2]})
    assert s.positive == "1"
    assert compute_metric(s, labels, p) == pytest.approx(skm.roc_auc_score([0, 1, 1, 0, 1, 0], p["target"]))


@pytest.mark.parametrize("name, kappa", [("quadratic weighted kappa", "quadratic"), ("QWK", "quadratic"),
                                         ("linear weighted kappa", "linear"), ("Cohen's kappa", None)])
def test_kappa_takes_its_weighting_from_the_name(name, kappa):
    labels = pd.DataFrame({"class": list("0123210")})
    predicted = pd.DataFrame({"class": ["0", "1", "3", "3", "2", "0", "0.0"]})
    s = spec(name, labels, ["class"])
    expected = skm.cohen_kappa_score([0, 1, 2, 3, 2, 1, 0], [0, 1, 3, 3, 2, 0, 0], weights=kappa)
    assert s.variant == kappa and compute_metric(s, labels, predicted) == pytest.approx(expected)


def test_multiclass_log_loss_maps_the_classes_onto_the_columns_and_rescales_rows():
    labels = pd.DataFrame({"species": ["a", "b", "c", "a"]})
    s = spec("multi-class logarithmic loss", labels, ["b", "a", "c"])
    p = pd.DataFrame({"b": [0.2, 0.6, 0.2, 0.1], "a": [0.6, 0.2, 0.2, 0.8], "c": [0.2, 0.2, 0.6, 0.1]})
    expected = skm.log_loss(["a", "b", "c", "a"], p[["a", "b", "c"]].to_numpy(), labels=["a", "b", "c"])
    assert s.form == "class_probabilities" and compute_metric(s, labels, p) == pytest.approx(expected)
    assert compute_metric(s, labels, p * 3) == pytest.approx(expected)  # rows are rescaled to sum to 1


def test_a_renamed_single_label_column_and_mean_columnwise_rmse():
    digits = pd.DataFrame({"label": ["3", "1", "4"]})
    s = spec("accuracy", digits, ["Label"])
    assert compute_metric(s, digits, pd.DataFrame({"Label": ["3", "1", "5"]})) == pytest.approx(2 / 3)
    labels = pd.DataFrame({"a": ["1", "2"], "b": ["0", "0"]})
    s = spec("mean column-wise root mean squared error", labels, ["a", "b"])
    p = pd.DataFrame({"a": [1.0, 4.0], "b": [1.0, 1.0]})
    assert compute_metric(s, labels, p) == pytest.approx((np.sqrt(2.0) + 1.0) / 2)


@pytest.mark.parametrize("name, labels, columns, reason", [
    ("MAP@5", {"y": ["a", "b"]}, ["y"], "gome cannot compute the metric 'MAP@5' itself"),
    ("F1", {"y": ["a", "b", "c"]}, ["y"], "does not say how it averages"),
    ("F1", {"y": ["yes", "no"]}, ["y"], "needs a clear positive class"),
    ("RMSE", {"y": ["cat", "dog"]}, ["y"], "needs numeric labels"),
    ("AUC", {"y": ["0", "1"]}, ["z1", "z2"], "do not match the labels"),
])
def test_what_gome_cannot_score_gets_a_reason(name, labels, columns, reason):
    found = plan_metric(name, pd.DataFrame(labels), columns, frozenset(columns))
    assert isinstance(found, str) and reason in found


@pytest.mark.parametrize("values, cause", [([0.1, np.nan], "not numbers"), ([0.1, np.inf], "infinite"),
                                           ([0.1, 1.7], "probabilities in [0, 1]")])
def test_predictions_the_metric_cannot_take_raise_with_the_cause(values, cause):
    labels = pd.DataFrame({"t": ["0", "1"]})
    s = spec("log loss", labels, ["t"])
    with pytest.raises(ScoringError, match=cause.replace("[", r"\[").replace("]", r"\]")):
        compute_metric(s, labels, pd.DataFrame({"t": values}))


def test_oracle_predictions_score_perfectly():
    labels = pd.DataFrame({"y": ["1.5", "2.5", "4"]})
    s = spec("rmsle", labels, ["y"])
    assert compute_metric(s, labels, oracle(s, labels)) == pytest.approx(0.0)
