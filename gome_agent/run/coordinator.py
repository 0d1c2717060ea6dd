"""A whole run: the coordinator of K traces, from the task to the final submission.

The coordinator reads the task once, starts each trace as its own OS process
(`gome_agent.run.worker`), restarts a trace that crashes (it resumes from its
recorded steps), keeps the run's clock (`run.json`), stops the traces when the
optimization budget is spent, runs the final selection in the reserved time,
and always leaves a submission.

Run folder layout:
    config.json        resolved settings (no secrets)
    run.json           the budget clock (start, time spent, heartbeat)
    task.json          the checked task
    environment.json   hardware and packages the solutions see
    events.jsonl       every step and event of every trace
    llm_calls.jsonl    every LLM call
    memory/            the shared success memory and step clock
    scheduler/         GPU/CPU leases shared by the traces
    traces/t<i>/s<step>/a<attempt>/   each attempt's main.py, scores and logs (and, while it may be
                       submitted, its submission; the rest goes once the step is recorded)
    logs/trace<i>.log  each trace process's log
    final/             re-runs of the final selection
    submission/submission.csv, code/main.py, code/best.json   the best so far
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Protocol

from gome_agent import __version__, jsonl
from gome_agent.config import RunConfig
from gome_agent.errors import ConfigError, GomeError, LLMFatalError, PromptError
from gome_agent.execution.environment import detect_environment
from gome_agent.execution.scheduler import ResourceScheduler
from gome_agent.llm.client import LLMClient, create_client
from gome_agent.optimizer.budget import Budget
from gome_agent.records import runinfo
from gome_agent.records.best import BestKeeper
from gome_agent.records.events import (
    EventLog,
    FallbackWritten,
    Note,
    Refit,
    RunFinished,
    RunStarted,
    SpendCapped,
    TaskAnalyzed,
    TraceExited,
)
from gome_agent.records.housekeeping import free_space_problem
from gome_agent.run.refit import refit, refit_time_s
from gome_agent.run.selection import FinalSelector, pick_candidates, sized_reserve
from gome_agent.run.worker import FATAL_EXIT, build_trace, load_config, load_task, make_executor, make_scheduler
from gome_agent.strategies.prompts import Prompts, check_prompts
from gome_agent.task.analysis import Task, analyze_task
from gome_agent.task.fallback import build_constant_submission
from gome_agent.task.folds import plan_folds
from gome_agent.task.holdout import held_ids, holdout_scorer, plan_holdout
from gome_agent.task.profile import profile_tables
from gome_agent.task.sample import SampleSubmission, find_sample_submission, load_sample_submission, write_plain_sample
from gome_agent.task.scaffold import plan_scaffold
from gome_agent.task.scan import competition_id_of, scan_competition
from gome_agent.views.progress import Progress

log = logging.getLogger(__name__)

MAX_RESTARTS = 5          # per trace: beyond this a crash loop is not worth the budget
STOP_GRACE_S = 60.0       # after the budget, how long traces get to finish before SIGTERM
HEARTBEAT_S = 5.0
RESERVE_CHECK_S = 15.0     # how often the final selection's reserve is sized again from the candidates


class Interrupted(Exception):
    """SIGTERM or SIGINT arrived: stop the traces and finish the run cleanly."""


@dataclass
class RunSummary:
    workdir: Path
    reason: str
    best_score: float | None
    steps: int
    submission: Path | None
    fatal: bool = False
    interrupted: bool = False  # stopped by SIGTERM or SIGINT before its budget was spent


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(f"stopped by signal {signal.Signals(signum).name}")


# Launching traces -----------------------------------------------------------------

class TraceHandle(Protocol):
    def poll(self) -> int | None: ...
    def failure(self) -> str | None: ...
    def stop(self) -> None: ...
    def kill(self) -> None: ...


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b")


def _last_error_line(log_path: Path) -> str | None:
    """The exception that ends a crashed worker's log (its traceback's last line), if it ends on one."""
    try:
        with open(log_path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
            lines = [line.strip() for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return None
    return lines[-1][:300] if lines and _EXCEPTION_LINE.match(lines[-1]) else None


class _ProcessHandle:
    def __init__(self, workdir: Path, index: int) -> None:
        logs = workdir / "logs"
        logs.mkdir(exist_ok=True)
        self._log_path = logs / f"trace{index}.log"
        self._log = open(self._log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gome_agent.run.worker", str(workdir), str(index), "--parent", str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def poll(self) -> int | None:
        code = self.proc.poll()
        if code is not None:
            self._log.close()
        return code

    def failure(self) -> str | None:
        code = self.proc.poll()
        if code is not None and code < 0:
            return f"killed by {signal.Signals(-code).name}" if -code in signal.valid_signals() else f"signal {-code}"
        return _last_error_line(self._log_path)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


class _ThreadHandle:
    """A trace in a thread of this process, sharing one LLM client (tests, in-process benchmarks)."""

    def __init__(self, workdir: Path, index: int, llm: LLMClient) -> None:
        self._stop = threading.Event()
        self._code: int | None = None
        self._failure: str | None = None
        self._trace = build_trace(workdir, index, llm=llm, stop=self._stop)
        self._thread = threading.Thread(target=self._run, name=f"trace{index}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._trace.run()
            self._code = 0
        except LLMFatalError as exc:
            log.error("trace %d stopped: %s", self._trace.index, exc)
            self._code = FATAL_EXIT
        except Exception as exc:
            log.exception("trace %d crashed", self._trace.index)
            where = traceback.extract_tb(exc.__traceback__)[-1]
            self._failure = f"{type(exc).__name__}: {exc} ({Path(where.filename).name}:{where.lineno})"[:300]
            self._code = 1

    def poll(self) -> int | None:
        return None if self._thread.is_alive() else self._code

    def failure(self) -> str | None:
        return self._failure

    def stop(self) -> None:
        self._stop.set()

    def kill(self) -> None:
        self._stop.set()
        self._trace.executor.cancel_all()
        self._thread.join(30)


# The coordinator --------------------------------------------------------------------

class Run:
    """Everything one run holds; `execute` drives it from start to finish."""

    def __init__(self, config: RunConfig, *, llm: LLMClient | None = None, resume: bool = False) -> None:
        self.cfg = config
        self.workdir = config.workdir
        self.resume = resume
        self.events = EventLog(self.workdir / "events.jsonl")
        self._llm = llm
        self.task: Task | None = None
        self.sample: SampleSubmission | None = None
        self.keeper: BestKeeper | None = None
        self.info: runinfo.RunInfo | None = None
        self.handles: dict[int, TraceHandle] = {}
        self._restarts: dict[int, int] = {}

    # Set-up -----------------------------------------------------------------------
    def _preflight(self) -> tuple[Prompts, LLMClient]:
        """Checks that must pass before the run folder is touched: prompt overrides and the API key."""
        if self.cfg.prompts_dir is not None:
            _, problems = check_prompts(self.cfg.prompts_dir)
            if problems:
                raise PromptError(
                    f"the templates in {self.cfg.prompts_dir} have problems: " + "; ".join(str(p) for p in problems)
                )
        prompts = Prompts(self.cfg.prompts_dir)
        llm = self._llm or create_client(self.cfg.llm, self.workdir / "llm_calls.jsonl", context={"trace": None})
        return prompts, llm

    def _prepare_folder(self) -> None:
        if self.resume:
            if not (self.workdir / "task.json").exists():
                raise ConfigError(f"{self.workdir} holds no run that got far enough to resume (task.json is missing)")
            return
        if self.events.path.exists():
            raise ConfigError(
                f"{self.workdir} already holds a run (events.jsonl exists); "
                "choose another --workdir or continue it with --resume"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        jsonl.write_json(self.workdir / "config.json", self.cfg.to_record())

    def _fit_traces(self, llm: LLMClient) -> Note | None:
        """Fit the number of traces to the requests the LLM server serves at once (its reported slots,
        or `llm.max_concurrent`): more traces than that only queue behind each other for it. Without
        a `traces` setting, traces = min(traces, that number); an explicit setting is kept, and the
        note says its traces will queue. The decision goes into config.json; the note says why."""
        if llm.gate is None:
            return None
        state = llm.gate.state()
        if state.limit is None or state.limit >= self.cfg.traces:
            return None
        where = f"the LLM server at {state.base_url} serves {state.limit} request(s) at a time ({state.detail})"
        if "traces" in self.cfg.model_fields_set:
            return Note(level="warning", message=f"{where}; the {self.cfg.traces} traces set explicitly will queue "
                                                 "for it, and their waiting counts as LLM time")
        message = (f"{where}: running {state.limit} trace(s) instead of {self.cfg.traces}, since more would only "
                   "queue for it (set traces explicitly to run more)")
        self.cfg = self.cfg.model_copy(update={"traces": state.limit})
        jsonl.write_json(self.workdir / "config.json", self.cfg.to_record())
        log.info("%s", message)
        return Note(level="info", message=message)

    def _read_task(self, llm: LLMClient, prompts: Prompts) -> Task:
        if self.resume:
            return load_task(self.workdir)
        scan = scan_competition(self.cfg.data_dir, competition_id=os.environ.get("COMPETITION_ID") or None,
                                description_path=self.cfg.description_path)
        task = analyze_task(llm, prompts, scan, higher_is_better=self.cfg.higher_is_better,
                            deadline=time.time() + self.cfg.time_limit_s)
        out = self.workdir / "validation"
        validation = self.cfg.validation
        holdout = plan_holdout(
            scan, metric_name=task.metric_name, id_column=task.id_column, target_columns=task.target_columns,
            task_type=task.task_type, sample=load_sample_submission(task.sample_path, task.id_column),
            fraction=validation.holdout_fraction if validation.scoring == "gome" else 0.0,
            max_rows=validation.holdout_max_rows,
            min_rows=validation.holdout_min_rows, seed=self.cfg.seed, out=out)
        held = held_ids(out, task.id_column) if holdout.available else frozenset()
        folds = plan_folds(scan, id_column=task.id_column, target_columns=task.target_columns,
                           task_type=task.task_type, seeds=[self.cfg.seed, *self.cfg.final_seeds], out=out,
                           exclude=held)
        scaffold = plan_scaffold(scan, id_column=task.id_column, folds=folds, holdout=holdout)
        task = task.model_copy(update={"data_profile": profile_tables(scan, task), "folds": folds, "holdout": holdout,
                                       "scaffold": scaffold})
        jsonl.write_json(self.workdir / "task.json", task)
        if task.analysis_source == "files":
            self._record(Note(level="warning", message=(
                "the model's task analysis could not be used, so gome read the task from the files: metric "
                f"{task.metric_name} ({task.direction_word()}), predictions {', '.join(task.target_columns[:5])}"
                f"{' ...' if len(task.target_columns) > 5 else ''}, {task.task_type}")))
        self._record(Note(level="info" if holdout.available else "warning", message=task.scoring_note()))
        self._record(Note(level="info" if folds.available else "warning",
                          message=("validation folds: " if folds.available else "no validation folds: ") + folds.reason))
        if self.cfg.optimizer.scaffold != "off":
            self._record(Note(level="info", message=("drafts can be scaffolded: " if scaffold.available else
                                                     "no scaffold for drafts: ") + scaffold.reason))
        self.events.write(TaskAnalyzed(
            metric_name=task.metric_name, higher_is_better=task.higher_is_better,
            direction_source=task.direction_source,
        ))
        return task

    def _write_environment(self) -> None:
        python = self.cfg.execution.python or sys.executable
        env = detect_environment(python)
        jsonl.write_json(self.workdir / "environment.json", {
            "text": env.describe(), "installed_only": env.describe(name_absent=False), "cpus": env.cpus,
            "gpus": [g.__dict__ for g in env.gpus]})

    # The run ----------------------------------------------------------------------
    def execute(self) -> RunSummary:
        prompts, llm = self._preflight()
        self._prepare_folder()
        fitted = None if self.resume else self._fit_traces(llm)
        previous = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGTERM, signal.SIGINT)}
        reason = "budget spent"
        fatal = interrupted = False
        try:
            if self.resume:
                self.info = runinfo.resume(self.workdir, self.cfg.time_limit_s)
            else:
                self.info = runinfo.start(self.workdir, self.cfg.time_limit_s,
                                          self.cfg.time_limit_s * self.cfg.final_reserve_fraction)
            self.events.write(RunStarted(
                version=__version__, competition_id=self._competition_id(), time_limit_s=self.cfg.time_limit_s,
                traces=self.cfg.traces, resumed=self.resume, spent_before_s=self.info.spent_before_s,
            ))
            if fitted is not None:
                self._record(fitted)
            if (short := free_space_problem(self.workdir, self.cfg.execution.min_free_disk_gb)) is not None:
                self._record(Note(level="warning", message=f"{short}: solution runs wait until space is freed"))
            self.task = self._read_task(llm, prompts)
            self.keeper = BestKeeper.for_run(self.cfg, higher_is_better=self.task.higher_is_better)
            self.sample = load_sample_submission(self.task.sample_path, self.task.id_column)
            if not (self.workdir / "environment.json").exists():
                self._write_environment()
            reason = self._optimize(llm)
            self._final_selection()
            self._refit()
        except Interrupted as exc:
            reason, interrupted = str(exc), True
        except LLMFatalError as exc:
            reason = f"stopped: {exc}"
            fatal = True
            self._record(Note(level="error", message=reason))
        except GomeError as exc:
            reason = f"stopped: {exc}"
            self._record(Note(level="error", message=reason))
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._stop_traces()
            self._ensure_submission()
            best = self.keeper.current() if self.keeper else None
            steps = len(self.events.steps())
            self._beat()
            self._record(RunFinished(
                reason=reason, best_score=best.score if best else None,
                best_trace=best.trace if best else None, best_step=best.step if best else None,
                steps=steps, elapsed_s=round(self.info.spent_s(), 3) if self.info else 0.0,
                usage=self._usage(llm),
            ))
        submission = self.workdir / "submission" / "submission.csv"
        return RunSummary(
            workdir=self.workdir, reason=reason, best_score=best.score if best else None,
            steps=steps, submission=submission if submission.exists() else None, fatal=fatal,
            interrupted=interrupted,
        )

    def _record(self, event: Note | TraceExited | FallbackWritten | Refit | RunFinished | SpendCapped) -> None:
        """Write a coordinator event; a full disk is logged, not fatal (the best submission is already in place)."""
        try:
            self.events.write(event)
        except OSError as exc:
            log.error("could not record %s in %s: %s", event.type, self.events.path, exc)

    def _beat(self) -> None:
        if self.info is None:
            return
        try:
            self.info = runinfo.heartbeat(self.workdir, self.info)
        except OSError as exc:
            log.error("could not refresh the heartbeat in %s: %s", runinfo.path_of(self.workdir), exc)

    def _competition_id(self) -> str:
        return os.environ.get("COMPETITION_ID") or competition_id_of(self.cfg.data_dir)

    def _usage(self, llm: LLMClient) -> dict[str, object]:
        """LLM totals of the whole run, from the call log (the traces' own processes wrote most of it)."""
        calls = list(jsonl.iter_raw(self.workdir / "llm_calls.jsonl"))
        if not calls:
            return llm.ledger.totals()
        return {
            "calls": len(calls),
            "input_tokens": sum(int(c.get("input_tokens") or 0) for c in calls),
            "output_tokens": sum(int(c.get("output_tokens") or 0) for c in calls),
            "cost_usd": round(sum(float(c.get("cost_usd") or 0.0) for c in calls), 6),
        }

    def _start_trace(self, index: int, llm: LLMClient) -> TraceHandle:
        if self._llm is not None:
            return _ThreadHandle(self.workdir, index, self._llm)
        return _ProcessHandle(self.workdir, index)

    def _optimize(self, llm: LLMClient) -> str:
        """Run the traces until the optimization budget is spent or every trace has ended."""
        assert self.info is not None
        budget = self.info.budget()
        self._restarts = dict.fromkeys(range(self.cfg.traces), 0)
        self.handles = {i: self._start_trace(i, llm) for i in range(self.cfg.traces)}
        last_beat = last_sized = time.monotonic()
        reserve = budget.reserve_s
        stop_sent = False
        fatal_exits = 0
        with Progress(self.workdir) as progress:
            while self.handles:
                time.sleep(0.5)
                progress.update()
                fatal_exits += self._reap(llm, budget, restart_allowed=not stop_sent)
                if time.monotonic() - last_beat >= HEARTBEAT_S:
                    self._beat()
                    last_beat = time.monotonic()
                if time.monotonic() - last_sized >= RESERVE_CHECK_S:
                    reserve = self._sized_reserve(budget)
                    last_sized = time.monotonic()
                if not stop_sent and budget.elapsed() > budget.time_limit_s - reserve + STOP_GRACE_S:
                    log.info("optimization budget spent; stopping the traces")
                    for handle in self.handles.values():
                        handle.stop()
                    stop_sent = True
        if fatal_exits == self.cfg.traces:
            raise LLMFatalError("every trace stopped on an LLM error that retrying cannot fix; see events.jsonl")
        capped = llm.spend_capped()
        if capped is not None:
            self._record(SpendCapped(message=capped))
            return f"LLM spend cap reached: {capped}"
        if self.cfg.optimizer.max_steps is not None and all(
            len(self.events.steps(i)) >= self.cfg.optimizer.max_steps for i in range(self.cfg.traces)
        ):
            return "step limit reached"
        return "budget spent"

    def _sized_reserve(self, budget: Budget) -> float:
        """The final selection's reserve: what re-running the current candidates needs, as measured by
        their run times, between the configured share of the budget and `final_reserve_max_fraction`."""
        if budget.reserve_s <= 0 or self.task is None:
            return budget.reserve_s
        candidates = pick_candidates(self.events.steps(), self.task, self.cfg.final_candidates)
        ceiling = self.cfg.time_limit_s * self.cfg.final_reserve_max_fraction
        # The traces are stopped STOP_GRACE_S into the reserve, and take a moment to go.
        reserve = sized_reserve(candidates, self.cfg.final_seeds, self.cfg.traces, configured_s=budget.reserve_s,
                                ceiling_s=ceiling, stop_s=STOP_GRACE_S + 15.0)
        if self.cfg.validation.refit and self.task.scored_by_gome and candidates:
            # The refit comes after the re-runs; the slowest candidate may be the one chosen.
            reserve += refit_time_s(max(c.runtime_s or 0.0 for c in candidates))
        return min(reserve, max(budget.reserve_s, ceiling))

    def _reap(self, llm: LLMClient, budget: Budget, *, restart_allowed: bool) -> int:
        """Record the traces that ended, restart the ones that crashed; returns how many stopped fatally."""
        fatal = 0
        for index, handle in list(self.handles.items()):
            code = handle.poll()
            if code is None:
                continue
            del self.handles[index]
            crashed = code not in (0, FATAL_EXIT)
            fatal += code == FATAL_EXIT
            restart = (crashed and restart_allowed and self._restarts[index] < MAX_RESTARTS
                       and budget.remaining() >= self.cfg.execution.min_run_seconds)
            why = (handle.failure() if crashed else None) or f"exit code {code}"
            self._record(TraceExited(
                trace=index, exit_code=code, restarted=restart,
                message=(f"crashed ({why}); restarting from its recorded steps" if restart
                         else f"crashed ({why})" if crashed else "finished"),
            ))
            if restart:
                self._restarts[index] += 1
                log.warning("trace %d crashed (%s); restarting it", index, why)
                self.handles[index] = self._start_trace(index, llm)
        return fatal

    def _stop_traces(self) -> None:
        for handle in self.handles.values():
            handle.stop()
        deadline = time.monotonic() + 15.0
        while self.handles and time.monotonic() < deadline:
            self.handles = {i: h for i, h in self.handles.items() if h.poll() is None}
            time.sleep(0.2)
        for handle in self.handles.values():
            handle.kill()
        self.handles = {}

    def _final_selection(self) -> None:
        assert self.info is not None and self.task is not None and self.sample is not None and self.keeper is not None
        budget = self.info.budget()
        if self.cfg.final_reserve_fraction <= 0 or budget.remaining_total() < self.cfg.execution.min_run_seconds:
            return
        FinalSelector(
            workdir=self.workdir, task=self.task, sample=self.sample, executor=make_executor(self.cfg, self.task),
            scheduler=self._end_scheduler(), keeper=self.keeper, events=self.events,
            budget=budget, seeds=self.cfg.final_seeds, limit=self.cfg.final_candidates, slots=self.cfg.traces,
            scorer=holdout_scorer(self.task.holdout, self.workdir / "validation", id_column=self.task.id_column,
                                  tolerance_se=self.cfg.validation.tolerance_se,
                                  tolerance_relative=self.cfg.validation.tolerance_relative),
            tidy=self.cfg.execution.keep_outputs == "needed",
        ).run()

    def _end_scheduler(self) -> ResourceScheduler:
        """The scheduler of the runs at the end (final re-runs, refit), with the cores the solutions see."""
        cpus = json.loads((self.workdir / "environment.json").read_text(encoding="utf-8"))["cpus"]
        return make_scheduler(self.cfg, int(cpus))

    def _refit(self) -> None:
        """Train the chosen solution on every labelled row and submit that (run/refit.py)."""
        assert self.info is not None and self.task is not None and self.sample is not None and self.keeper is not None
        best = self.keeper.current()
        if not self.cfg.validation.refit or best is None:
            return
        runtime = next((s.runtime_s for s in self.events.steps(best.trace) if s.step == best.step), None)
        event = refit(workdir=self.workdir, task=self.task, sample=self.sample,
                      executor=make_executor(self.cfg, self.task, refit=True),
                      scheduler=self._end_scheduler(), keeper=self.keeper,
                      budget=self.info.budget(), seed=self.cfg.seed, runtime_s=runtime)
        if event is not None:
            self._record(event)

    def _ensure_submission(self) -> None:
        """With no valid submission at the end, put the best constant one that can be built in place."""
        if self.keeper is not None and self.keeper.current() is not None:
            return
        out = self.workdir / "fallback" / "submission.csv"
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            if self.task is not None and self.sample is not None:
                message = build_constant_submission(self.task, self.sample, out)
            else:
                # The task could not even be read (say, the LLM was unreachable): the sample
                # submission itself is still a valid, if weak, submission.
                sample = find_sample_submission(self.cfg.data_dir)
                load_sample_submission(sample)
                write_plain_sample(sample, out)
                message = f"copied the sample submission {sample.name} (the task could not be read)"
        except (GomeError, OSError) as exc:
            self._record(Note(level="error", message=f"no fallback submission could be built: {exc}"))
            return
        keeper = self.keeper or BestKeeper.for_run(self.cfg, higher_is_better=True)  # direction is unused for a fallback
        keeper.publish_fallback(out)
        self._record(FallbackWritten(message=f"no valid solution was found; wrote a fallback submission: {message}"))
        log.warning("no valid solution was found; wrote a fallback submission: %s", message)


def run(config: RunConfig, *, llm: LLMClient | None = None) -> RunSummary:
    """Start a run. With `llm`, the traces run as threads sharing that client (tests, benchmarks)."""
    started = time.monotonic()
    summary = Run(config, llm=llm).execute()
    log.info("run finished in %.0f s: %s", time.monotonic() - started, summary.reason)
    return summary


def resume(workdir: Path, *, time_limit_s: float | None = None, llm: LLMClient | None = None) -> RunSummary:
    """Continue an interrupted run from its folder, with the budget it had left."""
    config = load_config(workdir)
    if time_limit_s is not None:
        config = config.model_copy(update={"time_limit_s": time_limit_s})
    return Run(config, llm=llm, resume=True).execute()
