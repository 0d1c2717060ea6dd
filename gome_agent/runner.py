"""One `gome run`: set up the run folder, read the task, optimize, and always leave a submission.

Run folder layout:
    config.json        resolved settings (no secrets)
    task.json          the checked task
    events.jsonl       every step and event
    llm_calls.jsonl    every LLM call
    memory/            the shared success memory
    traces/t<i>/s<step>/a<attempt>/   each attempt's main.py, outputs and logs
    submission/submission.csv, code/main.py, code/best.json   the best so far
"""

from __future__ import annotations

import logging
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from gome_agent import __version__, jsonl
from gome_agent.best import BestKeeper
from gome_agent.budget import Budget
from gome_agent.config import RunConfig
from gome_agent.environment import detect_environment
from gome_agent.errors import ConfigError, GomeError, LLMFatalError, PromptError
from gome_agent.executor import Executor
from gome_agent.fallback import build_constant_submission
from gome_agent.llm.client import LLMClient, create_client
from gome_agent.momentum import SuccessMemory
from gome_agent.prompting import Prompts, check_prompts
from gome_agent.records import EventLog, FallbackWritten, Note, RunFinished, RunStarted, TaskAnalyzed
from gome_agent.sample import SampleSubmission, find_sample_submission, load_sample_submission
from gome_agent.task import Task, analyze_task, scan_competition
from gome_agent.trace import Trace

log = logging.getLogger(__name__)


class Interrupted(Exception):
    """SIGTERM or SIGINT arrived: stop stepping and finish the run cleanly."""


@dataclass
class RunSummary:
    workdir: Path
    reason: str
    best_score: float | None
    steps: int
    submission: Path | None
    fatal: bool = False


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(f"stopped by signal {signal.Signals(signum).name}")


class Run:
    """Everything one run holds; `execute` drives it from start to finish."""

    def __init__(self, config: RunConfig, *, llm: LLMClient | None = None) -> None:
        self.cfg = config
        self.workdir = config.workdir
        self.events = EventLog(self.workdir / "events.jsonl")
        self._llm = llm
        self.task: Task | None = None
        self.sample: SampleSubmission | None = None
        self.executor: Executor | None = None
        self.keeper: BestKeeper | None = None
        self.budget = Budget(config.time_limit_s, reserve_s=config.time_limit_s * config.final_reserve_fraction)

    def _prepare_folder(self) -> None:
        if self.events.path.exists():
            raise ConfigError(
                f"{self.workdir} already holds a run (events.jsonl exists); "
                "choose another --workdir or resume it with --resume"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        jsonl.write_json(self.workdir / "config.json", self.cfg.to_record())

    def _preflight(self) -> tuple[Prompts, LLMClient]:
        """Checks that must pass before a run folder is made: prompt overrides and the API key."""
        if self.cfg.prompts_dir is not None:
            _, problems = check_prompts(self.cfg.prompts_dir)
            if problems:
                raise PromptError(
                    f"the templates in {self.cfg.prompts_dir} have problems: " + "; ".join(str(p) for p in problems)
                )
        prompts = Prompts(self.cfg.prompts_dir)
        llm = self._llm or create_client(self.cfg.llm, self.workdir / "llm_calls.jsonl", context={"trace": 0})
        return prompts, llm

    def _read_task(self, llm: LLMClient, prompts: Prompts) -> Task:
        scan = scan_competition(self.cfg.data_dir)
        self.events.write(RunStarted(
            version=__version__, competition_id=scan.competition_id,
            time_limit_s=self.cfg.time_limit_s, traces=self.cfg.traces,
        ))
        task = analyze_task(llm, prompts, scan, higher_is_better=self.cfg.higher_is_better, deadline=self.budget.deadline)
        jsonl.write_json(self.workdir / "task.json", task)
        self.events.write(TaskAnalyzed(
            metric_name=task.metric_name, higher_is_better=task.higher_is_better,
            direction_source=task.direction_source,
        ))
        return task

    def execute(self) -> RunSummary:
        prompts, llm = self._preflight()
        self._prepare_folder()
        previous = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGTERM, signal.SIGINT)}
        reason = "budget spent"
        fatal = False
        steps = 0
        try:
            self.task = self._read_task(llm, prompts)
            self.keeper = BestKeeper(self.workdir, higher_is_better=self.task.higher_is_better)
            self.sample = load_sample_submission(self.task.sample_path, self.task.id_column)
            python = self.cfg.execution.python or sys.executable
            self.executor = Executor(
                data_dir=self.cfg.data_dir.resolve(), cache_dir=(self.workdir / "cache").resolve(), python=python,
                sandbox=self.cfg.execution.sandbox, network=self.cfg.execution.network,
                max_log_bytes=int(self.cfg.execution.max_log_mb * 1e6),
            )
            memory = SuccessMemory(self.workdir / "memory", half_life_steps=self.cfg.optimizer.momentum_half_life_steps)
            trace = Trace(
                index=0, config=self.cfg, task=self.task, sample=self.sample, llm=llm, prompts=prompts,
                executor=self.executor, memory=memory, keeper=self.keeper, events=self.events,
                budget=self.budget, environment=detect_environment(python).describe(),
            )
            try:
                trace.run()
            finally:
                steps = len(trace.state.steps)
            if self.cfg.optimizer.max_steps is not None and steps >= self.cfg.optimizer.max_steps:
                reason = "step limit reached"
        except Interrupted as exc:
            reason = str(exc)
        except LLMFatalError as exc:
            reason = f"stopped: {exc}"
            fatal = True
            self.events.write(Note(level="error", message=reason))
        except GomeError as exc:
            reason = f"stopped: {exc}"
            self.events.write(Note(level="error", message=reason))
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.executor is not None:
                self.executor.cancel_all()
            self._ensure_submission()
            best = self.keeper.current() if self.keeper else None
            self.events.write(RunFinished(
                reason=reason, best_score=best.score if best else None,
                best_trace=best.trace if best else None, best_step=best.step if best else None,
                steps=steps, elapsed_s=round(self.budget.elapsed(), 3),
                usage=llm.ledger.totals(),
            ))
        submission = self.workdir / "submission" / "submission.csv"
        return RunSummary(
            workdir=self.workdir, reason=reason, best_score=best.score if best else None,
            steps=steps, submission=submission if submission.exists() else None, fatal=fatal,
        )

    def _ensure_submission(self) -> None:
        """With no valid submission at the end, put the best constant one that can be built in place."""
        if self.keeper is not None and self.keeper.current() is not None:
            return
        out = self.workdir / "fallback" / "submission.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            if self.task is not None and self.sample is not None:
                message = build_constant_submission(self.task, self.sample, out)
            else:
                # The task could not even be read (say, the LLM was unreachable): the sample
                # submission itself is still a valid, if weak, submission.
                sample = find_sample_submission(self.cfg.data_dir)
                load_sample_submission(sample)
                shutil.copyfile(sample, out)
                message = f"copied the sample submission {sample.name} (the task could not be read)"
        except GomeError as exc:
            self.events.write(Note(level="error", message=f"no fallback submission could be built: {exc}"))
            return
        keeper = self.keeper or BestKeeper(self.workdir, higher_is_better=True)  # direction is unused for a fallback
        keeper.publish_fallback(out)
        self.events.write(FallbackWritten(message=f"no valid solution was found; wrote a fallback submission: {message}"))
        log.warning("no valid solution was found; wrote a fallback submission: %s", message)


def run(config: RunConfig, *, llm: LLMClient | None = None) -> RunSummary:
    started = time.monotonic()
    summary = Run(config, llm=llm).execute()
    log.info("run finished in %.0f s: %s", time.monotonic() - started, summary.reason)
    return summary
