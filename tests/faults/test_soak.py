"""Soak: a long run at compressed time with random faults, watching memory and file descriptors.

Not in the default run (`slow`): `pytest -m slow tests/faults/test_soak.py`. Its length is
GOME_SOAK_MINUTES (default 60; 5 makes a quick check). Three trace processes take hundreds of
short steps from the scripted model while faults are injected at random: LLM errors (429 with
Retry-After, 500, reset connections, empty replies, invalid JSON), crashing, hanging and
memory-hungry solutions, and now and then a SIGKILL of a trace process. The summary (printed,
and written to GOME_SOAK_OUT or the test's temporary folder as soak.json) gives the steps, the
faults injected and seen, peak RSS of the coordinator and the traces, and open file descriptors.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from gome_agent import jsonl
from gome_agent.records.events import EventLog, TraceExited
from tests.fake_llm import FakeRequest, Reply
from tests.faults.conftest import Model, check_run, cli_args, fault_config, full, gome, solution, workers

pytestmark = pytest.mark.slow

MIB = 2**20


class FaultyModel:
    """The scripted model, with faults drawn at random (seeded) and counted."""

    def __init__(self, seed: int = 7) -> None:
        self.model = Model(accept_rate=0.5, seed=seed)
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.injected: Counter[str] = Counter()

    def _draw(self, name: str) -> Reply | str | None:
        roll = self.rng.random()
        table: list[tuple[float, str]] = [
            (0.04, "http_429"), (0.03, "http_500"), (0.02, "connection_reset"), (0.02, "empty_reply"),
        ]
        if name == "gradient":
            table.append((0.03, "invalid_json"))
        if name == "update":
            table += [(0.06, "crashing_solution"), (0.04, "hanging_solution"), (0.02, "memory_bomb")]
        edge = 0.0
        for share, kind in table:
            edge += share
            if roll < edge:
                self.injected[kind] += 1
                return self._fault(kind)
        return None

    @staticmethod
    def _fault(kind: str) -> Reply | str:
        if kind == "http_429":
            return Reply(status=429, headers={"retry-after": "0.5"})
        if kind == "http_500":
            return Reply(status=500)
        if kind == "connection_reset":
            return Reply(close_connection=True)
        if kind == "empty_reply":
            return Reply(text="")
        if kind == "invalid_json":
            return "the diagnosis, in prose rather than JSON"
        if kind == "crashing_solution":
            return full(solution(0.99, attack="raise RuntimeError('soak: crash at the end')\n"), "crash")
        if kind == "hanging_solution":
            return full(solution(0.99, attack="import time\nwhile True:\n    time.sleep(1)\n"), "hang")
        block = "block = bytearray()\nwhile len(block) < 1_500_000_000:\n    block.extend(b'x' * 50_000_000)\n"
        return full(solution(0.99, attack=block), "memory bomb")

    def __call__(self, request: FakeRequest) -> Reply | str:
        from gome_agent.bench.scripted import template_of
        from gome_agent.llm.types import Message

        name = template_of([Message(role="user", content=request.text)])
        with self.lock:
            fault = self._draw(name) if name != "task_analysis" else None
        return fault if fault is not None else self.model(request)


class Watcher(threading.Thread):
    """Samples RSS and open file descriptors of the coordinator and its trace processes."""

    def __init__(self, pid: int, events: EventLog, every_s: float = 2.0) -> None:
        super().__init__(daemon=True, name="soak-watcher")
        self.pid, self.events, self.every_s = pid, events, every_s
        self.stop = threading.Event()
        self.samples: list[dict[str, float]] = []

    def sample(self) -> dict[str, float] | None:
        try:
            coordinator = psutil.Process(self.pid)
            traces = workers(self.pid)
            return {
                "t": time.monotonic(),
                "coordinator_rss_mb": coordinator.memory_info().rss / MIB,
                "coordinator_fds": coordinator.num_fds(),
                "trace_rss_mb": max((p.memory_info().rss / MIB for p in traces), default=0.0),
                "trace_fds": max((p.num_fds() for p in traces), default=0),
                "steps": len(self.events.steps()),
            }
        except psutil.Error:
            return None

    def run(self) -> None:
        while not self.stop.wait(self.every_s):
            found = self.sample()
            if found is not None:
                self.samples.append(found)


def test_soak(world, fake_llm, tmp_path):
    minutes = float(os.environ.get("GOME_SOAK_MINUTES", "60"))
    out_path = Path(os.environ.get("GOME_SOAK_OUT", str(tmp_path / "soak.json")))
    model = FaultyModel()
    fake_llm.set_responder(model)
    config = fault_config(
        world, fake_llm, time_limit_s=minutes * 60, traces=3,
        optimizer={"max_steps": None, "max_debug": 1, "diversify_wait_s": 5},
        execution={"max_run_minutes": 0.05, "memory_limit_gb": 0.5},
        llm={"max_attempts": 4},
    )
    events = EventLog(world.workdir / "events.jsonl")
    started = time.monotonic()
    proc = gome(cli_args(config, world.base / "gome.json"))
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    watcher = Watcher(proc.pid, events)
    watcher.start()
    # Now and then a trace process is SIGKILLed, round-robin, fewer times per trace than the restart limit.
    kills = min(12, max(3, int(minutes // 5)))
    interval = minutes * 60 / (kills + 1)
    killed = 0
    for number in range(kills):
        if proc.poll() is not None:
            break
        time.sleep(max(0.0, started + interval * (number + 1) - time.monotonic()))
        victims = [p for p in workers(proc.pid) if p.cmdline()[-3] == str(number % 3)]
        for victim in victims:
            victim.send_signal(signal.SIGKILL)
            killed += 1
    proc.wait(timeout=minutes * 60 + 300)
    reader.join(10)
    watcher.stop.set()
    watcher.join(10)
    took = time.monotonic() - started
    verdict = check_run(world, reason="budget spent", output="".join(output), process_timeout=30)
    steps = verdict.steps
    calls = list(jsonl.iter_raw(world.workdir / "llm_calls.jsonl"))
    exits = [e for e in events.read() if isinstance(e, TraceExited)]
    samples = watcher.samples
    quarter = [s for s in samples if s["steps"] >= len(steps) / 4] or samples
    summary = {
        "minutes": minutes,
        "wall_s": round(took, 1),
        "steps": len(steps),
        "steps_by_status": dict(Counter(s.status for s in steps)),
        "runs_by_outcome": dict(Counter(s.run_status or "not run" for s in steps)),
        "llm_calls": len(calls),
        "llm_calls_retried": sum(c["attempts"] > 1 for c in calls),
        "llm_calls_failed": sum(c["status"] != "ok" for c in calls),
        "faults_injected": {**dict(model.injected), "trace_sigkill": killed},
        "trace_restarts": sum(e.restarted for e in exits),
        "best_score": verdict.best.score if verdict.best else None,
        "peak_rss_mb": {"coordinator": round(max(s["coordinator_rss_mb"] for s in samples), 1),
                        "coordinator_at_quarter": round(quarter[0]["coordinator_rss_mb"], 1),
                        "trace": round(max(s["trace_rss_mb"] for s in samples), 1)},
        "open_fds": {"coordinator_at_quarter": quarter[0]["coordinator_fds"],
                     "coordinator_at_end": samples[-1]["coordinator_fds"],
                     "coordinator_max": max(s["coordinator_fds"] for s in samples),
                     "trace_max": max(s["trace_fds"] for s in samples)},
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    assert proc.returncode == 0
    assert took < minutes * 60 + 120
    assert len(steps) >= 20 * minutes
    assert summary["trace_restarts"] == killed
    assert sum(model.injected.values()) > 0 and summary["llm_calls_retried"] > 0
    # Nothing grows with the number of steps: descriptors stay flat, memory stays small.
    assert summary["open_fds"]["coordinator_max"] <= summary["open_fds"]["coordinator_at_quarter"] + 8
    assert summary["peak_rss_mb"]["coordinator"] < 400 and summary["peak_rss_mb"]["trace"] < 400
