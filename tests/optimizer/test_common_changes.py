"""The list of common changes a small model's compact diagnosis is shown, and what it adds to one that only
repeats tried changes."""

from __future__ import annotations

from gome_agent.optimizer.common_changes import common_changes, untried

FOREST = "def fit_predict(X, y, X_new):\n    model = RandomForestClassifier(n_estimators=100)\n" \
         "    return model.fit(X, y).predict(X_new)\n"
SCALED_LINEAR = "def fit_predict(X, y, X_new):\n    model = make_pipeline(StandardScaler(), Ridge(alpha=1.0))\n" \
                "    return model.fit(X, y).predict(X_new)\n"


def test_the_list_depends_on_what_the_task_predicts():
    labels = [c.text for c in common_changes("labels")]
    numbers = [c.text for c in common_changes("numbers")]
    assert "HistGradientBoostingClassifier(" in labels[0] and "HistGradientBoostingRegressor(" in numbers[0]
    assert any("class_weight" in t for t in labels) and not any("class_weight" in t for t in numbers)
    assert any("log1p" in t for t in numbers) and not any("log1p" in t for t in labels)
    assert len(labels) == len(numbers) == 6


def test_a_change_fits_code_that_uses_what_it_needs_and_does_not_have_it_yet():
    fitting = {c.text.split(",")[0].split(" (")[0] for c in common_changes("labels") if c.fits(FOREST)}
    assert fitting == {"use a gradient-boosted model", "use more and deeper trees in the forest",
                       'use class_weight="balanced"', "average the predictions of two different models"}
    numbers = [c.text for c in common_changes("numbers") if c.fits(SCALED_LINEAR)]
    assert any("regularisation" in t for t in numbers)  # a linear model
    assert not any("StandardScaler" in t for t in numbers)  # it has one already
    assert not any("forest" in t for t in numbers)  # no forest to deepen


def test_untried_leaves_out_what_was_tried_and_says_where_it_came_from():
    tried = ["use a gradient-boosted model, HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05)",
             "use more and deeper trees in the forest"]
    fresh = untried("labels", FOREST, exclude=tried, limit=5)
    assert [d.hypothesis for d in fresh] == ['use class_weight="balanced" (for rare classes)',
                                             "average the predictions of two different models"]
    assert [d.component for d in fresh] == ["model", "ensemble"]
    assert all(d.reasoning.startswith("from the list of common changes") and d.scores is None for d in fresh)
    assert len(untried("labels", FOREST, exclude=[], limit=1)) == 1
