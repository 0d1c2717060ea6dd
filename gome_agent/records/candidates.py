"""The candidates of the final selection: which accepted steps it re-runs (run/selection.py), and so
which steps' submissions the run must keep until then (records/housekeeping.py)."""

from __future__ import annotations

from gome_agent.records.events import StepRecord
from gome_agent.task.analysis import Task


def pick_candidates(steps: list[StepRecord], task: Task, limit: int) -> list[StepRecord]:
    """The best accepted step of every trace, then the next best overall, up to `limit`.

    A step that drops out of the list never comes back: a new accepted step only pushes the others
    down (or takes its own trace's place at the top), which is why a dropped step's submission
    can be deleted."""
    accepted = [s for s in steps if s.accepted and s.score is not None and s.code_dir]
    sign = 1.0 if task.higher_is_better else -1.0
    accepted.sort(key=lambda s: sign * (s.score or 0.0), reverse=True)
    chosen: list[StepRecord] = []
    for trace in sorted({s.trace for s in accepted}):
        chosen.append(next(s for s in accepted if s.trace == trace))
    chosen.sort(key=lambda s: sign * (s.score or 0.0), reverse=True)
    chosen = chosen[:limit]
    for s in accepted:
        if len(chosen) >= limit:
            break
        if s not in chosen:
            chosen.append(s)
    return chosen
