"""A read-only view of a run folder: where each trace stands, what it cost, what is in place.

Everything comes from the files a run writes (`events.jsonl`, `llm_calls.jsonl`,
`run.json`, `task.json`, `code/best.json`, `memory/successes.jsonl`), so the
view works on a finished run, on one that other processes are still appending
to, and on one imported from published traces. It never writes to the folder:
no locks, no folders created. Missing files mean "nothing yet"; a line that is
still being written (no newline yet) waits for the next read; a line cut by a
hard kill is skipped and counted.

`RunView.load(workdir)` reads once (`gome report`, `gome status`).
`RunReader(workdir).view()` can be called again and again: it keeps its place in
the append-only files, so a live display does not re-read a 12-hour log.

Times: the "run clock" of a moment is the budget time spent at that moment
(wall-clock time since the run started, without the gaps between the sessions
of a resumed run), the same clock the budget and the stages use.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter, ValidationError

from gome_agent.errors import ConfigError
from gome_agent.optimizer.budget import format_duration
from gome_agent.optimizer.momentum import MemoryEntry
from gome_agent.records.best import BestInfo
from gome_agent.records.events import (
    DraftApproach,
    Event,
    FallbackWritten,
    FinalSelection,
    Note,
    Refit,
    RunFinished,
    RunStarted,
    SpendCapped,
    StepRecord,
    TaskAnalyzed,
    TraceExited,
)
from gome_agent.records.housekeeping import disk_bytes, format_bytes, free_bytes
from gome_agent.records.runinfo import RunInfo
from gome_agent.task.holdout import HoldoutPlan, scoring_note

# The coordinator beats every 5 s; this many seconds of silence means nobody is running the folder.
STALE_AFTER_S = 60.0
SUMMARY_MAX_TRACES = 20

RunState = Literal["running", "finished", "stopped"]
_EVENT: TypeAdapter[Any] = TypeAdapter(Event)
_RUN_FILES = ("events.jsonl", "run.json", "task.json", "config.json")


def epoch_of(ts: str) -> float | None:
    """Seconds since the epoch of an ISO timestamp from a record; None when it cannot be read."""
    try:
        moment = datetime.fromisoformat(ts)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


def step_end(step: StepRecord) -> float | None:
    """Epoch at which a step ended (its record is stamped when it starts)."""
    start = epoch_of(step.started_at)
    return None if start is None else start + step.duration_s


def fmt_score(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.6g}"


def fmt_usd(value: float) -> str:
    return f"${value:.4f}" if value < 10 else f"${value:,.2f}"


# Reading append-only files ----------------------------------------------------------


class _Tail:
    """New complete lines of an append-only JSON Lines file since the last read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.skipped = 0

    def read_new(self) -> tuple[list[dict[str, Any]], bool]:
        """The records appended since the last call, and whether the file was replaced (start over)."""
        try:
            size = self.path.stat().st_size
        except OSError:
            return [], False
        restarted = size < self.offset
        if restarted:
            self.offset = 0
            self.skipped = 0
        if size == self.offset:
            return [], restarted
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read(size - self.offset)
        except OSError:
            return [], restarted
        end = chunk.rfind(b"\n")
        if end < 0:
            return [], restarted  # a line still being written: wait for its newline
        self.offset += end + 1
        records = []
        for line in chunk[: end + 1].splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                value = json.loads(line)
            except ValueError:
                self.skipped += 1  # cut by a hard kill; the writer started the next record on a new line
                continue
            if isinstance(value, dict):
                records.append(value)
        return records, restarted


def read_json_object(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None when it is absent, unreadable or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # absent, or caught between a writer's temp file and its rename
    return value if isinstance(value, dict) else None


def _read_model(path: Path, model: type[BaseModel]) -> Any:
    raw = read_json_object(path)
    if raw is None:
        return None
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


SUMMARY_WIDTH = 150


def _bounded(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _scoring(raw: dict[str, Any]) -> dict[str, Any]:
    """TaskInfo's scoring fields from task.json (a run made before gome scored has no plan)."""
    if not raw:
        return {}
    try:
        plan = HoldoutPlan.model_validate(raw["holdout"]) if raw.get("holdout") else None
    except ValidationError:
        plan = None
    return {"scoring": scoring_note(plan), "self_reported": plan is None or not plan.available}


# The view ----------------------------------------------------------------------------


@dataclass
class TaskInfo:
    """What the run optimizes; the direction is None only for imported traces that do not say."""

    competition_id: str | None = None
    metric_name: str | None = None
    higher_is_better: bool | None = None
    goal: str = ""
    task_type: str = ""
    scoring: str = ""  # who measures the scores: gome on held-out rows, or the solutions themselves
    self_reported: bool = False

    def direction_word(self) -> str:
        if self.higher_is_better is None:
            return "direction unknown"
        return "higher is better" if self.higher_is_better else "lower is better"


@dataclass
class UsageRow:
    """LLM calls of one role, one model, or the whole run."""

    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0  # calls that used tokens of a model with no known price (their cost is not in cost_usd)
    latency_s: float = 0.0
    wait_s: float = 0.0  # of the latency: waiting for a free slot of the server

    def add(self, call: dict[str, Any]) -> None:
        self.calls += 1
        self.errors += call.get("status") == "error"
        tokens = {key: _int(call.get(key)) for key in
                  ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens")}
        self.input_tokens += tokens["input_tokens"]
        self.output_tokens += tokens["output_tokens"]
        self.cached_input_tokens += tokens["cached_input_tokens"]
        self.reasoning_tokens += tokens["reasoning_tokens"]
        cost = call.get("cost_usd")
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            self.cost_usd += float(cost)
        elif tokens["input_tokens"] or tokens["output_tokens"]:
            self.unpriced += 1
        self.latency_s += _float(call.get("latency_s"))
        self.wait_s += _float(call.get("slot_wait_s"))


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _float(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


@dataclass
class LLMTotals:
    total: UsageRow = field(default_factory=UsageRow)
    by_role: dict[str, UsageRow] = field(default_factory=dict)
    by_model: dict[str, UsageRow] = field(default_factory=dict)
    by_trace: dict[int, UsageRow] = field(default_factory=dict)  # the calls the traces made (not the task's)

    def add(self, call: dict[str, Any]) -> None:
        self.total.add(call)
        self.by_role.setdefault(str(call.get("role") or "?"), UsageRow()).add(call)
        self.by_model.setdefault(str(call.get("model") or "?"), UsageRow()).add(call)
        # A trace's process names it in every record's context; traces sharing a client tag their calls.
        trace = (call.get("context") or {}).get("trace")
        if trace is None:
            trace = (call.get("tags") or {}).get("trace")
        if isinstance(trace, int) and not isinstance(trace, bool):
            self.by_trace.setdefault(trace, UsageRow()).add(call)


@dataclass
class TraceView:
    """One trace: its recorded steps (by step number) and what follows from them."""

    index: int
    steps: list[StepRecord]
    in_progress_step: int | None = None  # a step whose folder exists but whose record is not written yet
    exited: TraceExited | None = None
    draft_approach: str | None = None

    @property
    def stage(self) -> str | None:
        return self.steps[-1].stage if self.steps else None

    @property
    def last_status(self) -> str | None:
        return self.steps[-1].status if self.steps else None

    @property
    def best(self) -> StepRecord | None:
        """The trace's current best: its last accepted step (a step is accepted only if it beats the best)."""
        return next((s for s in reversed(self.steps) if s.accepted), None)

    @property
    def best_score(self) -> float | None:
        best = self.best
        return best.score if best else None

    @property
    def best_step(self) -> int | None:
        best = self.best
        return best.step if best else None

    def count(self, status: str) -> int:
        return sum(s.status == status for s in self.steps)

    @property
    def accepted(self) -> int:
        return self.count("accepted")

    @property
    def rejected(self) -> int:
        return self.count("rejected")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def errors(self) -> int:
        return self.count("error")

    @property
    def llm_s(self) -> float:
        return sum(s.llm_s for s in self.steps)

    @property
    def run_s(self) -> float:
        return sum(s.run_s for s in self.steps)

    @property
    def overhead_s(self) -> float:
        return sum(s.overhead_s for s in self.steps)

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.steps)

    @property
    def llm_calls(self) -> int:
        return sum(s.llm_calls for s in self.steps)

    @property
    def input_tokens(self) -> int:
        return sum(s.input_tokens for s in self.steps)

    @property
    def output_tokens(self) -> int:
        return sum(s.output_tokens for s in self.steps)

    @property
    def cost_usd(self) -> float:
        return sum(s.cost_usd for s in self.steps)

    def step(self, number: int | None) -> StepRecord | None:
        if number is None:
            return None
        return next((s for s in self.steps if s.step == number), None)


@dataclass
class RunView:
    """Everything a report, `gome status` or a live display shows about one run folder."""

    workdir: Path
    task: TaskInfo
    state: RunState
    finish_reason: str | None
    time_limit_s: float | None
    spent_s: float
    traces: list[TraceView]
    best: BestInfo | None
    submission: Path | None
    final_selection: FinalSelection | None
    refit: Refit | None  # the chosen solution trained again on every labelled row (run/refit.py)
    fallback: str | None
    spend_cap: str | None  # which cap of the LLM spend stopped the traces
    usage: LLMTotals
    memory: list[MemoryEntry]
    notes: list[Note]
    exits: list[TraceExited]
    sessions: list[RunStarted]
    skipped_lines: int
    last_activity: float | None

    @classmethod
    def load(cls, workdir: Path, *, now: float | None = None) -> RunView:
        return RunReader(workdir).view(now=now)

    @property
    def left_s(self) -> float | None:
        return None if self.time_limit_s is None else max(0.0, self.time_limit_s - self.spent_s)

    def steps(self) -> list[StepRecord]:
        """Every step of every trace, in the order they started."""
        every = [s for t in self.traces for s in t.steps]
        return sorted(every, key=lambda s: (epoch_of(s.started_at) or 0.0, s.trace, s.step))

    def trace(self, index: int) -> TraceView | None:
        return next((t for t in self.traces if t.index == index), None)

    def find_step(self, trace: int | None, step: int | None) -> StepRecord | None:
        view = self.trace(trace) if trace is not None else None
        return view.step(step) if view else None

    def clock(self, epoch: float) -> float:
        """The run clock (budget seconds spent) at an epoch time."""
        sessions = [(epoch_of(s.ts), s.spent_before_s) for s in self.sessions]
        known = [(start, before) for start, before in sessions if start is not None]
        if not known:
            return max(0.0, epoch - (self.last_activity or epoch) + self.spent_s)
        current = known[0]
        for start, before in known:
            if start <= epoch:
                current = (start, before)
        start, before = current
        return max(0.0, before + epoch - start)

    @property
    def first_valid_s(self) -> float | None:
        """Run-clock seconds to the first valid model-written solution: the end of the first accepted step."""
        ends = [step_end(s) for t in self.traces for s in t.steps if s.accepted]
        clocks = [self.clock(end) for end in ends if end is not None]
        return min(clocks) if clocks else None

    def best_overall(self) -> StepRecord | None:
        """The step whose solution is in place (code/best.json), else the best accepted step by the metric."""
        if self.best is not None and self.best.trace is not None:
            found = self.find_step(self.best.trace, self.best.step)
            if found is not None:
                return found
        bests = [t.best for t in self.traces if t.best is not None and t.best.score is not None]
        if not bests:
            return None
        if self.task.higher_is_better is None:
            return max(bests, key=lambda s: epoch_of(s.started_at) or 0.0)
        sign = 1.0 if self.task.higher_is_better else -1.0
        return max(bests, key=lambda s: sign * (s.score or 0.0))

    def summary_text(self) -> str:
        """At most one terminal screen (40 lines) for `gome status`."""
        task = self.task
        metric = task.metric_name or "metric not read yet"
        lines = [f"run {self.workdir}", f"competition {task.competition_id or '?'}: {metric} ({task.direction_word()})"]
        if task.scoring:
            lines.append(_bounded(f"validation: {task.scoring}", SUMMARY_WIDTH))
        state = self.state + (f": {self.finish_reason}" if self.finish_reason and self.state == "finished" else "")
        if self.time_limit_s is None:
            lines.append(f"state {state}; {format_duration(self.spent_s)} used")
        else:
            lines.append(f"state {state}; {format_duration(self.spent_s)} used of "
                         f"{format_duration(self.time_limit_s)}, {format_duration(self.left_s or 0.0)} left")
        lines.append("")
        lines.append(f"{'trace':<5} {'stage':<8} {'steps':<5} {'last':<9} {'best (step)':<18} {'acc/all':<8} "
                     f"{'fail':<5} cost")
        for trace in self.traces[:SUMMARY_MAX_TRACES]:
            best = f"{fmt_score(trace.best_score)} (s{trace.best_step})" if trace.best else "-"
            line = (f"t{trace.index:<4} {trace.stage or 'waiting':<8} {len(trace.steps):<5} "
                    f"{trace.last_status or '-':<9} {best:<18} {f'{trace.accepted}/{len(trace.steps)}':<8} "
                    f"{trace.failed + trace.errors:<5} {fmt_usd(trace.cost_usd)}")
            if trace.in_progress_step:
                line += f"  [step {trace.in_progress_step} running]"
            if trace.exited and trace.exited.exit_code not in (0, None):
                line += f"  [{trace.exited.message}]"
            lines.append(line)
        if len(self.traces) > SUMMARY_MAX_TRACES:
            lines.append(f"... and {len(self.traces) - SUMMARY_MAX_TRACES} more traces")
        lines.append("")
        lines.extend(self._best_lines())
        usage = self.usage.total
        lines.append(
            f"LLM: {usage.calls} calls ({usage.errors} failed), {usage.input_tokens:,} input and "
            f"{usage.output_tokens:,} output tokens, {fmt_usd(usage.cost_usd)}"
            + (f" (+{usage.unpriced} calls of unpriced models)" if usage.unpriced else "")
        )
        if self.spend_cap is not None:
            lines.append(_bounded(f"  spend cap reached, no new steps: {self.spend_cap}", SUMMARY_WIDTH))
        if usage.wait_s >= 1.0:
            lines.append(f"  LLM time {format_duration(usage.latency_s)}, of which waiting for the server "
                         f"{format_duration(usage.wait_s)}")
        if self.usage.by_model:
            models = sorted(self.usage.by_model.items(), key=lambda kv: -kv[1].cost_usd)[:4]
            lines.append("  by model: " + ", ".join(f"{name} {fmt_usd(row.cost_usd)}" for name, row in models))
        lines.append(f"memory: {len(self.memory)} successes")
        lines.append(f"disk: the run folder holds {format_bytes(disk_bytes(self.workdir))}; "
                     f"{format_bytes(free_bytes(self.workdir))} free")
        problems = [n for n in self.notes if n.level != "info"]
        if problems:
            last = problems[-1]
            lines.append(f"notes: {len(problems)} warnings/errors; last: {last.message[:110]}")
        return "\n".join(lines)

    def _best_lines(self) -> list[str]:
        lines = []
        if self.best is not None and self.best.source == "fallback":
            lines.append("best: none valid; a fallback submission is in place")
        elif self.best is not None:
            lines.append(f"best: {fmt_score(self.best.score)} from trace {self.best.trace} step {self.best.step} "
                         f"({self.best.source}); code {self.best.code_dir}")
        else:
            best = self.best_overall()
            lines.append(f"best: {fmt_score(best.score)} from trace {best.trace} step {best.step}" if best
                         else "best: no valid solution yet")
        lines.append(f"submission: {self.submission.relative_to(self.workdir)} (in the run folder)" if self.submission
                     else "submission: none in place yet")
        first = self.first_valid_s
        lines.append(f"first valid solution: {format_duration(first)} into the run" if first is not None
                     else "first valid solution: none yet")
        if self.final_selection is not None:
            chosen = self.final_selection
            pick = (f"trace {chosen.chosen_trace} step {chosen.chosen_step}" if chosen.chosen_trace is not None
                    else "kept the best validation score")
            lines.append(f"final selection: {pick}")
            lines.append(f"  {chosen.reason[:150]}")
        if self.refit is not None:
            lines.append(f"refit: {self.refit.outcome} (trace {self.refit.trace} step {self.refit.step}): "
                         f"{self.refit.message[:150]}")
        return lines


# Building the view ----------------------------------------------------------------


class RunReader:
    """Reads a run folder incrementally; `view()` returns the current `RunView`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self._events = _Tail(self.workdir / "events.jsonl")
        self._calls = _Tail(self.workdir / "llm_calls.jsonl")
        self._memory_tail = _Tail(self.workdir / "memory" / "successes.jsonl")
        self._records: list[Any] = []
        self._invalid = 0
        self._usage = LLMTotals()
        self._memory: list[MemoryEntry] = []

    def _check_folder(self) -> None:
        if not self.workdir.is_dir():
            raise ConfigError(f"{self.workdir} is not a run folder: it does not exist")
        if not any((self.workdir / name).exists() for name in _RUN_FILES):
            raise ConfigError(
                f"{self.workdir} holds no gome run: none of {', '.join(_RUN_FILES)} is there"
            )

    def _refresh(self) -> None:
        raw, restarted = self._events.read_new()
        if restarted:
            self._records, self._invalid = [], 0
        for item in raw:
            try:
                self._records.append(_EVENT.validate_python(item))
            except ValidationError:
                self._invalid += 1  # an event type of another version, or a damaged record
        calls, restarted = self._calls.read_new()
        if restarted:
            self._usage = LLMTotals()
        for call in calls:
            self._usage.add(call)
        entries, restarted = self._memory_tail.read_new()
        if restarted:
            self._memory = []
        for item in entries:
            try:
                self._memory.append(MemoryEntry.model_validate(item))
            except ValidationError:
                self._invalid += 1

    def view(self, *, now: float | None = None) -> RunView:
        self._check_folder()
        self._refresh()
        now = time.time() if now is None else now
        records = self._records
        sessions = [e for e in records if isinstance(e, RunStarted)]
        info: RunInfo | None = _read_model(self.workdir / "run.json", RunInfo)
        task = self._task(records, sessions)
        last_event = _newest_epoch(records)
        activity = [t for t in (last_event, info.heartbeat_at if info else None) if t is not None]
        last_activity = max(activity) if activity else None
        finish = _finish(records)
        if finish is not None:
            state: RunState = "finished"
        elif last_activity is not None and now - last_activity <= STALE_AFTER_S:
            state = "running"
        else:
            state = "stopped"
        time_limit = info.time_limit_s if info else (sessions[-1].time_limit_s if sessions else None)
        if info is not None:
            spent = info.spent_s(last_event)
        elif finish is not None:
            spent = finish.elapsed_s
        else:
            spent = 0.0
        best: BestInfo | None = _read_model(self.workdir / "code" / "best.json", BestInfo)
        submission = self.workdir / "submission" / "submission.csv"
        fallbacks = [e for e in records if isinstance(e, FallbackWritten)]
        selections = [e for e in records if isinstance(e, FinalSelection)]
        refits = [e for e in records if isinstance(e, Refit)]
        # A cap recorded in an earlier session (then raised for a resume) no longer holds.
        caps = [e for e in records if isinstance(e, SpendCapped | RunStarted)]
        exits = [e for e in records if isinstance(e, TraceExited)]
        return RunView(
            workdir=self.workdir,
            task=task,
            state=state,
            finish_reason=finish.reason if finish else None,
            time_limit_s=time_limit,
            spent_s=spent,
            traces=self._traces(records, sessions, exits, finished=finish is not None),
            best=best,
            submission=submission if submission.exists() else None,
            final_selection=selections[-1] if selections else None,
            refit=refits[-1] if refits else None,
            fallback=fallbacks[-1].message if fallbacks else None,
            spend_cap=caps[-1].message if caps and isinstance(caps[-1], SpendCapped) else None,
            usage=self._usage,
            memory=list(self._memory),
            notes=[e for e in records if isinstance(e, Note)],
            exits=exits,
            sessions=sessions,
            skipped_lines=self._events.skipped + self._calls.skipped + self._memory_tail.skipped + self._invalid,
            last_activity=last_activity,
        )

    def _task(self, records: list[Any], sessions: list[RunStarted]) -> TaskInfo:
        raw = read_json_object(self.workdir / "task.json") or {}
        analyzed = next((e for e in reversed(records) if isinstance(e, TaskAnalyzed)), None)
        direction = raw.get("higher_is_better")
        if not isinstance(direction, bool):
            direction = analyzed.higher_is_better if analyzed else None
        competition = raw.get("competition_id") or (sessions[0].competition_id if sessions else None)
        return TaskInfo(
            competition_id=str(competition) if competition else None,
            metric_name=str(raw.get("metric_name") or (analyzed.metric_name if analyzed else "")) or None,
            higher_is_better=direction,
            goal=str(raw.get("goal") or ""),
            task_type=str(raw.get("task_type") or ""),
            **_scoring(raw),
        )

    def _traces(
        self, records: list[Any], sessions: list[RunStarted], exits: list[TraceExited], *, finished: bool
    ) -> list[TraceView]:
        steps: dict[int, dict[int, StepRecord]] = {}
        for e in records:
            if isinstance(e, StepRecord):
                steps.setdefault(e.trace, {})[e.step] = e  # a step recorded twice (resume) keeps its last record
        approaches = {e.trace: e.approach for e in records if isinstance(e, DraftApproach)}
        count = max([s.traces for s in sessions] + [i + 1 for i in steps] + [e.trace + 1 for e in exits] + [0])
        views = []
        for index in range(count):
            own = [steps.get(index, {})[n] for n in sorted(steps.get(index, {}))]
            last_exit = next((e for e in reversed(exits) if e.trace == index), None)
            # A folder left by a step cut off at a stop is not in progress once the trace has ended.
            ended = finished or (last_exit is not None and not last_exit.restarted)
            views.append(TraceView(
                index=index, steps=own, in_progress_step=None if ended else self._in_progress(index, own),
                exited=last_exit, draft_approach=approaches.get(index),
            ))
        return views

    def _in_progress(self, index: int, steps: list[StepRecord]) -> int | None:
        recorded = steps[-1].step if steps else 0
        try:
            numbers = [int(p.name[1:]) for p in (self.workdir / "traces" / f"t{index}").iterdir()
                       if p.name.startswith("s") and p.name[1:].isdigit()]
        except OSError:
            return None
        later = [n for n in numbers if n > recorded]
        return max(later) if later else None


def _newest_epoch(records: list[Any]) -> float | None:
    times = []
    for e in records:
        moment = epoch_of(e.ts)
        if isinstance(e, StepRecord):
            moment = step_end(e) or moment
        if moment is not None:
            times.append(moment)
    return max(times) if times else None


def _finish(records: list[Any]) -> RunFinished | None:
    """The end of the latest session, if it ended (a resumed run starts a new session after an end)."""
    for e in reversed(records):
        if isinstance(e, RunFinished):
            return e
        if isinstance(e, RunStarted):
            return None
    return None
