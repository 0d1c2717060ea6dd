"""What a run writes to `events.jsonl`: one record per event, typed by `type`.

The events are the run's history: enough to inspect it, report it, and resume it
(a trace's state is rebuilt from its `step` records).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from gome_agent import jsonl
from gome_agent.optimizer.gradient import Gradient, RankedDirection


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class _Event(BaseModel):
    ts: str = Field(default_factory=now_iso)


class RunStarted(_Event):
    type: Literal["run_started"] = "run_started"
    version: str
    competition_id: str
    time_limit_s: float
    traces: int
    resumed: bool = False
    spent_before_s: float = 0.0


class TaskAnalyzed(_Event):
    type: Literal["task_analyzed"] = "task_analyzed"
    metric_name: str
    higher_is_better: bool
    direction_source: str


StepStatus = Literal["accepted", "rejected", "failed", "error"]
StepKind = Literal["draft", "improve", "debug"]


class StepRecord(_Event):
    """One optimization step: the direction taken, how it ran, and whether it was accepted."""

    type: Literal["step"] = "step"
    trace: int
    step: int
    clock: int = 0
    kind: StepKind
    stage: str
    parent_step: int | None = None
    hypothesis: str = ""
    component: str | None = None
    limiting_problem: str | None = None
    gradient: Gradient | None = None
    # Why this improve step changed the code straight from its feedback (prompts/direct.j2) instead:
    # the gradient reply could not be used, or the trace's last gradients could not (strategies/gome.py).
    gradient_error: str | None = None
    ranking: list[RankedDirection] = Field(default_factory=list)
    status: StepStatus
    accepted: bool = False
    score: float | None = None
    best_before: float | None = None
    gain: float | None = None
    fold_scores: list[float] | None = None  # the per-fold validation scores of the step's run
    scored_by: Literal["gome", "self-reported"] | None = None  # who measured `score` (task/holdout.py)
    reported_score: float | None = None  # the solution's own score, when gome measured `score`
    reported_folds: list[float] | None = None  # and its own per-fold scores (scores.json "folds"), if it gave them
    untrusted: str | None = None  # why the solution's own score could not be believed (the step failed)
    noise: float | None = None  # the standard error the gain was held against (optimizer/acceptance.py)
    threshold: float | None = None  # the gain the step had to beat
    # The gain estimated from gome's held-out parts and the solutions' own folds together, when they were
    # pooled (optimizer/acceptance.py); `noise` is then that estimate's standard error.
    pooled_gain: float | None = None
    runs: int = 0
    run_status: str | None = None
    message: str = ""
    lesson: str = ""
    cause: str | None = None  # why the run failed: the exception and the line of main.py
    change: str = ""  # the change actually made, as the replies summarised it (fixes included)
    lines_added: int | None = None  # against the code the step started from
    lines_removed: int | None = None
    changed_lines: str | None = None  # e.g. "12-18": where in the new main.py
    code_dir: str | None = None
    runtime_s: float | None = None
    gpu: bool = False
    gpu_peak_mb: int | None = None
    oom_retries: int = 0
    # Before the runs: what the static checks found (execution/static_check.py) and the fix rounds spent
    # on it without a run; the smoke runs on a sample of the data (task/smoke.py): the last one's outcome
    # (None: none was made), how many, and their time (part of run_s).
    static_problems: list[str] = Field(default_factory=list)
    static_fixes: int = 0
    # What gome fixed itself without the model (execution/autofix.py), e.g. "added `import os`".
    auto_fixes: list[str] = Field(default_factory=list)
    smoke: Literal["passed", "failed", "timeout"] | None = None
    smoke_runs: int = 0
    smoke_s: float = 0.0
    # A draft's origin: written into gome's main.py skeleton (task/scaffold.py), or a repair that goes on
    # debugging the failed draft of step `repairs` (its code, fed the last error) instead of a fresh draft.
    scaffolded: bool = False
    repairs: int | None = None
    started_at: str
    duration_s: float = 0.0
    llm_s: float = 0.0
    run_s: float = 0.0
    overhead_s: float = 0.0
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def reported_change(self) -> str:
        """The change made, when it says more than the hypothesis ("" when it only repeats it)."""
        return "" if self.change.strip() == self.hypothesis.strip() else self.change


class DraftApproach(_Event):
    """A trace's draft approach, announced before its code runs, so other drafts can differ from it."""

    type: Literal["draft_approach"] = "draft_approach"
    trace: int
    step: int
    approach: str


RerunOutcome = Literal["scored", "unchanged", "no_time", "failed"]


class Rerun(BaseModel):
    """One solution re-run by the final selection.

    Per re-run: `scored` (a new score, counted), `unchanged` (the other seed changed neither the
    score nor the predictions: the code ignores GOME_SEED, so it says nothing about robustness),
    `no_time` (not started or cut off for lack of time: no evidence either way), `failed` (it
    crashed or broke the contract: the candidate is not trusted). Older records have no outcomes;
    there a missing score means failed.
    """

    trace: int
    step: int
    score: float
    rerun_scores: list[float | None]
    mean: float | None
    std: float | None
    rerun_outcomes: list[RerunOutcome] = Field(default_factory=list)
    runtime_s: float | None = None  # the original run's time, which planned the re-runs


class FinalSelection(_Event):
    type: Literal["final_selection"] = "final_selection"
    candidates: list[Rerun]
    chosen_trace: int | None
    chosen_step: int | None
    reason: str


RefitOutcome = Literal["submitted", "failed", "invalid", "no_time"]


class Refit(_Event):
    """The submitted solution run once more on every labelled row (run/refit.py).

    `submitted`: its submission is the one in place; otherwise (`failed`, `invalid`, `no_time`) the
    measured solution's own submission stays, and `message` says why."""

    type: Literal["refit"] = "refit"
    trace: int
    step: int
    outcome: RefitOutcome
    seconds: float
    message: str


class TraceExited(_Event):
    """A trace process ended: normally, or by a crash that the coordinator may restart."""

    type: Literal["trace_exited"] = "trace_exited"
    trace: int
    exit_code: int | None
    restarted: bool
    message: str


class BestUpdated(_Event):
    type: Literal["best_updated"] = "best_updated"
    trace: int
    step: int
    score: float
    source: str


class FallbackWritten(_Event):
    type: Literal["fallback_submission"] = "fallback_submission"
    message: str


class RunFinished(_Event):
    type: Literal["run_finished"] = "run_finished"
    reason: str
    best_score: float | None
    best_trace: int | None = None
    best_step: int | None = None
    steps: int
    elapsed_s: float
    usage: dict[str, Any] = Field(default_factory=dict)


class SpendCapped(_Event):
    """The run's LLM spend reached a cap (llm.max_run_cost_usd, llm.max_run_tokens): the traces take no
    new step, and the final selection still runs."""

    type: Literal["spend_cap"] = "spend_cap"
    message: str


class Note(_Event):
    """Anything else worth knowing: a warning, a fatal error, a trace stopping."""

    type: Literal["note"] = "note"
    level: Literal["info", "warning", "error"] = "info"
    trace: int | None = None
    message: str


Event = Annotated[
    RunStarted | TaskAnalyzed | StepRecord | DraftApproach | BestUpdated | FinalSelection | Refit | TraceExited
    | FallbackWritten | RunFinished | SpendCapped | Note,
    Field(discriminator="type"),
]
_EVENT = TypeAdapter(Event)


class EventLog:
    """The run's `events.jsonl`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, event: _Event) -> None:
        jsonl.append(self.path, event)

    def read(self) -> list[_Event]:
        out = []
        for raw in jsonl.iter_raw(self.path):
            try:
                out.append(_EVENT.validate_python(raw))
            except ValidationError:
                continue
        return out

    def steps(self, trace: int | None = None) -> list[StepRecord]:
        return [e for e in self.read() if isinstance(e, StepRecord) and (trace is None or e.trace == trace)]
