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

`acceptance = "plain"` is the paper's rule (any gain beyond `min_improvement`), for ablations.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Literal

NoiseKind = Literal["paired", "unpaired", "none"]


@dataclass(frozen=True)
class Threshold:
    """The gain a step had to beat, and how it was found."""

    noise: float | None
    kind: NoiseKind
    threshold: float
    mean_difference: float | None = None  # paired: the mean per-fold difference, new - best

    def beaten_by(self, gain: float) -> bool:
        """Whether an improvement of `gain` (signed, in the metric's own units) is beyond the noise."""
        agree = self.kind != "paired" or (self.mean_difference is not None and self.mean_difference * gain > 0)
        return abs(gain) > self.threshold and agree

    def describe(self, factor: float) -> str:
        if self.kind == "none":
            return f"threshold {self.threshold:.4g}"
        what = "the per-fold differences' standard error" if self.kind == "paired" else "the fold standard error"
        text = f"threshold {self.threshold:.4g}: {factor:g} x {what} {self.noise:.4g}"
        return text + (f", mean per-fold difference {self.mean_difference:+.4g}" if self.kind == "paired" else "")


def _standard_error(values: list[float]) -> float:
    return statistics.stdev(values) / math.sqrt(len(values))


def threshold(new_folds: list[float] | None, best_folds: list[float] | None, *, factor: float,
              min_improvement: float, noise_aware: bool = True) -> Threshold:
    """The gain a step with fold scores `new_folds` must beat against a best with `best_folds`."""
    new, best = new_folds or [], best_folds or []
    if not noise_aware or (len(new) < 2 and len(best) < 2):
        return Threshold(None, "none", min_improvement)
    if len(new) == len(best):
        differences = [a - b for a, b in zip(new, best, strict=True)]
        noise = _standard_error(differences)
        return Threshold(noise, "paired", max(min_improvement, factor * noise), statistics.fmean(differences))
    noise = max(_standard_error(f) for f in (new, best) if len(f) >= 2)
    return Threshold(noise, "unpaired", max(min_improvement, factor * noise))
