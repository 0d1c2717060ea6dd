"""When a step's gain is real: the noise of a validation score, from its per-fold scores.

A trace compares every step with its best on the same validation data, so it can climb that data's
noise: a gain of 0.001 AUC on a split whose folds spread by 0.01 says nothing. The rule (setting
`optimizer.acceptance = "noise"`, the default):

- noise: when the step and the best report the same number k >= 2 of fold scores, the standard
  error of their per-fold differences, stdev(new_i - best_i) / sqrt(k) (the folds are shared, so
  the difference is what varies); when only one side, or sides of different k, report folds, the
  larger of their standard errors, stdev(folds) / sqrt(k); with no fold scores, no noise is known;
- threshold = max(min_improvement, noise_factor x noise); a step is accepted when it improves on
  the best by more than the threshold and, with paired folds, the folds agree on average (the mean
  per-fold difference points the same way as the gain: a change whose fold scores are all exactly
  the best's has no noise to beat, but made no measurable difference either). A trace's first
  valid solution is always accepted.

Corroboration (setting `optimizer.corroborate`, on by default): when gome measured the score on
the rows it holds out, those rows are a fraction of the labelled ones (a third or less), and a real
gain smaller than they can resolve is rejected. The solution's own out-of-fold scores on gome's
folds cover the other rows, so when the step and the best both report the same number k >= 2 of
them, and both sets of per-fold differences vary, the two paired estimates of the gain are
pooled by inverse variance: the held-out parts' mean difference m_h with standard error s_h, the
reported folds' mean difference m_r with s_r, pooled
m = (m_h / s_h^2 + m_r / s_r^2) / (1 / s_h^2 + 1 / s_r^2) with standard error
1 / sqrt(1 / s_h^2 + 1 / s_r^2); the step is accepted when m beats max(min_improvement,
noise_factor x that error) and m, m_h and the measured gain all point the same way. What a solution
reports thus only ever adds weight to a gain gome itself measured in the same direction, and only
from a step whose own score gome's check found consistent with its measurement (task/holdout.py);
an inflated score is untrusted and never reaches this rule.

`acceptance = "plain"` is the paper's rule (any gain beyond `min_improvement`), for ablations.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Literal

NoiseKind = Literal["paired", "pooled", "unpaired", "none"]


@dataclass(frozen=True)
class Threshold:
    """The gain a step had to beat, and how it was found."""

    noise: float | None
    kind: NoiseKind
    threshold: float
    mean_difference: float | None = None  # paired and pooled: the held-out parts' mean difference, new - best
    pooled: float | None = None  # pooled: the gain estimated from the held-out parts and the reported folds

    def beaten_by(self, gain: float) -> bool:
        """Whether an improvement of `gain` (signed, in the metric's own units) is beyond the noise."""
        if self.kind == "none" or self.kind == "unpaired":
            return abs(gain) > self.threshold
        agree = self.mean_difference is not None and self.mean_difference * gain > 0
        if self.kind == "pooled":
            assert self.pooled is not None
            return agree and self.pooled * gain > 0 and abs(self.pooled) > self.threshold
        return agree and abs(gain) > self.threshold

    def shortfall(self, gain: float, factor: float) -> str:
        """Why a gain that is not `beaten_by` this threshold falls short, in words: "the gain ... <this>"."""
        if self.kind in ("paired", "pooled") and not (self.mean_difference or 0) * gain > 0:
            # A pooled whole-set score can move while every held-out part scores as before (AUC 1.0 on each).
            return (f"does not show in the held-out parts one by one (mean per-fold difference "
                    f"{self.mean_difference or 0:+.4g}; {self.describe(factor)})")
        if self.kind == "pooled" and not (self.pooled or 0) * gain > 0:
            return f"is not in the pooled estimate ({self.describe(factor)})"
        return f"is within the noise ({self.describe(factor)})"

    def describe(self, factor: float) -> str:
        if self.kind == "none":
            return f"threshold {self.threshold:.4g}"
        what = {"paired": "the per-fold differences' standard error", "unpaired": "the fold standard error",
                "pooled": "the pooled standard error of the held-out parts and the reported folds"}[self.kind]
        text = f"threshold {self.threshold:.4g}: {factor:g} x {what} {self.noise:.4g}"
        if self.kind == "pooled":
            text += f", pooled gain {self.pooled:+.4g}"
        return text + (f", mean per-fold difference {self.mean_difference:+.4g}" if self.kind != "unpaired" else "")


def _standard_error(values: list[float]) -> float:
    return statistics.stdev(values) / math.sqrt(len(values))


def _paired(new: list[float], best: list[float]) -> tuple[float, float]:
    """The mean and standard error of the per-fold differences new - best."""
    differences = [a - b for a, b in zip(new, best, strict=True)]
    return statistics.fmean(differences), _standard_error(differences)


def threshold(new_folds: list[float] | None, best_folds: list[float] | None, *, factor: float,
              min_improvement: float, noise_aware: bool = True,
              reported: tuple[list[float] | None, list[float] | None] | None = None) -> Threshold:
    """The gain a step with fold scores `new_folds` must beat against a best with `best_folds`.

    `reported`: the step's and the best's self-reported fold scores, to corroborate gome's own
    measurement (pass them only when `new_folds` are gome's held-out parts).
    """
    new, best = new_folds or [], best_folds or []
    if not noise_aware or (len(new) < 2 and len(best) < 2):
        return Threshold(None, "none", min_improvement)
    if len(new) == len(best):
        mean, noise = _paired(new, best)
        own_new, own_best = reported or (None, None)
        own = _paired(own_new, own_best) if own_new and own_best and len(own_new) == len(own_best) >= 2 else None
        # Differences without any spread give no standard error to weigh by (on breast-cancer, the 0.5B
        # model's forests scored AUC 1.0 on four of five held-out parts both before and after a change).
        if own is not None and noise > 0 and own[1] > 0:
            mean_r, noise_r = own
            w_h, w_r = 1 / noise ** 2, 1 / noise_r ** 2
            pooled_noise = math.sqrt(1 / (w_h + w_r))
            return Threshold(pooled_noise, "pooled", max(min_improvement, factor * pooled_noise), mean,
                             pooled=(w_h * mean + w_r * mean_r) / (w_h + w_r))
        return Threshold(noise, "paired", max(min_improvement, factor * noise), mean)
    noise = max(_standard_error(f) for f in (new, best) if len(f) >= 2)
    return Threshold(noise, "unpaired", max(min_improvement, factor * noise))
