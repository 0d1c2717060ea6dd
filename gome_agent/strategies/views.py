"""What the prompts receive: typed, bounded views of the task, the trace and the success memory.

Each view is what one template reads (the templates' headers name them); building them here keeps
every size limit in one place and lets `gome prompts check` render the templates with the same
shapes a run passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gome_agent.optimizer.edits import describe_diff
from gome_agent.optimizer.gradient import Direction
from gome_agent.optimizer.momentum import Recall
from gome_agent.records.events import StepRecord
from gome_agent.task.analysis import Task

TAIL_CHARS = 2500  # characters of a run's output shown in prompts


def tail(text: str, limit: int = TAIL_CHARS) -> str:
    return text if len(text) <= limit else "..." + text[-limit:]


def read_tail(path: Path, limit: int = TAIL_CHARS) -> str:
    """The last `limit` bytes of a file, as text ("" when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - limit))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def fmt_score(value: float | None) -> str:
    return "none" if value is None else f"{value:.6g}"


def fmt_gain(value: float | None) -> str | None:
    return None if value is None else f"{value:+.4g}"


@dataclass(frozen=True)
class PromptContext:
    """What every prompt that decides or writes code sees: the task, the machine, the time."""

    task: Task
    environment: str
    run_time_limit: str
    stage_guidance: str
    budget: str

    def variables(self) -> dict[str, object]:
        return {
            "task": self.task, "environment": self.environment, "run_time_limit": self.run_time_limit,
            "stage_guidance": self.stage_guidance, "budget": self.budget,
        }


@dataclass(frozen=True)
class BestView:
    """The trace's current best solution, with the figures its run reported."""

    step: int
    score: str
    hypothesis: str
    runtime: str
    stdout_tail: str
    code: str
    score_table: str | None = None  # per fold, per model, time per phase (scores.json), when given


@dataclass(frozen=True)
class AcceptedView:
    """An accepted step on the path to the best."""

    step: int
    hypothesis: str
    score: str
    gain: str | None

    @classmethod
    def of(cls, s: StepRecord) -> AcceptedView:
        return cls(step=s.step, hypothesis=s.hypothesis, score=fmt_score(s.score), gain=fmt_gain(s.gain))


@dataclass(frozen=True)
class StepView:
    """A recent step, accepted or not: what it meant to do, what it changed, and its lesson."""

    step: int
    kind: str
    hypothesis: str
    component: str | None
    status: str
    score: str | None
    lesson: str
    change: str = ""  # the change actually made, as the reply summarised it
    diff: str | None = None  # e.g. "+5/-2 lines at lines 12-18"

    @classmethod
    def of(cls, s: StepRecord) -> StepView:
        diff = None
        if s.lines_added is not None and s.lines_removed is not None:
            diff = describe_diff(s.lines_added, s.lines_removed, s.changed_lines)
        return cls(
            step=s.step, kind=s.kind, hypothesis=s.hypothesis[:400], component=s.component, status=s.status,
            score=None if s.score is None else fmt_score(s.score), lesson=s.lesson[:600],
            change=s.reported_change()[:300], diff=diff,
        )


@dataclass(frozen=True)
class MemoryView:
    """A success recalled from the shared memory, with its age in run-wide steps."""

    trace: int
    step: int
    hypothesis: str
    component: str
    problem: str
    score: str
    gain: str | None
    age: int
    own: bool

    @classmethod
    def of(cls, recall: Recall, trace: int) -> MemoryView:
        e = recall.entry
        return cls(
            trace=e.trace, step=e.step, hypothesis=e.hypothesis, component=e.component, problem=e.problem[:400],
            score=fmt_score(e.score), gain=fmt_gain(e.gain), age=recall.age, own=e.trace == trace,
        )


@dataclass(frozen=True)
class History:
    """The trace's past as a diagnosis sees it: the accepted path, recent steps, recalled successes."""

    accepted: list[AcceptedView] = field(default_factory=list)
    recent: list[StepView] = field(default_factory=list)
    memory: list[MemoryView] = field(default_factory=list)


@dataclass(frozen=True)
class DirectionView:
    """The direction an update applies."""

    hypothesis: str
    reasoning: str
    expected_impact: str
    component: str

    @classmethod
    def of(cls, d: Direction) -> DirectionView:
        return cls(hypothesis=d.hypothesis, reasoning=d.reasoning, expected_impact=d.expected_impact,
                   component=d.component)


@dataclass(frozen=True)
class Failure:
    """What went wrong in a run, for the debug prompt."""

    message: str
    problems: list[str]
    stderr_tail: str
    stdout_tail: str
    cause: str | None = None  # the exception and the line of main.py it came from
    line: int | None = None  # that line of main.py (of a static failure: its first problem's)
    traceback: str | None = None  # the last traceback whole (stderr_tail may show only its end)
    excerpt: str = ""  # the lines of main.py around the failing one, numbered
    tables: list[str] = field(default_factory=list)  # "path: columns" of the input tables the code names
