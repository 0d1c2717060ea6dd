"""`gome bench scheduler`: how well K traces keep one GPU (or the CPU workers) busy.

The coordinator runs with a scripted LLM that answers after a set delay and
solutions that are real training loops of a set length: a PyTorch MLP on the GPU
when one is visible, a NumPy gradient-descent loop on the CPU otherwise. From the
scheduler's lease log it measures the busy fraction (share of the wall time in
which at least one solution was running), experiments per hour, and compares
them with the ideal busy fraction min(1, K * run / (run + LLM time per step)).

A second phase runs two traces whose solutions each need 60% of the GPU's
memory: the scheduler must never let them overlap (on a real GPU they would
crash each other), and on a real GPU a control launches two of them at once
without the scheduler to show the crash it prevents. Without a GPU, the memory
is simulated (a 16 GiB card) and only the leases are checked.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gome_agent import jsonl
from gome_agent.bench.competitions import build_breast_cancer
from gome_agent.bench.overhead import ANALYSIS
from gome_agent.bench.scripted import ScriptedPolicy
from gome_agent.config import RunConfig
from gome_agent.execution.executor import Executor, RunSpec
from gome_agent.execution.scheduler import NvmlSource, default_source
from gome_agent.llm.client import LLMClient
from gome_agent.llm.config import LLMConfig
from gome_agent.llm.providers.scripted import ScriptedProvider
from gome_agent.records.events import EventLog
from gome_agent.run.coordinator import run

SIMULATED_GPU_MB = 16_000

_TAIL = '''
test = pd.read_csv("input/test.csv")
pd.DataFrame({{"id": test["id"], "target": 0.25}}).to_csv("submission.csv", index=False)
json.dump({{"score": SCORE, "epochs": epochs}}, open("scores.json", "w"))
print("epochs", epochs, "score", SCORE)
'''

CPU_LOOP = '''# gome: cpu
import json, os, time
import numpy as np
import pandas as pd

SCORE = {score:.6f}
RUN_SECONDS = {seconds}
rng = np.random.default_rng(int(os.environ.get("GOME_SEED", "0")))
X = rng.standard_normal((4096, 128))
y = X @ rng.standard_normal(128) + 0.1 * rng.standard_normal(4096)
w = np.zeros(128)
start, epochs = time.time(), 0
while time.time() - start < RUN_SECONDS:
    w -= 0.01 * X.T @ (X @ w - y) / len(y)
    epochs += 1
''' + _TAIL

GPU_LOOP = '''# gome: gpu {gb}GB
import json, os, time
import pandas as pd
import torch

SCORE = {score:.6f}
RUN_SECONDS = {seconds}
MEMORY_GB = {hold_gb}
torch.manual_seed(int(os.environ.get("GOME_SEED", "0")))
device = "cuda"
held = torch.empty(int(MEMORY_GB * 2**30) // 4, dtype=torch.float32, device=device)  # activations and buffers
model = torch.nn.Sequential(torch.nn.Linear(2048, 4096), torch.nn.ReLU(), torch.nn.Linear(4096, 1)).to(device)
opt = torch.optim.SGD(model.parameters(), lr=1e-3)
x, target = torch.randn(8192, 2048, device=device), torch.randn(8192, 1, device=device)
start, epochs = time.time(), 0
while time.time() - start < RUN_SECONDS:
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), target).backward()
    opt.step()
    epochs += 1
torch.cuda.synchronize()
''' + _TAIL


def _union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def _intervals(lease_log: Path) -> list[tuple[float, float, bool]]:
    """(start, end, on GPU) of every released lease."""
    started: dict[str, dict[str, Any]] = {}
    out = []
    for event in jsonl.iter_raw(lease_log):
        if event["event"] == "acquire":
            started[event["lease"]] = event
        elif event["event"] == "release" and event["lease"] in started:
            acq = started.pop(event["lease"])
            out.append((float(acq["t"]), float(event["t"]), acq.get("gpu_index") is not None))
    return out


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    level = peak = 0
    for _, delta in points:
        level += delta
        peak = max(peak, level)
    return peak


class _GpuSampler:
    """Samples NVML utilisation while a phase runs (GPU busy fraction as the driver sees it)."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._nvml: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # noqa: BLE001 - no NVML: no samples
            self._nvml = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.samples.append(int(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu))

    def __enter__(self) -> _GpuSampler:
        if self._nvml is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._nvml is not None:
            self._thread.join()

    def busy_fraction(self) -> float | None:
        return round(sum(s > 10 for s in self.samples) / len(self.samples), 3) if self.samples else None


def _phase(workdir: Path, data: Path, *, traces: int, steps: int, run_s: float, llm_delay_s: float,
           code: Any, simulate: bool) -> dict[str, Any]:
    policy = ScriptedPolicy(ANALYSIS, seed=traces, accept_rate=0.6, code=code)
    config = RunConfig(
        data_dir=data, workdir=workdir, time_limit_s=6 * 3600, traces=traces, final_reserve_fraction=0.0,
        llm=LLMConfig(provider="openai-compatible", base_url="http://127.0.0.1:9", model="scripted"),
        optimizer={"max_steps": steps, "max_debug": 0},
        # The scripted solutions only sleep: a smoke run would sleep too and blur the busy fraction measured.
        execution={"max_run_minutes": 10, "simulate_gpu_mb": SIMULATED_GPU_MB if simulate else None,
                   "smoke": {"enabled": False}},
        validation={"scoring": "self-reported"},  # the scripted solutions' scores are the experiment
    )
    # Two LLM calls per improvement step (diagnosis, update): each waits half the per-step delay.
    llm = LLMClient(config.llm, workdir / "llm_calls.jsonl",
                    provider=ScriptedProvider(policy, delay_s=llm_delay_s / 2))
    started = time.time()
    with _GpuSampler() as sampler:
        run(config, llm=llm)
    wall = time.time() - started
    leases = _intervals(workdir / "scheduler" / "leases.jsonl")
    spans = [(a, b) for a, b, _ in leases]
    window = max(b for _, b in spans) - min(a for a, _ in spans)
    runs = [b - a for a, b in spans]
    records = EventLog(workdir / "events.jsonl").steps()
    improve = [r for r in records if r.kind == "improve"]
    llm_per_step = statistics.fmean(r.llm_s for r in improve) if improve else llm_delay_s
    mean_run = statistics.fmean(runs)
    ideal = min(1.0, traces * mean_run / (mean_run + llm_per_step))
    busy = _union(spans) / window
    return {
        "traces": traces,
        "steps_completed": len(records),
        "runs": len(runs),
        "failed_runs": sum(r.status == "failed" for r in records),
        "wall_s": round(wall, 1),
        "window_s": round(window, 1),
        "mean_run_s": round(mean_run, 2),
        "llm_s_per_step": round(llm_per_step, 2),
        "busy_fraction": round(busy, 3),
        "ideal_busy_fraction": round(ideal, 3),
        "busy_vs_ideal": round(busy / ideal, 3),
        "gpu_utilisation_busy_fraction": sampler.busy_fraction(),
        "max_concurrent_runs": _max_overlap(spans),
        "experiments_per_hour": round(len(runs) / window * 3600, 1),
    }


def _oom_control(workdir: Path, data: Path, gb: float, seconds: float) -> dict[str, Any]:
    """Two 60%-of-card runs at once, without the scheduler: what the scheduler prevents."""
    code = GPU_LOOP.format(gb=gb, hold_gb=gb, score=0.7, seconds=seconds)
    executor = Executor(data_dir=data, cache_dir=workdir / "cache", python=sys.executable)

    def one(i: int) -> str:
        folder = workdir / f"run{i}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "main.py").write_text(code)
        result = executor.run(RunSpec(workdir=folder, timeout_s=seconds * 4 + 60, env={"CUDA_VISIBLE_DEVICES": "0"}))
        return "out of memory" if "out of memory" in result.stderr_tail.lower() else result.status

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(one, range(2)))
    return {"concurrent_runs_without_scheduler": 2, "outcomes": outcomes,
            "out_of_memory_failures": outcomes.count("out of memory")}


def measure(workdir: Path, *, run_s: float, llm_delay_s: float, steps: int, traces: int) -> dict[str, Any]:
    data = build_breast_cancer(workdir / "competition")
    source = default_source()
    devices = source.devices()
    gpu = bool(devices) and _torch_cuda()
    if gpu:
        card = devices[0]
        small_gb = max(1, round(card.total_mb / 1024 * 0.15))
        big_gb = round(card.total_mb / 1024 * 0.6, 1)

        def loop(score: float) -> str:
            return GPU_LOOP.format(gb=small_gb, hold_gb=small_gb * 0.5, score=score, seconds=run_s)

        def big(score: float) -> str:
            return GPU_LOOP.format(gb=big_gb, hold_gb=big_gb * 0.9, score=score, seconds=run_s)
    else:
        def loop(score: float) -> str:
            return CPU_LOOP.format(score=score, seconds=run_s)

        def big(score: float) -> str:
            return CPU_LOOP.format(score=score, seconds=run_s).replace(
                "# gome: cpu", f"# gome: gpu {SIMULATED_GPU_MB * 0.6 / 1024:.1f}GB")

    single = _phase(workdir / "k1", data, traces=1, steps=steps, run_s=run_s, llm_delay_s=llm_delay_s,
                    code=loop, simulate=False)
    print(json.dumps({"k1": single}), file=sys.stderr, flush=True)
    multi = _phase(workdir / f"k{traces}", data, traces=traces, steps=steps, run_s=run_s, llm_delay_s=llm_delay_s,
                   code=loop, simulate=False)
    print(json.dumps({f"k{traces}": multi}), file=sys.stderr, flush=True)
    memory = _phase(workdir / "memory", data, traces=2, steps=2, run_s=run_s, llm_delay_s=llm_delay_s,
                    code=big, simulate=not gpu)
    result: dict[str, Any] = {
        "device": devices[0].name if gpu else "CPU (GPU memory simulated for the memory phase)",
        "configured": {"run_s": run_s, "llm_delay_s_per_step": llm_delay_s, "steps_per_trace": steps},
        "k1": single,
        f"k{traces}": multi,
        "memory_phase": {
            "runs_needing_60pct_of_gpu": memory["runs"],
            "max_concurrent": memory["max_concurrent_runs"],
            "failed_runs": memory["failed_runs"],
        },
        "speedup_experiments_per_hour": round(multi["experiments_per_hour"] / single["experiments_per_hour"], 2),
    }
    if gpu:
        result["memory_phase"]["control"] = _oom_control(workdir / "control", data, big_gb, run_s)
    result["goals"] = {
        "busy_at_least_90pct_of_ideal": multi["busy_vs_ideal"] >= 0.9,
        "experiments_per_hour_at_least_2_5x": result["speedup_experiments_per_hour"] >= 2.5,
        "no_oom_when_two_runs_exceed_memory": memory["max_concurrent_runs"] == 1 and memory["failed_runs"] == 0,
    }
    return result


def _torch_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def main(*, run_s: float = 6.0, llm_delay_s: float = 6.0, steps: int = 8, traces: int = 3,
         out: Path | None = None) -> int:
    if NvmlSource.create() is None:
        print("no NVIDIA GPU visible: CPU training loops, simulated GPU memory for the memory phase",
              file=sys.stderr)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        result = measure(out, run_s=run_s, llm_delay_s=llm_delay_s, steps=steps, traces=traces)
    else:
        with tempfile.TemporaryDirectory(prefix="gome-bench-") as tmp:
            result = measure(Path(tmp), run_s=run_s, llm_delay_s=llm_delay_s, steps=steps, traces=traces)
    print(json.dumps(result, indent=2))
    return 0
