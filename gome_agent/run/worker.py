"""One trace as its own OS process: `python -m gome_agent.run.worker OUT INDEX`.

A worker reads everything from the run folder (settings, task, budget clock,
its own recorded steps), so the coordinator can start it, and restart it after
a crash, with nothing but the folder and the trace's number. It dies with the
coordinator and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from gome_agent.config import RunConfig
from gome_agent.errors import LLMFatalError
from gome_agent.execution.executor import Executor
from gome_agent.execution.sandbox import die_with_parent
from gome_agent.execution.scheduler import FakeGpuSource, ResourceScheduler, default_source
from gome_agent.llm.client import LLMClient, create_client
from gome_agent.optimizer.momentum import SuccessMemory
from gome_agent.records import runinfo
from gome_agent.records.best import BestKeeper
from gome_agent.records.events import EventLog, Note
from gome_agent.strategies import strategy_class
from gome_agent.strategies.prompts import Prompts
from gome_agent.strategies.step import Services, TraceState
from gome_agent.strategies.trace import Trace
from gome_agent.task.analysis import Task
from gome_agent.task.grading_server import GradingServer
from gome_agent.task.holdout import INPUT_DIR, LABELS_FILE, refit_view
from gome_agent.task.sample import load_sample_submission
from gome_agent.task.scaffold import is_weak_model

log = logging.getLogger(__name__)

FATAL_EXIT = 3  # the exit code that tells the coordinator not to restart this trace


class Stopped(Exception):
    """SIGTERM: the coordinator asks this trace to stop."""


def load_config(workdir: Path) -> RunConfig:
    return RunConfig.model_validate_json((workdir / "config.json").read_text(encoding="utf-8"))


def load_task(workdir: Path) -> Task:
    return Task.model_validate_json((workdir / "task.json").read_text(encoding="utf-8"))


def make_scheduler(config: RunConfig, cpus: int) -> ResourceScheduler:
    """The run-wide resource scheduler (its state is shared through the run folder)."""
    simulated = config.execution.simulate_gpu_mb
    source = FakeGpuSource(total_mb=simulated) if simulated else default_source()
    return ResourceScheduler(config.workdir / "scheduler", source=source, cpus=cpus, slots=config.traces)


def make_executor(config: RunConfig, task: Task, *, refit: bool = False) -> Executor:
    """The executor of the run's solutions: they see the data as gome's holdout leaves it, when
    gome scores the run (task/holdout.py), with the held-out labels hidden; for the refit
    (run/refit.py), every labelled row."""
    data_dir, hidden, readable = config.data_dir.resolve(), list(config.execution.hidden_paths), []
    if task.scored_by_gome:
        assert task.holdout is not None and task.holdout.table is not None
        validation = (config.workdir / "validation").resolve()
        hidden.append(validation / LABELS_FILE)
        if refit:
            data_dir = refit_view(task.holdout, data_dir, validation)
        else:
            hidden.append(data_dir / task.holdout.table)
            data_dir = validation / INPUT_DIR
        readable = [config.data_dir.resolve()]
    return Executor(
        data_dir=data_dir, cache_dir=(config.workdir / "cache").resolve(),
        python=config.execution.python or sys.executable, sandbox=config.execution.sandbox,
        network=config.execution.network, max_log_bytes=int(config.execution.max_log_mb * 1e6),
        hidden=hidden, readable=readable,
    )


def build_trace(workdir: Path, index: int, *, llm: LLMClient | None = None,
                stop: threading.Event | None = None) -> Trace:
    """The trace `index` of the run in `workdir`, restored from its recorded steps."""
    config = load_config(workdir)
    task = load_task(workdir)
    events = EventLog(workdir / "events.jsonl")
    env = json.loads((workdir / "environment.json").read_text(encoding="utf-8"))
    services = Services(
        config=config,
        task=task,
        sample=load_sample_submission(task.sample_path, task.id_column),
        # A small model is shown only what is installed (execution/environment.py says why).
        environment=str(env.get("installed_only", env["text"]) if is_weak_model(config.llm.model_for("draft"))
                        else env["text"]),
        llm=llm or create_client(config.llm, workdir / "llm_calls.jsonl", context={"trace": index}),
        prompts=Prompts(config.prompts_dir),
        executor=make_executor(config, task),
        scheduler=make_scheduler(config, int(env["cpus"])),
        memory=SuccessMemory(workdir / "memory", half_life_steps=config.optimizer.momentum_half_life_steps),
        keeper=BestKeeper.for_run(config, higher_is_better=task.higher_is_better),
        events=events,
        budget=runinfo.load(workdir).budget(),
        validator=GradingServer(config.validation_server) if config.validation_server else None,
    )
    return Trace(index=index, services=services, strategy=strategy_class(config.strategy),
                 state=TraceState.restore(events.steps(index), workdir), stop=stop)


def _raise_stopped(signum: int, _frame: FrameType | None) -> None:
    raise Stopped(signal.Signals(signum).name)


def _die_with_parent(parent: int) -> None:
    # If the coordinator dies (even by SIGKILL), the kernel sends this trace SIGTERM.
    die_with_parent(signal.SIGTERM)
    if os.getppid() != parent:
        raise Stopped("the coordinator is already gone")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gome_agent.run.worker")
    parser.add_argument("workdir", type=Path)
    parser.add_argument("index", type=int)
    parser.add_argument("--parent", type=int, default=None, help="coordinator pid to die with")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s trace {args.index} %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    for noisy in ("httpx", "httpx2", "openai", "anthropic", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _raise_stopped)
    signal.signal(signal.SIGINT, _raise_stopped)
    trace: Trace | None = None
    try:
        if args.parent is not None:
            _die_with_parent(args.parent)
        trace = build_trace(args.workdir, args.index)
        trace.run()
    except Stopped as exc:
        log.info("stopped (%s)", exc)
    except LLMFatalError as exc:
        # Retrying cannot fix this (bad key, unknown model, no quota): restarting would not either.
        log.error("stopped: %s", exc)
        EventLog(args.workdir / "events.jsonl").write(Note(level="error", trace=args.index, message=f"stopped: {exc}"))
        return FATAL_EXIT
    finally:
        if trace is not None:
            trace.services.executor.cancel_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
