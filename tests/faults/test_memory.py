"""Stress of the shared success memory: many processes appending and ticking the step clock at once."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from gome_agent.optimizer.momentum import MemoryEntry, SuccessMemory

pytestmark = pytest.mark.faults

PROCESSES = 8
APPENDS = 1000


def _hammer(folder: str, trace: int, start: multiprocessing.synchronize.Event) -> None:
    memory = SuccessMemory(Path(folder))
    start.wait()
    for _ in range(APPENDS):
        tick = memory.tick()
        # The tick goes into `step`: across all processes every tick must show up exactly once.
        memory.record(trace=trace, step=tick, hypothesis=f"idea {tick} of process {trace}", component="model",
                      problem="contention " * 5, score=tick / 1e4, gain=None)


def test_eight_processes_append_and_tick_a_thousand_times_each(tmp_path):
    context = multiprocessing.get_context("fork")
    start = context.Event()
    procs = [context.Process(target=_hammer, args=(str(tmp_path), i, start)) for i in range(PROCESSES)]
    for proc in procs:
        proc.start()
    began = time.monotonic()
    start.set()
    for proc in procs:
        proc.join(120)
    took = time.monotonic() - began
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    lines = (tmp_path / "successes.jsonl").read_text(encoding="utf-8").splitlines()
    entries = [MemoryEntry.model_validate_json(line) for line in lines]  # every line whole and parseable
    total = PROCESSES * APPENDS
    assert len(entries) == total
    assert len({e.id for e in entries}) == total
    assert sorted(e.step for e in entries) == list(range(1, total + 1))  # no tick lost or given twice
    for trace in range(PROCESSES):
        mine = [e.step for e in entries if e.trace == trace]
        assert len(mine) == APPENDS and mine == sorted(mine)  # each process's appends in its order
    memory = SuccessMemory(tmp_path)
    assert memory.now() == total
    assert len(memory.entries()) == total
    assert json.loads((tmp_path / "clock.json").read_text()) == {"steps": total}
    assert took < 60, took
