"""Process and host faults: killed traces and coordinators, the container's SIGTERM, a full disk, a clock jump."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from gome_agent.llm.retry import RetryLoop
from gome_agent.optimizer.budget import Budget
from gome_agent.records import runinfo
from gome_agent.records.events import EventLog, RunFinished, TraceExited
from tests.faults.conftest import (
    ROOT,
    Model,
    check_run,
    cli_args,
    fault_config,
    full,
    gome,
    run_in_process,
    solution,
    wait_for,
    workers,
)

pytestmark = pytest.mark.faults

DRAFT_SCORE = 0.70


def _gone(procs: list[psutil.Process]) -> bool:
    return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs)


def test_sigkill_of_a_trace_process_restarts_it_from_its_recorded_steps(world, fake_llm):
    fake_llm.set_responder(Model(delay_s=0.3))
    config = fault_config(world, fake_llm, traces=2, optimizer={"max_steps": 4})
    proc = gome(cli_args(config, world.base / "gome.json"))
    events = EventLog(world.workdir / "events.jsonl")
    wait_for(lambda: len(events.steps(1)) >= 1, what="trace 1's first step")
    [victim] = [p for p in workers(proc.pid) if p.cmdline()[-3] == "1"]
    victim.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    verdict = check_run(world, reason="step limit reached", output=out, output_has=("run finished (step limit reached)",),
                        best_at_least=DRAFT_SCORE)
    exits = [e for e in events.read() if isinstance(e, TraceExited) and e.trace == 1]
    assert exits[0].restarted and exits[0].exit_code == -9
    assert exits[0].message == "crashed (killed by SIGKILL); restarting from its recorded steps"
    assert [s.step for s in verdict.steps if s.trace == 1] == [1, 2, 3, 4]  # none repeated, none skipped


def test_sigkill_of_the_coordinator_then_resume_continues_with_the_budget_left(world, fake_llm):
    fake_llm.set_responder(Model(delay_s=0.3))
    config = fault_config(world, fake_llm, traces=2, optimizer={"max_steps": 4})
    proc = gome(cli_args(config, world.base / "gome.json"))
    events = EventLog(world.workdir / "events.jsonl")
    wait_for(lambda: sum(s.accepted for s in events.steps()) >= 3, what="three accepted steps")
    traces = workers(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    # The traces die with their coordinator, and so do their solutions.
    wait_for(lambda: _gone(traces), 20, what="the traces to die with the coordinator")
    best_before = max(s.score for s in events.steps() if s.accepted)
    done_before = {(s.trace, s.step) for s in events.steps()}
    resumed = gome(["run", "--resume", str(world.workdir)])
    out, _ = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, out
    verdict = check_run(world, reason="step limit reached", output=out, best_at_least=best_before)
    assert sorted((s.trace, s.step) for s in verdict.steps) == [(t, i) for t in range(2) for i in range(1, 5)]
    assert done_before <= {(s.trace, s.step) for s in verdict.steps}
    info = runinfo.load(world.workdir)
    assert info.sessions == 2 and info.spent_before_s > 0
    assert verdict.finished is not None and verdict.finished.steps == 8


def test_sigterm_from_the_container_stops_every_trace_and_leaves_the_best(world, fake_llm):
    fake_llm.set_responder(Model(delay_s=0.2))
    config = fault_config(world, fake_llm, traces=2, optimizer={"max_steps": 50})
    proc = gome(cli_args(config, world.base / "gome.json"))
    events = EventLog(world.workdir / "events.jsonl")
    wait_for(lambda: sum(s.accepted for s in events.steps()) >= 2, what="two accepted steps")
    traces = workers(proc.pid)
    assert len(traces) == 2
    best_before = max(s.score for s in events.steps() if s.accepted)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert _gone(traces)
    check_run(world, reason="stopped by signal SIGTERM", output=out, output_has=("stopped by signal SIGTERM",),
              best_at_least=best_before)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="mounting a small tmpfs in a mount namespace needs root and unshare")
def test_a_full_disk_neither_crashes_the_run_in_a_loop_nor_breaks_the_best(world, fake_llm):
    # The run folder lives on a 3 MB tmpfs (in a mount namespace of its own); step 2 fills it up.
    fill = "f = open('fill.bin', 'wb', buffering=0)\nwhile True:\n    f.write(b'x' * 4096)\n"  # to the last page
    model = Model().inject("update", full(solution(0.99, attack=fill), "fill the disk"))
    fake_llm.set_responder(model)
    disk, copy = world.base / "disk", world.base / "after"
    disk.mkdir()
    # Runs need only 0.5 MB free here (the tmpfs has 3 MB): the fill happens during a run.
    config = fault_config(world, fake_llm, workdir=disk / "run", optimizer={"max_steps": 4},
                          execution={"min_free_disk_gb": 0.0005})
    args = " ".join(shlex.quote(a) for a in cli_args(config, world.base / "gome.json"))
    # The tmpfs is seen only inside the namespace: the run folder is copied out for the checks.
    script = (f"mount -t tmpfs -o size=3m tmpfs {shlex.quote(str(disk))} && {shlex.quote(sys.executable)} "
              f"-m gome_agent {args}; code=$?; cp -a {shlex.quote(str(disk / 'run'))} {shlex.quote(str(copy))}; "
              "exit $code")
    proc = subprocess.Popen(["unshare", "--mount", "sh", "-c", script], cwd=ROOT, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    verdict = check_run(world, workdir=copy, reason="step limit reached", best_at_least=DRAFT_SCORE, output=out,
                        output_has=("run finished (step limit reached)",))
    assert "Traceback" not in out, out
    # The step that filled the disk could not be recorded: its trace stopped once, and when restarted
    # it dropped that step's folder (and the space it took) and went on.
    exits = [e for e in EventLog(copy / "events.jsonl").read() if isinstance(e, TraceExited)]
    assert [(e.exit_code, e.restarted) for e in exits] == [(1, True), (0, False)]
    assert "No space left on device" in exits[0].message  # the crash says why in the run's own record
    assert "No space left on device" in (copy / "logs" / "trace0.log").read_text()
    assert not list(copy.rglob("fill.bin"))
    assert [s.step for s in verdict.steps] == [1, 2, 3, 4]


def test_a_trace_thread_that_raises_is_restarted_and_the_event_names_the_exception(world, fake_llm, monkeypatch):
    from gome_agent.strategies.trace import Trace
    fake_llm.set_responder(Model())
    real_step, raised = Trace.step, []

    def step_once_broken(self: Trace):
        if len(self.state.steps) == 1 and not raised:
            raised.append(True)
            raise RuntimeError("a bug in step 2")
        return real_step(self)

    monkeypatch.setattr(Trace, "step", step_once_broken)
    run_in_process(fault_config(world, fake_llm))
    verdict = check_run(world, reason="step limit reached", best_at_least=DRAFT_SCORE)
    [crash, end] = [e for e in EventLog(world.workdir / "events.jsonl").read() if isinstance(e, TraceExited)]
    assert crash.restarted and crash.exit_code == 1 and end.message == "finished"
    assert crash.message.startswith("crashed (RuntimeError: a bug in step 2 (test_process.py:")
    assert [s.step for s in verdict.steps] == [1, 2, 3]


class JumpingClock:
    """time.time with an offset that a test moves mid-run, as NTP or a resumed VM would."""

    def __init__(self, real=time.time) -> None:
        self.real = real
        self.offset = 0.0

    def __call__(self) -> float:
        return self.real() + self.offset


@pytest.mark.parametrize("jump_s", [-3600.0, 3600.0], ids=["back-an-hour", "forward-an-hour"])
def test_a_clock_jump_mid_run_ends_the_run_sanely_and_on_time(world, fake_llm, monkeypatch, jump_s):
    clock = JumpingClock()
    monkeypatch.setattr(time, "time", clock)
    # Budgets and retry loops bound time.time when their module was loaded: they get the jumping one too.
    monkeypatch.setitem(Budget.__init__.__kwdefaults__, "clock", clock)
    monkeypatch.setitem(RetryLoop.__init__.__kwdefaults__, "clock", clock)
    fake_llm.set_responder(Model(delay_s=0.2))
    config = fault_config(world, fake_llm, time_limit_s=20, optimizer={"max_steps": None})
    events = EventLog(world.workdir / "events.jsonl")

    done = threading.Event()

    def jump() -> None:
        wait_for(lambda: any(s.accepted for s in events.steps()), what="the first accepted step")
        clock.offset = jump_s
        if not done.wait(45):
            clock.offset = 0.0  # a run fooled by the jump would go on for an hour: end it, and fail below

    jumper = threading.Thread(target=jump, daemon=True)
    jumper.start()
    started = time.monotonic()
    summary = run_in_process(config)
    took = time.monotonic() - started
    done.set()
    jumper.join(5)
    verdict = check_run(world, reason="budget spent", best_at_least=DRAFT_SCORE)
    assert took < 20 + 15, took  # never past the limit by more than a step's wind-down
    assert summary.best_score is not None
    assert all(s.duration_s >= 0 and (s.runtime_s or 0) >= 0 for s in verdict.steps)
    if jump_s > 0:
        assert took < 15  # a clock set forward ends the run early, never late
    finished = [e for e in events.read() if isinstance(e, RunFinished)]
    assert finished[-1].elapsed_s >= 0
