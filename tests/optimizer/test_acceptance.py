import math

import pytest

from gome_agent.optimizer.acceptance import threshold


def test_paired_folds_give_the_standard_error_of_their_differences():
    bar = threshold([0.81, 0.88, 0.72, 0.86, 0.76], [0.80, 0.90, 0.70, 0.85, 0.75], factor=1.0, min_improvement=0.0)
    diffs = [0.01, -0.02, 0.02, 0.01, 0.01]
    mean = sum(diffs) / 5
    expected = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 4) / math.sqrt(5)
    assert bar.kind == "paired" and bar.noise == pytest.approx(expected) and bar.threshold == pytest.approx(expected)
    assert "1 x the per-fold differences' standard error" in bar.describe(1.0)


def test_unpaired_folds_take_the_larger_standard_error_and_the_factor_scales_it():
    bar = threshold([0.8, 0.9], [0.85, 0.86, 0.87], factor=2.0, min_improvement=0.0)
    assert bar.kind == "unpaired" and bar.noise == pytest.approx(0.1 / math.sqrt(2) / math.sqrt(2))
    assert bar.threshold == pytest.approx(2 * bar.noise)


def test_without_folds_or_with_the_plain_rule_only_min_improvement_counts():
    assert threshold(None, None, factor=1.0, min_improvement=0.001).threshold == 0.001
    plain = threshold([0.8, 0.9], [0.8, 0.9], factor=1.0, min_improvement=0.0, noise_aware=False)
    assert (plain.kind, plain.noise, plain.threshold) == ("none", None, 0.0)
    # min_improvement stays a floor under the noise.
    assert threshold([0.8, 0.8001], [0.8, 0.8], factor=1.0, min_improvement=0.01).threshold == 0.01


def test_a_gain_must_beat_the_threshold_and_the_paired_folds_must_agree():
    # Every fold scores exactly as the best's: no noise to beat, but no measurable change either.
    same = threshold([0.87, 0.90, 0.76], [0.87, 0.90, 0.76], factor=1.0, min_improvement=0.0)
    assert same.threshold == 0.0 and same.mean_difference == 0.0
    assert not same.beaten_by(9e-6)
    assert "mean per-fold difference +0" in same.describe(1.0)
    better = threshold([0.83, 0.92, 0.78], [0.80, 0.90, 0.75], factor=1.0, min_improvement=0.0)
    assert better.mean_difference == pytest.approx(0.026666, abs=1e-5)
    assert better.beaten_by(0.03) and not better.beaten_by(better.threshold)
    # For a lower-is-better metric the gain and the fold differences are both negative.
    lower = threshold([0.30, 0.41, 0.50], [0.33, 0.43, 0.52], factor=1.0, min_improvement=0.0)
    assert lower.beaten_by(-0.03) and not lower.beaten_by(0.03)
    # Unpaired or no folds: the threshold alone decides.
    assert threshold(None, None, factor=1.0, min_improvement=0.0).beaten_by(1e-9)
