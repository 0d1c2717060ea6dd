"""When a step's gain is real: the noise of a validation score, from its per-fold scores.

A trace compares every step with its best on the same validation data, so it can climb that data's
noise: a gain of 0.001 AUC on a split whose folds spread by 0.01 says nothing. The rule (setting
`optimizer.acceptance = "noise"`, the default):

- noise: when the step and the best report the same number k >= 2 of fold scores, the standard
  error of their per-fold differences, stdev(new_i - best_i) / sqrt(k) (the folds are shared, so
  the difference is what varies); when only one side, or sides of different k, report folds, the
  larger of their standard errors, stdev(folds) / sqrt(k); with no fold scores, no noise is known;
- threshold = max(min_improvement, noise_factor x noise); a step is accepted when it improves on
  the best by more than the threshold. A trace's first valid solution is always accepted.

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

    def describe(self, factor: float) -> str:
        if self.kind == "none":
            return f"threshold {self.threshold:.4g}"
        what = "the per-fold differences' standard error" if self.kind == "paired" else "the fold standard error"
        return f"threshold {self.threshold:.4g}: {factor:g} x {what} {self.noise:.4g}"


def _standard_error(values: list[float]) -> float:
    return statistics.stdev(values) / math.sqrt(len(values))


def threshold(new_folds: list[float] | None, best_folds: list[float] | None, *, factor: float,
              min_improvement: float, noise_aware: bool = True) -> Threshold:
    """The gain a step with fold scores `new_folds` must beat against a best with `best_folds`."""
    new, best = new_folds or [], best_folds or []
    if not noise_aware or (len(new) < 2 and len(best) < 2):
        return Threshold(None, "none", min_improvement)
    if len(new) == len(best):
        noise = _standard_error([a - b for a, b in zip(new, best, strict=True)])
        kind: NoiseKind = "paired"
    else:
        noise = max(_standard_error(f) for f in (new, best) if len(f) >= 2)
        kind = "unpaired"
    return Threshold(noise, kind, max(min_improvement, factor * noise))
