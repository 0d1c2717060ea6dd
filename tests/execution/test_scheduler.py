"""The resource scheduler: GPU admission by memory across processes, fairness, dead holders, CPU threads."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gome_agent import jsonl
from gome_agent.errors import ConfigError
from gome_agent.execution import scheduler as scheduler_module
from gome_agent.execution.scheduler import (
    FakeGpuSource,
    Lease,
    LeaseTimeout,
    NoGpuSource,
    NvmlSource,
    ResourceScheduler,
    default_source,
    is_gpu_oom,
    needs_gpu,
)

POLL_S = 0.02
OUTSIDER = 4_000_001  # the simulated memory of a process that holds no lease


def make(folder: Path, source: Any = None, **kwargs: Any) -> ResourceScheduler:
    """A scheduler on one simulated 16,000 MiB card (14,720 MiB under the 0.92 headroom), 8 CPUs, 2 slots."""
    return ResourceScheduler(folder, source=source or FakeGpuSource(16_000), cpus=8, slots=2, poll_s=POLL_S, **kwargs)


class Background:
    """`acquire` in a thread, to watch a request wait."""

    def __init__(self, scheduler: ResourceScheduler, **kwargs: Any) -> None:
        self.lease: Lease | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._go, args=(scheduler, kwargs), daemon=True)
        self.thread.start()

    def _go(self, scheduler: ResourceScheduler, kwargs: dict[str, Any]) -> None:
        try:
            self.lease = scheduler.acquire(**kwargs)
        except BaseException as exc:
            self.error = exc

    def result(self, timeout: float = 10.0) -> Lease:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the request was never admitted"
        assert self.error is None, self.error
        assert self.lease is not None
        return self.lease


def still_waiting(*requests: Background, for_s: float = 0.3) -> bool:
    time.sleep(for_s)
    return all(r.thread.is_alive() and r.lease is None for r in requests)


def times_out(scheduler: ResourceScheduler, **kwargs: Any) -> LeaseTimeout:
    with pytest.raises(LeaseTimeout) as caught:
        scheduler.acquire(deadline=time.time() + 0.15, **kwargs)
    return caught.value


def events(folder: Path) -> list[dict[str, Any]]:
    return list(jsonl.iter_raw(folder / "leases.jsonl"))


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


# Admission by memory -----------------------------------------------------------------


def test_two_fit_and_a_third_waits_for_a_release(tmp_path: Path) -> None:
    scheduler = make(tmp_path)
    first = scheduler.acquire(owner="t0", gpu=True, mem_mb=6000)
    second = scheduler.acquire(owner="t1", gpu=True, mem_mb=6000)
    assert (first.gpu_index, second.gpu_index) == (0, 0)
    assert first.waited_s < 5 and second.waited_s < 5
    third = Background(scheduler, owner="t2", gpu=True, mem_mb=6000)
    assert still_waiting(third)
    scheduler.release(first)
    admitted = third.result()
    assert admitted.gpu_index == 0 and admitted.mem_mb == 6000
    assert admitted.waited_s >= 0.3
    assert sorted(lease.owner for lease in scheduler.active()) == ["t1", "t2"]
    assert [(e["event"], e["owner"]) for e in events(tmp_path)] == [
        ("acquire", "t0"), ("acquire", "t1"), ("release", "t0"), ("acquire", "t2"),
    ]


def _hold(folder: str, owner: str, mem_mb: int, hold_s: float) -> None:
    """In a separate process: take a lease, keep it, give it back."""
    scheduler = make(Path(folder))
    with scheduler.lease(owner=owner, gpu=True, mem_mb=mem_mb, deadline=time.time() + 20):
        time.sleep(hold_s)


def test_two_runs_that_would_overflow_the_card_never_overlap_across_processes(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_hold, args=(str(tmp_path), f"p{i}", 9000, 0.5)) for i in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
    assert [proc.exitcode for proc in procs] == [0, 0]
    spans: dict[str, list[float]] = {}
    for event in events(tmp_path):
        assert event["gpu_index"] == 0 and event["mem_mb"] == 9000
        spans.setdefault(event["lease"], []).append(event["t"])
    (a_start, a_end), (b_start, b_end) = sorted(spans.values())
    assert a_end - a_start >= 0.5 and b_end - b_start >= 0.5
    assert a_end <= b_start  # 9,000 + 9,000 MiB would not fit in 14,720: one ran after the other


def test_memory_of_other_processes_reduces_what_is_admitted(tmp_path: Path) -> None:
    source = FakeGpuSource(16_000)
    source.allocate(OUTSIDER, 0, 5000)
    scheduler = make(tmp_path, source)
    scheduler.acquire(owner="t0", gpu=True, mem_mb=6000)
    error = times_out(scheduler, owner="t1", gpu=True, mem_mb=6000)  # 5,000 + 6,000 + 6,000 > 14,720
    assert "5000 MiB used by other processes" in str(error)
    assert scheduler.acquire(owner="t1", gpu=True, mem_mb=3500).gpu_index == 0  # 5,000 + 6,000 + 3,500 fits
    source.free(OUTSIDER)
    assert scheduler.acquire(owner="t2", gpu=True, mem_mb=3000).gpu_index == 0


def test_observed_use_above_the_declaration_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler_module, "OBSERVE_EVERY_S", 0.0)
    source = FakeGpuSource(16_000)
    scheduler = make(tmp_path, source)
    lease = scheduler.acquire(owner="t0", gpu=True, mem_mb=3000)
    assert scheduler.peak_mb(lease) is None
    run_pid = 4_000_002
    source.allocate(run_pid, 0, 9000)
    # Unmeasured, the 9,000 MiB count as another process's on top of the 3,000 reserved: 5,000 more cannot fit.
    times_out(scheduler, owner="t1", gpu=True, mem_mb=5000)
    scheduler.observe(lease, [run_pid, 4_000_003])
    assert scheduler.peak_mb(lease) == 9000
    # Measured, the run counts once, at its 9,000 MiB: 5,000 more fit, 6,000 do not.
    times_out(scheduler, owner="t1", gpu=True, mem_mb=6000)
    extra = scheduler.acquire(owner="t1", gpu=True, mem_mb=5000)
    scheduler.release(extra)
    # The run's peak stays reserved when its use drops for a while.
    source.free(run_pid)
    source.allocate(run_pid, 0, 1000)
    scheduler.observe(lease, [run_pid])
    assert scheduler.peak_mb(lease) == 9000
    times_out(scheduler, owner="t1", gpu=True, mem_mb=6000)
    scheduler.release(lease)
    assert scheduler.peak_mb(lease) == 9000
    assert [e.get("peak_mb") for e in events(tmp_path) if e["event"] == "release"] == [None, 9000]


def test_observation_is_throttled(tmp_path: Path) -> None:
    source = FakeGpuSource(16_000)
    scheduler = make(tmp_path, source)
    lease = scheduler.acquire(owner="t0", gpu=True, mem_mb=1000)
    source.allocate(77, 0, 2000)
    scheduler.observe(lease, [77])
    source.allocate(77, 0, 2000)
    scheduler.observe(lease, [77])  # within a second of the first: not measured
    assert scheduler.peak_mb(lease) == 2000
    cpu = scheduler.acquire(owner="t1", gpu=False)
    scheduler.observe(cpu, [77])
    assert scheduler.peak_mb(cpu) is None


def test_a_need_larger_than_the_card_runs_alone(tmp_path: Path) -> None:
    scheduler = make(tmp_path)
    small = scheduler.acquire(owner="t0", gpu=True, mem_mb=1000)
    times_out(scheduler, owner="big", gpu=True, mem_mb=20_000)
    scheduler.release(small)
    big = scheduler.acquire(owner="big", gpu=True, mem_mb=20_000, deadline=time.time() + 5)
    assert big.gpu_index == 0 and big.mem_mb == 20_000
    times_out(scheduler, owner="t1", gpu=True, mem_mb=500)
    scheduler.release(big)
    assert scheduler.acquire(owner="t1", gpu=True, mem_mb=500).gpu_index == 0


def test_exclusive_waits_for_every_gpu_lease_and_blocks_the_others(tmp_path: Path) -> None:
    scheduler = make(tmp_path)
    small = scheduler.acquire(owner="t0", gpu=True, mem_mb=1000)
    cpu = scheduler.acquire(owner="t2", gpu=False)
    alone = Background(scheduler, owner="t1", gpu=True, mem_mb=1000, exclusive=True)
    assert still_waiting(alone)
    scheduler.release(small)
    exclusive = alone.result()
    assert exclusive.exclusive and exclusive.gpu_index == 0
    error = times_out(scheduler, owner="t0", gpu=True, mem_mb=100)
    assert "t1 holds 1000 MiB alone" in str(error)
    assert scheduler.acquire(owner="t3", gpu=False).gpu_index is None  # CPU runs are not held back
    scheduler.release(exclusive)
    assert scheduler.acquire(owner="t0", gpu=True, mem_mb=100).gpu_index == 0
    scheduler.release(cpu)


def test_the_card_with_the_most_room_is_chosen(tmp_path: Path) -> None:
    source = FakeGpuSource(16_000, count=2)
    source.allocate(OUTSIDER, 0, 4000)
    scheduler = make(tmp_path, source)
    # Room under the headroom: card 0 has 14,720 - 4,000, card 1 14,720 less what the leases reserve.
    indices = [scheduler.acquire(owner=f"t{i}", gpu=True, mem_mb=3000).gpu_index for i in range(3)]
    assert indices == [1, 1, 0]


# Dead holders, timeouts, order --------------------------------------------------------


def _hold_until_killed(folder: str, ready: Any) -> None:
    make(Path(folder)).acquire(owner="doomed", gpu=True, mem_mb=9000)
    ready.set()
    time.sleep(60)


def test_a_killed_holder_does_not_block_the_card(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    holder = context.Process(target=_hold_until_killed, args=(str(tmp_path), ready))
    holder.start()
    try:
        assert ready.wait(20)
        scheduler = make(tmp_path)
        error = times_out(scheduler, owner="t0", gpu=True, mem_mb=9000)
        assert f"doomed holds 9000 MiB (pid {holder.pid}" in str(error)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(10)
    lease = scheduler.acquire(owner="t0", gpu=True, mem_mb=9000, deadline=time.time() + 5)
    assert lease.waited_s < 5
    assert [lease.owner for lease in scheduler.active()] == ["t0"]
    dropped = [e for e in events(tmp_path) if e["event"] == "release"]
    assert [(e["owner"], e["pid"], e["reason"]) for e in dropped] == [("doomed", holder.pid, "owner process gone")]


def test_timeout_message_names_the_holders(tmp_path: Path) -> None:
    scheduler = make(tmp_path)
    scheduler.acquire(owner="trace0", gpu=True, mem_mb=10_000)
    started = time.monotonic()
    error = times_out(scheduler, owner="trace1", gpu=True, mem_mb=8000)
    assert 0.1 < time.monotonic() - started < 5
    assert re.fullmatch(
        r"trace1 waited \d+\.\d s for 8000 MiB of GPU memory and its deadline passed; "
        r"GPU 0 \(Simulated GPU 0, 16000 MiB\): trace0 holds 10000 MiB \(pid \d+, for \d+ s\); "
        r"0 MiB used by other processes",
        str(error),
    ), str(error)
    # The timed-out request left the queue: it holds no one back.
    assert scheduler.acquire(owner="trace2", gpu=True, mem_mb=4000, deadline=time.time() + 1).gpu_index == 0


def test_requests_are_admitted_in_arrival_order(tmp_path: Path) -> None:
    scheduler = make(tmp_path)
    holder = scheduler.acquire(owner="holder", gpu=True, mem_mb=10_000)
    big = Background(scheduler, owner="big", gpu=True, mem_mb=10_000)
    wait_until(lambda: "big" in (tmp_path / "leases.json").read_text())
    # 10,000 + 3,000 would fit now, but the big request came first and fits once the holder is done.
    small = Background(scheduler, owner="small", gpu=True, mem_mb=3000)
    assert still_waiting(big, small)
    scheduler.release(holder)
    big.result()
    small.result()
    acquired = [e["owner"] for e in events(tmp_path) if e["event"] == "acquire"]
    assert acquired == ["holder", "big", "small"]


def test_a_request_that_fits_only_alone_does_not_hold_back_the_queue(tmp_path: Path) -> None:
    scheduler = make(tmp_path)
    holder = scheduler.acquire(owner="holder", gpu=True, mem_mb=2000)
    huge = Background(scheduler, owner="huge", gpu=True, mem_mb=20_000)
    wait_until(lambda: "huge" in (tmp_path / "leases.json").read_text())
    small = scheduler.acquire(owner="small", gpu=True, mem_mb=3000, deadline=time.time() + 2)
    scheduler.release(holder)
    assert still_waiting(huge)
    scheduler.release(small)
    assert huge.result().mem_mb == 20_000


def test_an_exclusive_request_in_the_queue_goes_first(tmp_path: Path) -> None:
    scheduler = make(tmp_path)
    holder = scheduler.acquire(owner="holder", gpu=True, mem_mb=2000)
    alone = Background(scheduler, owner="retry", gpu=True, mem_mb=2000, exclusive=True)
    wait_until(lambda: "retry" in (tmp_path / "leases.json").read_text())
    times_out(scheduler, owner="newcomer", gpu=True, mem_mb=1000)
    scheduler.release(holder)
    assert alone.result().exclusive


def test_release_is_idempotent_and_the_context_manager_releases_on_errors(tmp_path: Path) -> None:
    scheduler = make(tmp_path)
    lease = scheduler.acquire(owner="t0", gpu=True, mem_mb=1000)
    scheduler.release(lease)
    scheduler.release(lease)
    assert [e["event"] for e in events(tmp_path)] == ["acquire", "release"]
    with pytest.raises(RuntimeError, match="boom"):
        with scheduler.lease(owner="t1", gpu=True, mem_mb=1000) as held:
            assert [lease.id for lease in scheduler.active()] == [held.id]
            raise RuntimeError("boom")
    assert scheduler.active() == []


# CPU runs, threads, environment ---------------------------------------------------------


def test_cpu_runs_and_a_machine_without_gpu(tmp_path: Path) -> None:
    scheduler = ResourceScheduler(tmp_path / "no-gpu", source=NoGpuSource(), cpus=8, slots=3, poll_s=POLL_S)
    assert scheduler.default_need_mb() is None
    leases = [scheduler.acquire(owner=f"t{i}", gpu=True, mem_mb=50_000, exclusive=True) for i in range(4)]
    assert all(lease.gpu_index is None and lease.threads == 2 and lease.waited_s < 5 for lease in leases)
    env = leases[0].env()
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                 "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "GOME_THREADS"):
        assert env[name] == "2", name
    assert env["TF_NUM_INTEROP_THREADS"] == "1"

    gpu = make(tmp_path / "gpu")
    assert gpu.default_need_mb() == 7200
    whole = gpu.acquire(owner="t0", gpu=True, exclusive=True)
    assert whole.mem_mb == 7200 and whole.env()["CUDA_VISIBLE_DEVICES"] == "0"
    cpu = gpu.acquire(owner="t1", gpu=False, deadline=time.time())
    assert (cpu.gpu_index, cpu.mem_mb, cpu.threads) == (None, 0, 4)
    assert cpu.env()["CUDA_VISIBLE_DEVICES"] == "" and cpu.env()["OMP_NUM_THREADS"] == "4"
    assert ResourceScheduler(tmp_path / "one", source=NoGpuSource(), cpus=2, slots=3).threads == 1


def test_bad_settings_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"slots >= 1 \(got cpus=4, slots=0\)"):
        ResourceScheduler(tmp_path, source=NoGpuSource(), cpus=4, slots=0)
    with pytest.raises(ConfigError, match=r"headroom must be in \(0, 1\] \(got 1.5\)"):
        ResourceScheduler(tmp_path, source=NoGpuSource(), cpus=4, slots=1, headroom=1.5)
    with pytest.raises(ValueError, match="mem_mb must be >= 0"):
        make(tmp_path).acquire(owner="t0", gpu=True, mem_mb=-1)


# Markers and error output ---------------------------------------------------------------


@pytest.mark.parametrize(("code", "expected"), [
    ("# gome: gpu 12GB\nimport pandas as pd\n", (True, 12 * 1024)),
    ("#!/usr/bin/env python\n# gome: gpu 8000MB\nimport torch\n", (True, 8000)),
    ("# gome: gpu\nimport numpy as np\n", (True, None)),
    ("# GOME: GPU 1.5 GiB\n", (True, 1536)),
    ("# gome: cpu\nimport torch\nmodel.cuda()\n", (False, None)),
    ("import torch\nimport torch.nn as nn\nmodel = nn.Linear(3, 1).to('cuda')\n", (True, None)),
    ("import numpy as np, torch\n", (True, None)),
    ("from transformers import AutoModel\n", (True, None)),
    ("import tensorflow as tf\n", (True, None)),
    ("import jax.numpy as jnp\n", (True, None)),
    ("import pandas as pd\nfrom sklearn.ensemble import RandomForestClassifier\nRandomForestClassifier().fit(X, y)\n",
     (False, None)),
    ("import lightgbm as lgb\nmodel = lgb.LGBMClassifier(n_estimators=500)\n", (False, None)),
    ("import lightgbm as lgb\nmodel = lgb.LGBMClassifier(device='gpu')\n", (True, None)),
    ("import xgboost as xgb\nparams = {'device': 'cuda', 'tree_method': 'hist'}\n", (True, None)),
    ("from catboost import CatBoostClassifier\nCatBoostClassifier(task_type='GPU')\n", (True, None)),
    ("import pandas as pd\n# import torch would be nice\n", (False, None)),
    ("import torchmetrics_lookalike_pkg\n", (False, None)),
])
def test_needs_gpu(code: str, expected: tuple[bool, int | None]) -> None:
    assert needs_gpu(code) == expected


def test_a_marker_after_the_first_lines_is_ignored() -> None:
    code = "import pandas as pd\n" * 30 + "# gome: gpu 4GB\n"
    assert needs_gpu(code) == (False, None)


TORCH_OOM = """Traceback (most recent call last):
  File "/work/step/main.py", line 88, in <module>
    loss.backward()
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.10 GiB \
of which 1.21 GiB is free. Including non-PyTorch memory, this process has 77.88 GiB memory in use.
"""
TORCH_OLD_OOM = "RuntimeError: CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported\n"
CUBLAS_OOM = "RuntimeError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`\n"
TF_OOM = """tensorflow.python.framework.errors_impl.ResourceExhaustedError: Graph execution error:
OOM when allocating tensor with shape[256,512,28,28] and type float on /job:localhost/replica:0/task:0/device:GPU:0 \
by allocator GPU_0_bfc
"""
TF_HOST_OOM = """tensorflow.python.framework.errors_impl.ResourceExhaustedError: Graph execution error:
OOM when allocating tensor with shape[100000,100000] and type float on /job:localhost/replica:0/task:0/device:CPU:0 \
by allocator cpu
"""
JAX_OOM = ("jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to allocate "
           "17179869184 bytes.\n")
XGB_OOM = ("xgboost.core.XGBoostError: [12:01:02] ../src/c_api/c_api.cc:1059: std::bad_alloc: "
           "cudaErrorMemoryAllocation: out of memory\n")
HOST_MEMORY_ERROR = """Traceback (most recent call last):
  File "/work/step/main.py", line 12, in <module>
    big = np.zeros((100000, 100000))
numpy.core._exceptions._ArrayMemoryError: Unable to allocate 74.5 GiB for an array
MemoryError
"""
TORCH_HOST_OOM = ("RuntimeError: [enforce fail at alloc_cpu.cpp:114] data. DefaultCPUAllocator: "
                  "can't allocate memory: you tried to allocate 80000000000 bytes.\n")
KEY_ERROR = "Traceback (most recent call last):\n  File \"main.py\", line 3\nKeyError: 'target'\n"


@pytest.mark.parametrize(("stderr", "expected"), [
    (TORCH_OOM, True), (TORCH_OLD_OOM, True), (CUBLAS_OOM, True), (TF_OOM, True), (JAX_OOM, True),
    (XGB_OOM, True), (HOST_MEMORY_ERROR, False), (TORCH_HOST_OOM, False), (TF_HOST_OOM, False),
    (KEY_ERROR, False), ("Killed\n", False), ("", False),
])
def test_is_gpu_oom(stderr: str, expected: bool) -> None:
    assert is_gpu_oom(stderr) is expected


# NVML ---------------------------------------------------------------------------------


class FakeNvml(SimpleNamespace):
    """The few pynvml calls NvmlSource makes, over two 80 GiB cards."""

    class NVMLError(Exception):
        pass

    def __init__(self, processes: dict[int, list[tuple[int, int | None]]], used_mb: dict[int, int]) -> None:
        super().__init__()
        self.processes, self.used_mb = processes, used_mb

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return b"NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return f"GPU-0000000{handle}-aaaa"

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        total = 81_559 * 2**20
        return SimpleNamespace(total=total, free=total - self.used_mb.get(handle, 0) * 2**20)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=None if mb is None else mb * 2**20)
                for pid, mb in self.processes.get(handle, [])]


def test_nvml_on_a_machine_without_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    source = NvmlSource.create()  # must not raise, whatever this machine has
    if not Path("/dev/nvidiactl").exists():
        assert source is None
        assert isinstance(default_source(), NoGpuSource)
    broken = FakeNvml({}, {})

    def fail() -> None:
        raise broken.NVMLError("NVML Shared Library Not Found")

    broken.nvmlInit = fail
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    assert NvmlSource.create() is None
    assert isinstance(default_source(), NoGpuSource)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # nvidia-ml-py not installed
    assert NvmlSource.create() is None


def test_nvml_source_attributes_memory_to_pids(monkeypatch: pytest.MonkeyPatch) -> None:
    me, parent = os.getpid(), os.getppid()
    nvml = FakeNvml({0: [(me, 3000), (parent, 500)], 1: [(me, 200)]}, {0: 3600, 1: 300})
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    source = NvmlSource.create()
    assert source is not None
    assert [(d.index, d.name, d.total_mb, d.free_mb) for d in source.devices()] == [
        (0, "NVIDIA H100 80GB HBM3", 81_559, 77_959), (1, "NVIDIA H100 80GB HBM3", 81_559, 81_259),
    ]
    assert source.used_by({me}) == {0: 3000, 1: 200}
    assert source.used_by({OUTSIDER}) == {0: 0, 1: 0}  # every process on the cards is visible: known to be none
    nvml.processes = {0: [(OUTSIDER, 3000)]}  # a pid of another namespace: it could be the run's
    assert source.used_by({me}) == {}
    nvml.processes = {}  # the driver lists nothing while a card is in use
    assert source.used_by({me}) == {}
    nvml.processes = {0: [(me, None)]}  # per-process memory not reported
    assert source.used_by({me}) == {}


def test_nvml_source_keeps_to_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml({}, {}))
    for visible, indices in [("1", [1]), ("GPU-00000001", [1]), ("1,0", [1, 0]), ("0,7,1", [0]), ("", None)]:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        source = NvmlSource.create()
        assert (None if source is None else [d.index for d in source.devices()]) == indices, visible


def test_unattributable_runs_count_at_their_reservation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the driver cannot say which process uses what, a run's own memory is not counted twice."""
    monkeypatch.setattr(scheduler_module, "OBSERVE_EVERY_S", 0.0)
    source = FakeGpuSource(16_000)
    monkeypatch.setattr(source, "used_by", lambda pids: {})
    scheduler = make(tmp_path, source)
    lease = scheduler.acquire(owner="t0", gpu=True, mem_mb=6000)
    source.allocate(4_000_004, 0, 5000)
    times_out(scheduler, owner="t1", gpu=True, mem_mb=6000)  # 6,000 + 5,000 unexplained + 6,000
    scheduler.observe(lease, [4_000_004])
    assert scheduler.peak_mb(lease) is None
    assert scheduler.acquire(owner="t1", gpu=True, mem_mb=6000).gpu_index == 0  # the 5,000 are within t0's 6,000


def test_the_state_survives_a_corrupt_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "leases.json").write_text("{not json")
    scheduler = make(tmp_path)
    assert scheduler.active() == []
    assert "leases.json is unreadable" in caplog.text
    lease = scheduler.acquire(owner="t0", gpu=True, mem_mb=100)
    assert [held.id for held in make(tmp_path).active()] == [lease.id]

