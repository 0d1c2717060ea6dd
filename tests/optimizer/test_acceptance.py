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


def test_reported_folds_corroborate_a_held_out_gain_too_small_for_the_held_out_rows_alone():
    # Seed 4 of the validation benchmark: +0.0028 measured on the held-out rows, within their noise.
    held_new, held_best = [0.7554, 0.7424, 0.7304, 0.7629, 0.7558], [0.75, 0.74, 0.74, 0.75, 0.75]
    alone = threshold(held_new, held_best, factor=1.0, min_improvement=0.0)
    assert alone.kind == "paired" and not alone.beaten_by(0.0028)
    # The solutions' own out-of-fold scores on gome's folds show the same gain, steadily.
    reported = ([0.744, 0.751, 0.739, 0.748, 0.746], [0.741, 0.748, 0.737, 0.744, 0.743])
    bar = threshold(held_new, held_best, factor=1.0, min_improvement=0.0, reported=reported)
    h_mean, h_se = 0.00338, alone.noise
    r_diffs = [0.003, 0.003, 0.002, 0.004, 0.003]
    r_mean = sum(r_diffs) / 5
    r_se = math.sqrt(sum((d - r_mean) ** 2 for d in r_diffs) / 4) / math.sqrt(5)
    w_h, w_r = 1 / h_se ** 2, 1 / r_se ** 2
    assert bar.kind == "pooled" and bar.mean_difference == pytest.approx(h_mean)
    assert bar.noise == pytest.approx(math.sqrt(1 / (w_h + w_r)))
    assert bar.pooled == pytest.approx((w_h * h_mean + w_r * r_mean) / (w_h + w_r))
    assert bar.beaten_by(0.0028) and "pooled gain +0.003" in bar.describe(1.0)


def test_corroboration_never_turns_a_loss_gome_measured_into_a_gain():
    held_new, held_best = [0.74, 0.73, 0.75], [0.75, 0.74, 0.75]  # gome measured a loss
    reported = ([0.80, 0.81, 0.82], [0.70, 0.71, 0.72])  # the solution claims a large, steady gain
    bar = threshold(held_new, held_best, factor=1.0, min_improvement=0.0, reported=reported)
    assert bar.kind == "pooled" and bar.pooled is not None and bar.pooled > bar.threshold
    assert not bar.beaten_by(-0.0067) and not bar.beaten_by(0.001)  # held-out parts disagree with any gain
    # Reported folds that do not pair (another number of folds) leave the held-out rows alone to decide.
    assert threshold(held_new, held_best, factor=1.0, min_improvement=0.0,
                     reported=([0.8, 0.81], [0.7, 0.71, 0.72])).kind == "paired"



def test_differences_without_spread_are_not_pooled():
    # Folds reported exactly as the best's (or moved all by the same amount) give no standard error to
    # weigh by: the held-out parts alone decide.
    same = threshold([0.76, 0.75, 0.77], [0.75, 0.74, 0.75], factor=1.0, min_improvement=0.0,
                     reported=([0.7, 0.72, 0.71], [0.7, 0.72, 0.71]))
    alone = threshold([0.76, 0.75, 0.77], [0.75, 0.74, 0.75], factor=1.0, min_improvement=0.0)
    assert same == alone and same.kind == "paired" and same.beaten_by(0.013)
    # A breast-cancer run: four of five held-out parts at AUC 1.0 before and after, no part moved.
    ceiling = threshold([0.99375, 1.0, 1.0, 1.0, 1.0], [0.99375, 1.0, 1.0, 1.0, 1.0], factor=1.0,
                        min_improvement=0.0, reported=([0.986, 0.996, 0.994, 0.992, 0.978],
                                                       [0.984, 0.994, 0.996, 0.995, 0.977]))
    assert ceiling.kind == "paired" and ceiling.noise == 0.0 and not ceiling.beaten_by(0.00053)


def test_a_rejected_gain_says_why_it_falls_short():
    # The real-LLM tier's breast-cancer runs: the whole held-out set's AUC rose by 0.00053 while every part
    # scored as before; "within the noise" of a threshold of 0 read as a contradiction.
    ceiling = threshold([0.99375, 1.0, 1.0, 1.0, 1.0], [0.99375, 1.0, 1.0, 1.0, 1.0], factor=1.0, min_improvement=0.0)
    assert ceiling.shortfall(0.00053, 1.0).startswith(
        "does not show in the held-out parts one by one (mean per-fold difference +0; threshold 0: ")
    small = threshold([0.81, 0.88, 0.72, 0.86, 0.76], [0.80, 0.90, 0.70, 0.85, 0.75], factor=1.0, min_improvement=0.0)
    assert not small.beaten_by(0.006)
    assert small.shortfall(0.006, 1.0) == f"is within the noise ({small.describe(1.0)})"
    # Pooled: the held-out parts show the gain, the solution's own folds outweigh them the other way.
    pooled = threshold([0.76, 0.75, 0.77], [0.75, 0.745, 0.76], factor=1.0, min_improvement=0.0,
                       reported=([0.70, 0.71, 0.69], [0.75, 0.77, 0.74]))
    assert pooled.kind == "pooled" and pooled.pooled < 0 and not pooled.beaten_by(0.008)
    assert pooled.shortfall(0.008, 1.0).startswith("is not in the pooled estimate (threshold ")
