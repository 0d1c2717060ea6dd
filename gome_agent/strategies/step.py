"""What a step works with: the run's shared services, the trace's state, and the step's meter."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gome_agent.config import RunConfig
from gome_agent.execution.executor import Executor
from gome_agent.execution.scheduler import ResourceScheduler
from gome_agent.llm.client import LLMClient, LLMTime, thread_llm_time
from gome_agent.llm.types import Completion
from gome_agent.optimizer.budget import Budget
from gome_agent.optimizer.momentum import SuccessMemory
from gome_agent.records.best import BestKeeper
from gome_agent.records.events import EventLog, StepRecord
from gome_agent.strategies.prompts import Prompts
from gome_agent.strategies.views import Failure, read_tail
from gome_agent.task.analysis import Task
from gome_agent.task.sample import SampleSubmission
from gome_agent.task.submission import read_score_table


@dataclass(frozen=True)
class Services:
    """What every trace of a run shares: the settings, the task, the LLM, the machinery that runs
    code, and the run folder's records (events, success memory, the best in place, the clock)."""

    config: RunConfig
    task: Task
    sample: SampleSubmission
    environment: str  # the environment line the prompts show
    llm: LLMClient
    prompts: Prompts
    executor: Executor
    scheduler: ResourceScheduler
    memory: SuccessMemory
    keeper: BestKeeper
    events: EventLog
    budget: Budget
    # An outside judge of validity (MLE-bench's grading server), asked after the local check passes.
    validator: Callable[[Path], str | None] | None = None


@dataclass
class FailedDraft:
    """A trace's last draft that failed, kept so that the next step can go on debugging it."""

    step: int
    code: str
    failure: Failure
    approach: str
    scaffolded: bool
    repairs: int  # repair steps already spent on this draft


@dataclass
class TraceState:
    """What a trace knows: its steps, its current best, and a failed draft still worth debugging."""

    steps: list[StepRecord] = field(default_factory=list)
    failed_draft: FailedDraft | None = None  # not kept over a resume: a resumed trace drafts afresh
    best: StepRecord | None = None
    best_code: str | None = None
    best_runtime_s: float = 0.0
    best_stdout_tail: str = ""
    best_score_table: str | None = None  # the figures the best's run reported (scores.json)

    @property
    def next_step(self) -> int:
        return len(self.steps) + 1

    @classmethod
    def restore(cls, records: list[StepRecord], workdir: Path) -> TraceState:
        """The state a trace had after its recorded steps (to resume it after a crash or a stop)."""
        state = cls(steps=sorted(records, key=lambda r: r.step))
        for record in reversed(state.steps):
            if record.accepted and record.code_dir:
                folder = workdir / record.code_dir
                try:
                    state.best_code = (folder / "main.py").read_text(encoding="utf-8")
                except OSError:
                    continue  # its files are gone; an older accepted step becomes the best
                state.best = record
                state.best_runtime_s = record.runtime_s or 0.0
                state.best_stdout_tail = read_tail(folder / "stdout.txt")
                state.best_score_table = read_score_table(folder / "scores.json")
                break
        return state


@dataclass
class Meter:
    """LLM and run time, calls and tokens spent in one step, and what gome made of its replies itself.

    LLM time is the whole wall time of the step's calls: waits for a server slot, failed attempts
    and retries, and calls that failed altogether (they return no Completion to `add`), as the
    thread's LLM clock measured them since the step began.
    """

    started: float = field(default_factory=time.monotonic)
    replies_s: float = 0.0  # latency of the completions added
    run_s: float = 0.0
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    llm_clock: LLMTime = field(default_factory=thread_llm_time)  # this thread's LLM clock when the step began
    # Replies gome used other than as asked (a script's model taken into fit_predict), as the step's auto fixes.
    auto_fixes: list[str] = field(default_factory=list)

    @property
    def llm_s(self) -> float:
        # Completions made on another thread are not on this thread's clock, so the larger figure holds.
        return max(self.replies_s, (thread_llm_time() - self.llm_clock).total_s)

    def add(self, completion: Completion) -> None:
        self.replies_s += completion.latency_s
        self.calls += 1
        self.input_tokens += completion.usage.input_tokens
        self.output_tokens += completion.usage.output_tokens
        self.cost_usd += completion.cost_usd or 0.0


class StepFailed(Exception):
    """The step could not produce code (LLM output unusable after its retries)."""
