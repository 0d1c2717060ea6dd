"""The global time budget: how much is left, which stage the run is in, how long a run may take.

The budget is wall-clock time measured from the run's start (MLE-bench enforces
a wall-clock limit); a resumed run starts from the time already spent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from gome_agent.config import StageConfig

Stage = Literal["draft", "improve", "final"]

STAGE_GUIDANCE: dict[str, str] = {
    "draft": "Draft stage: get a simple, correct, fast solution with a trustworthy validation score.",
    "improve": "Improve stage: make targeted changes with a clear expected gain on the validation metric.",
    "final": (
        "Final stage: favour robustness and ensembling of what already works "
        "(blends, seeds, folds); avoid risky rewrites."
    ),
}


class Budget:
    """Time accounting for one run (shared by all traces through `started_at`)."""

    def __init__(
        self,
        time_limit_s: float,
        *,
        started_at: float | None = None,
        spent_before_s: float = 0.0,
        reserve_s: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.time_limit_s = time_limit_s
        self.reserve_s = reserve_s
        self._clock = clock
        self.started_at = clock() if started_at is None else started_at
        self.spent_before_s = spent_before_s
        self._anchor = (time.monotonic(), self._wall_elapsed())

    def _wall_elapsed(self) -> float:
        return self.spent_before_s + max(0.0, self._clock() - self.started_at)

    def elapsed(self) -> float:
        # A wall clock set back (NTP, a resumed VM) must not hand out more time: what the monotonic
        # clock measured since this budget was made is a floor. Set forward, the run ends early.
        since, wall = self._anchor
        return max(self._wall_elapsed(), wall + time.monotonic() - since)

    def remaining(self) -> float:
        """Seconds left for optimization steps (the final-selection reserve excluded)."""
        return max(0.0, self.time_limit_s - self.reserve_s - self.elapsed())

    def remaining_total(self) -> float:
        """Seconds left including the reserve."""
        return max(0.0, self.time_limit_s - self.elapsed())

    @property
    def deadline(self) -> float:
        """Epoch time at which optimization steps must be over."""
        return self._clock() + self.remaining()

    def fraction_used(self) -> float:
        return min(1.0, self.elapsed() / self.time_limit_s)

    def stage(self, stages: StageConfig) -> Stage:
        used = self.fraction_used()
        if used < stages.draft_end:
            return "draft"
        if used >= stages.final_start:
            return "final"
        return "improve"

    def run_timeout(self, max_run_s: float, margin_s: float = 0.0) -> float:
        """The longest a solution run may take now: capped, and never past the budget."""
        return max(0.0, min(max_run_s, self.remaining() - margin_s))

    def describe(self) -> str:
        used = self.elapsed()
        return f"{_fmt(used)} used of {_fmt(self.time_limit_s)}, {_fmt(self.remaining())} left"


def _fmt(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def format_duration(seconds: float) -> str:
    """Short human form: 2h05m, 3m20s, 45s."""
    return _fmt(seconds)
