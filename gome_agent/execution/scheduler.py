"""Sharing the GPU memory and the CPU cores of one machine among the concurrent traces of a run.

Each trace is its own OS process and runs one solution at a time. Before a run,
the trace takes a `Lease` from the `ResourceScheduler`: a GPU run is admitted
onto a card only when the memory it needs, on top of what the runs already
there reserve or were measured to use and what other processes hold, stays
under a headroom of the card; a CPU run is admitted at once. Every lease gets
the same share of the CPU cores, passed to the solution through the usual
thread-count variables.

The scheduler's state lives in a folder shared by all trace processes
(`leases.json`, rewritten atomically under a file lock); leases of processes
that died are dropped whenever it is read, so a killed trace never holds the
GPU. Every acquire and release is also appended to `leases.jsonl`, from which
busy fractions can be computed.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import psutil
from filelock import FileLock
from pydantic import BaseModel, ValidationError

from gome_agent import jsonl
from gome_agent.errors import ConfigError, GomeError

log = logging.getLogger(__name__)

MIB = 2**20
DEFAULT_NEED_SHARE = 0.45  # of the smallest card, for a GPU run that declares nothing
OBSERVE_EVERY_S = 1.0  # GPU memory of a run is measured at most this often
MARKER_LINES = 30  # a "# gome: gpu|cpu" marker is looked for in this many first lines
_WAITER_REFRESH_S = 1.0
_WAITER_STALE_S = 10.0  # plus four of the waiter's polls: a queued request not seen for that long is gone
_UNLISTED_MB = 1024  # a card this full with no process listed hides its processes from us

THREAD_VARIABLES = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "GOME_THREADS",
)


# GPU memory sources -----------------------------------------------------------------


class DeviceMemory(BaseModel):
    """One card's memory, in MiB."""

    index: int
    name: str
    total_mb: int
    free_mb: int


class GpuMemorySource(Protocol):
    def devices(self) -> list[DeviceMemory]: ...

    def used_by(self, pids: set[int]) -> dict[int, int]:
        """Device index -> MiB used by these processes; empty when the source cannot tell."""
        ...


class NoGpuSource:
    """A machine without a usable GPU."""

    def devices(self) -> list[DeviceMemory]:
        return []

    def used_by(self, pids: set[int]) -> dict[int, int]:
        return {}


class FakeGpuSource:
    """Simulated cards whose memory is taken and given back by `allocate` and `free` (tests, CPU-only benchmarks)."""

    def __init__(self, total_mb: int = 16_000, count: int = 1) -> None:
        if total_mb <= 0 or count < 1:
            raise ConfigError(f"a simulated GPU needs total_mb > 0 and count >= 1 (got {total_mb}, {count})")
        self.total_mb, self.count = total_mb, count
        self._used: dict[int, dict[int, int]] = {}  # pid -> device -> MiB
        self._lock = threading.Lock()

    def allocate(self, pid: int, device: int, mb: int) -> None:
        if not 0 <= device < self.count or mb < 0:
            raise ValueError(f"cannot allocate {mb} MiB on simulated device {device} of {self.count}")
        with self._lock:
            per_device = self._used.setdefault(pid, {})
            per_device[device] = per_device.get(device, 0) + mb

    def free(self, pid: int) -> None:
        with self._lock:
            self._used.pop(pid, None)

    def devices(self) -> list[DeviceMemory]:
        with self._lock:
            used = [sum(d.get(i, 0) for d in self._used.values()) for i in range(self.count)]
        return [
            DeviceMemory(index=i, name=f"Simulated GPU {i}", total_mb=self.total_mb,
                         free_mb=max(0, self.total_mb - used[i]))
            for i in range(self.count)
        ]

    def used_by(self, pids: set[int]) -> dict[int, int]:
        with self._lock:
            return {i: sum(self._used.get(pid, {}).get(i, 0) for pid in pids) for i in range(self.count)}


class NvmlSource:
    """NVIDIA cards through NVML (nvidia-ml-py), limited to those this process's CUDA_VISIBLE_DEVICES shows.

    Indices are NVML's (PCI bus order); leases set CUDA_DEVICE_ORDER=PCI_BUS_ID so that CUDA numbers
    the cards the same way.
    """

    def __init__(self, nvml: ModuleType, handles: dict[int, Any], names: dict[int, str]) -> None:
        self._nvml = nvml
        self._handles = handles
        self._names = names
        self._last: dict[int, DeviceMemory] = {}

    @classmethod
    def create(cls) -> NvmlSource | None:
        """The cards NVML sees, or None when nvidia-ml-py is missing, NVML fails to start or no card is visible."""
        try:
            import pynvml
        except ImportError:
            log.info("nvidia-ml-py is not installed: no GPU scheduling")
            return None
        try:
            pynvml.nvmlInit()
            handles = {i: pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())}
            handles = _visible(pynvml, handles, os.environ.get("CUDA_VISIBLE_DEVICES"))
            names = {i: _text(pynvml.nvmlDeviceGetName(h)) for i, h in handles.items()}
        except (pynvml.NVMLError, OSError) as exc:
            log.info("NVML is not usable (%s): no GPU scheduling", exc)
            return None
        if not handles:
            log.info("NVML sees no GPU this process may use (CUDA_VISIBLE_DEVICES): no GPU scheduling")
            return None
        return cls(pynvml, handles, names)

    def devices(self) -> list[DeviceMemory]:
        out = []
        for index, handle in self._handles.items():
            try:
                memory = self._nvml.nvmlDeviceGetMemoryInfo(handle)
                self._last[index] = DeviceMemory(index=index, name=self._names[index], total_mb=memory.total // MIB,
                                                 free_mb=memory.free // MIB)
            except self._nvml.NVMLError as exc:
                # Keep scheduling on the last reading rather than losing the card for the whole run.
                log.warning("NVML cannot read the memory of GPU %d (%s); using its last reading", index, exc)
                if index not in self._last:
                    continue
            out.append(self._last[index])
        return out

    def used_by(self, pids: set[int]) -> dict[int, int]:
        usage: dict[int, int] = {}
        matched = False
        attributable = True  # every process on the cards is one this process can see
        try:
            for index, handle in self._handles.items():
                listed = self._nvml.nvmlDeviceGetComputeRunningProcesses(handle)
                total = 0
                for proc in listed:
                    if proc.pid in pids:
                        if proc.usedGpuMemory is None:  # the driver does not report per-process memory here
                            return {}
                        total += proc.usedGpuMemory // MIB
                        matched = True
                    elif not psutil.pid_exists(proc.pid):
                        attributable = False  # a process of another PID namespace: it could be ours
                if not listed:
                    memory = self._nvml.nvmlDeviceGetMemoryInfo(handle)
                    attributable = attributable and (memory.total - memory.free) // MIB < _UNLISTED_MB
                usage[index] = total
        except self._nvml.NVMLError as exc:
            log.warning("NVML cannot list the processes on the GPU (%s)", exc)
            return {}
        return usage if matched or attributable else {}


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _visible(nvml: ModuleType, handles: dict[int, Any], variable: str | None) -> dict[int, Any]:
    """The cards named by CUDA_VISIBLE_DEVICES (indices or GPU- UUIDs; CUDA stops at the first bad entry)."""
    if variable is None:
        return handles
    uuids = {_text(nvml.nvmlDeviceGetUUID(h)): i for i, h in handles.items()}
    chosen: dict[int, Any] = {}
    for entry in (e.strip() for e in variable.split(",")):
        index = int(entry) if entry.isdigit() else next(
            (i for uuid_, i in uuids.items() if entry.startswith("GPU-") and uuid_.startswith(entry)), None)
        if index is None or index not in handles:
            break
        chosen[index] = handles[index]
    return chosen


def default_source() -> GpuMemorySource:
    """NVML when it works on this machine, else a source with no GPU."""
    return NvmlSource.create() or NoGpuSource()


# Leases -----------------------------------------------------------------------------


class LeaseTimeout(GomeError):
    """The deadline passed before the request was admitted."""


class Lease(BaseModel):
    """The right to run one solution: a card (or none) and a number of CPU threads."""

    id: str
    owner: str
    pid: int  # the process that holds the lease (a trace), not the solution
    gpu_index: int | None
    mem_mb: int  # the GPU memory reserved (0 for CPU runs)
    exclusive: bool
    threads: int
    acquired_at: float
    waited_s: float

    def env(self) -> dict[str, str]:
        """Variables for the solution's environment: its card (none for CPU runs) and its thread count."""
        env = {
            "CUDA_VISIBLE_DEVICES": "" if self.gpu_index is None else str(self.gpu_index),
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
            # TensorFlow and JAX otherwise take most of the card at start-up, whatever they need.
            "TF_FORCE_GPU_ALLOW_GROWTH": "true",
            "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
        }
        env.update({name: str(self.threads) for name in THREAD_VARIABLES})
        env["TF_NUM_INTEROP_THREADS"] = "1"
        return env


class _Held(BaseModel):
    """An active lease in the shared state, with what was measured of its run."""

    lease: Lease
    pid_started: float  # creation time of lease.pid, so that a reused pid does not keep the lease alive
    used_mb: int | None = None  # last measurement on the lease's card; None: never measured or not attributable
    peak_mb: int | None = None
    unattributed: bool = False  # the source could not tell this run's memory from other processes'


class _Waiter(BaseModel):
    """A GPU request waiting in the shared queue."""

    id: str
    owner: str
    pid: int
    pid_started: float
    need_mb: int
    exclusive: bool
    since: float  # arrival time: the queue's order
    seen: float
    poll_s: float


class _State(BaseModel):
    leases: list[_Held] = []
    queue: list[_Waiter] = []


class _Card:
    """What a card holds right now, as admission sees it."""

    def __init__(self, device: DeviceMemory, held: list[_Held], headroom: float) -> None:
        self.device = device
        self.held = held
        self.capacity = headroom * device.total_mb
        self.reserved = sum(max(h.lease.mem_mb, h.peak_mb or 0) for h in held)
        # A run whose memory cannot be attributed is assumed to use its reservation; beyond it, it shows as external.
        attributed = sum(h.used_mb if h.used_mb is not None else (h.lease.mem_mb if h.unattributed else 0)
                         for h in held)
        self.external = max(0, device.total_mb - device.free_mb - attributed)
        self.exclusive_held = any(h.lease.exclusive for h in held)

    def fits(self, need_mb: int, exclusive: bool) -> bool:
        if self.exclusive_held:
            return False
        if not self.held:
            return True  # alone, a run gets the whole card, even one that can never fit beside others
        return not exclusive and self.reserved + self.external + need_mb <= self.capacity

    def fits_once_free(self, waiter: _Waiter) -> bool:
        """Whether `waiter` will be admitted here when the current leases end (then it holds the ones behind it)."""
        return waiter.exclusive or waiter.need_mb + self.external <= self.capacity

    def available(self) -> float:
        return self.capacity - self.reserved - self.external

    def describe(self, now: float) -> str:
        d = self.device
        holders = "; ".join(
            f"{h.lease.owner} holds {h.lease.mem_mb} MiB{' alone' if h.lease.exclusive else ''} "
            f"(pid {h.lease.pid}, " + (f"measured {h.used_mb} MiB, " if h.used_mb is not None else "")
            + f"for {now - h.lease.acquired_at:.0f} s)"
            for h in self.held
        ) or "no lease"
        return f"GPU {d.index} ({d.name}, {d.total_mb} MiB): {holders}; {self.external} MiB used by other processes"


def _new_id() -> str:
    return uuid.uuid4().hex[:12]


def _started(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


def _alive(pid: int, started: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - started) < 0.01
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # not ours to inspect: keep it rather than free a card someone uses
        return True


# The scheduler ----------------------------------------------------------------------


class ResourceScheduler:
    """Admits solution runs onto the GPU and shares the CPU threads among the trace processes of one run."""

    def __init__(
        self,
        folder: Path,
        *,
        source: GpuMemorySource,
        cpus: int,
        slots: int,
        headroom: float = 0.92,
        poll_s: float = 0.25,
    ) -> None:
        if cpus < 1 or slots < 1:
            raise ConfigError(f"the resource scheduler needs cpus >= 1 and slots >= 1 (got cpus={cpus}, slots={slots})")
        if not 0 < headroom <= 1:
            raise ConfigError(f"the scheduler's GPU headroom must be in (0, 1] (got {headroom})")
        if poll_s <= 0:
            raise ConfigError(f"the scheduler's poll_s must be > 0 (got {poll_s})")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the scheduler folder {folder}: {exc}") from exc
        self.folder = folder
        self.source = source
        self.headroom = headroom
        self.poll_s = poll_s
        self.threads = max(1, cpus // slots)
        self._path = folder / "leases.json"
        self._events = folder / "leases.jsonl"
        self._lock = FileLock(str(folder / "leases.lock"))
        self._local = threading.Lock()
        self._observed_at: dict[str, float] = {}  # lease id -> monotonic time of its last measurement
        self._peaks: dict[str, int] = {}  # lease id -> peak measured by this process, kept after release

    # Shared state ---------------------------------------------------------------

    @contextmanager
    def _state(self) -> Iterator[_State]:
        """The shared state under the lock, dead holders dropped; written back (if changed) unless the body raises."""
        with self._lock:
            try:
                text = self._path.read_text(encoding="utf-8")
            except FileNotFoundError:
                text = ""
            state = _State()
            if text:
                try:
                    state = _State.model_validate_json(text)
                except ValidationError as exc:
                    log.warning("%s is unreadable, starting from no lease: %s", self._path, exc)
            self._drop_dead(state)
            yield state
            new = state.model_dump_json(indent=1)
            if new != text:
                tmp = self._path.with_name(f".{self._path.name}.{os.getpid()}.tmp")
                tmp.write_text(new, encoding="utf-8")
                os.replace(tmp, self._path)

    def _drop_dead(self, state: _State) -> None:
        now = time.time()
        kept = []
        for held in state.leases:
            if _alive(held.lease.pid, held.pid_started):
                kept.append(held)
            else:
                log.warning("dropping the lease of %s: its process %d is gone", held.lease.owner, held.lease.pid)
                self._record("release", held, now, reason="owner process gone")
        state.leases = kept
        state.queue = [w for w in state.queue
                       if now - w.seen <= _WAITER_STALE_S + 4 * w.poll_s and _alive(w.pid, w.pid_started)]

    def _record(self, event: str, held: _Held, t: float, reason: str | None = None) -> None:
        lease = held.lease
        record: dict[str, Any] = {
            "event": event, "lease": lease.id, "owner": lease.owner, "pid": lease.pid,
            "gpu_index": lease.gpu_index, "mem_mb": lease.mem_mb, "exclusive": lease.exclusive,
            "threads": lease.threads, "t": t, "waited_s": lease.waited_s,
        }
        if event == "release":
            record.update(peak_mb=held.peak_mb, reason=reason)
        jsonl.append(self._events, record)

    # Leases ---------------------------------------------------------------------

    def acquire(
        self,
        *,
        owner: str,
        gpu: bool,
        mem_mb: int | None = None,
        exclusive: bool = False,
        deadline: float | None = None,
    ) -> Lease:
        """A lease for one run; blocks until admitted or `deadline` (epoch seconds) passes (LeaseTimeout).

        `mem_mb` is the GPU memory the run needs (default: `default_need_mb`); `exclusive` asks for a
        card with no other GPU run on it.
        """
        if mem_mb is not None and mem_mb < 0:
            raise ValueError(f"mem_mb must be >= 0 (got {mem_mb} for {owner})")
        started = time.monotonic()
        devices = self.source.devices() if gpu else []
        if not devices:
            with self._state() as state:
                return self._grant(state, owner, None, 0, False, started)
        now = time.time()
        pid = os.getpid()
        me = _Waiter(
            id=_new_id(), owner=owner, pid=pid, pid_started=_started(pid),
            need_mb=mem_mb or int(DEFAULT_NEED_SHARE * min(d.total_mb for d in devices)),
            exclusive=exclusive, since=now, seen=now, poll_s=self.poll_s,
        )
        cards: list[_Card] = []
        ahead: list[_Waiter] = []
        granted = False
        try:
            while True:
                with self._state() as state:
                    cards = [_Card(d, [h for h in state.leases if h.lease.gpu_index == d.index], self.headroom)
                             for d in self.source.devices()]
                    ahead = [w for w in state.queue if (w.since, w.id) < (me.since, me.id)]
                    card = _choose(cards, me, ahead)
                    if card is not None:
                        state.queue = [w for w in state.queue if w.id != me.id]
                        granted = True
                        return self._grant(state, owner, card.device.index, me.need_mb, exclusive, started)
                    _enqueue(state, me)
                left = None if deadline is None else deadline - time.time()
                if left is not None and left <= 0:
                    raise LeaseTimeout(_timeout_message(me, cards, ahead, time.monotonic() - started))
                time.sleep(self.poll_s if left is None else min(self.poll_s, left))
        finally:
            if not granted:
                with self._state() as state:
                    state.queue = [w for w in state.queue if w.id != me.id]

    def _grant(self, state: _State, owner: str, index: int | None, need_mb: int, exclusive: bool,
               started: float) -> Lease:
        pid = os.getpid()
        lease = Lease(
            id=_new_id(), owner=owner, pid=pid, gpu_index=index, mem_mb=need_mb,
            exclusive=exclusive and index is not None, threads=self.threads, acquired_at=time.time(),
            waited_s=round(time.monotonic() - started, 3),
        )
        held = _Held(lease=lease, pid_started=_started(pid))
        state.leases.append(held)
        self._record("acquire", held, lease.acquired_at)
        return lease

    def release(self, lease: Lease) -> None:
        """Give the lease back; releasing twice is harmless."""
        with self._state() as state:
            held = next((h for h in state.leases if h.lease.id == lease.id), None)
            if held is not None:
                state.leases.remove(held)
                self._record("release", held, time.time(), reason="released")
        with self._local:
            self._observed_at.pop(lease.id, None)

    @contextmanager
    def lease(self, **kwargs: Any) -> Iterator[Lease]:
        """`acquire(**kwargs)` for the body of a with-statement, released however the body ends."""
        held = self.acquire(**kwargs)
        try:
            yield held
        finally:
            self.release(held)

    def active(self) -> list[Lease]:
        with self._state() as state:
            return [h.lease for h in state.leases]

    # GPU memory -----------------------------------------------------------------

    def observe(self, lease: Lease, pids: list[int]) -> None:
        """Measure the GPU memory the run's processes use (at most every OBSERVE_EVERY_S), for admission and peak."""
        if lease.gpu_index is None or not pids:
            return
        now = time.monotonic()
        with self._local:
            if now - self._observed_at.get(lease.id, -OBSERVE_EVERY_S) < OBSERVE_EVERY_S:
                return
            self._observed_at[lease.id] = now
        usage = self.source.used_by(set(pids))  # outside the lock: an NVML query
        with self._state() as state:
            held = next((h for h in state.leases if h.lease.id == lease.id), None)
            if held is None:
                return
            if not usage:
                held.used_mb, held.unattributed = None, True
                return
            held.used_mb, held.unattributed = usage.get(lease.gpu_index, 0), False
            held.peak_mb = max(held.peak_mb or 0, held.used_mb)
            peak = held.peak_mb
        with self._local:
            self._peaks[lease.id] = peak

    def peak_mb(self, lease: Lease) -> int | None:
        """The most GPU memory measured for this lease's run; None when never measured."""
        with self._state() as state:
            held = next((h for h in state.leases if h.lease.id == lease.id), None)
            if held is not None:
                return held.peak_mb
        with self._local:
            return self._peaks.get(lease.id)

    def default_need_mb(self) -> int | None:
        """The GPU memory assumed for a run that declares none: a share of the smallest card (None without GPU)."""
        devices = self.source.devices()
        return int(DEFAULT_NEED_SHARE * min(d.total_mb for d in devices)) if devices else None


def _choose(cards: list[_Card], me: _Waiter, ahead: list[_Waiter]) -> _Card | None:
    """The card to admit `me` on now: it fits there, and no earlier request that could go there first
    (now, or once the card's current leases end) is still waiting. Most room wins."""
    fitting = [
        card for card in cards
        if card.fits(me.need_mb, me.exclusive)
        and not any(card.fits(w.need_mb, w.exclusive) or card.fits_once_free(w) for w in ahead)
    ]
    return max(fitting, key=_Card.available, default=None)


def _enqueue(state: _State, me: _Waiter) -> None:
    """Put `me` in the queue at its arrival place (again, if it was taken for stale), or mark it still waiting."""
    now = time.time()
    for waiter in state.queue:
        if waiter.id == me.id:
            if now - waiter.seen >= _WAITER_REFRESH_S:
                waiter.seen = now
            return
    state.queue.append(me.model_copy(update={"seen": now}))
    state.queue.sort(key=lambda w: (w.since, w.id))


def _timeout_message(me: _Waiter, cards: list[_Card], ahead: list[_Waiter], waited_s: float) -> str:
    what = "a GPU to itself" if me.exclusive else f"{me.need_mb} MiB of GPU memory"
    now = time.time()
    text = f"{me.owner} waited {waited_s:.1f} s for {what} and its deadline passed; "
    text += " | ".join(card.describe(now) for card in cards) or "no GPU could be read"
    if ahead:
        text += "; waiting before it: " + ", ".join(f"{w.owner} ({w.need_mb} MiB)" for w in ahead)
    return text


# What a solution needs, and how it failed -------------------------------------------

_MARKER = re.compile(
    r"^\s*#\s*gome:\s*(?P<kind>gpu|cpu)\b(?:[\s=:]+(?P<size>\d+(?:\.\d+)?)\s*(?P<unit>gib|gb|g|mib|mb|m)?\b)?",
    re.IGNORECASE,
)
_GPU_MODULES = (
    r"torch|torchvision|torchaudio|tensorflow|keras|jax|flax|cupy|cudf|cuml|timm|transformers"
    r"|sentence_transformers|lightning|pytorch_lightning|fastai"
)
_GPU_IMPORT = re.compile(rf"^\s*(?:from\s+(?:{_GPU_MODULES})\b|import\s+[^#\n]*\b(?:{_GPU_MODULES})\b)", re.MULTILINE)
_GPU_USE = re.compile(
    r"""\.cuda\(|["']cuda(?::\d+)?["']|\bdevice(?:_type)?\s*[=:]\s*["']gpu["']|\btask_type\s*[=:]\s*["']gpu["']"""
    r"""|\btree_method\s*[=:]\s*["']gpu_hist["']""",
    re.IGNORECASE,
)


def needs_gpu(code: str) -> tuple[bool, int | None]:
    """(whether the solution uses the GPU, the MiB it declares): a "# gome: gpu 12GB" / "# gome: cpu" marker
    in its first lines wins; otherwise deep-learning imports or CUDA devices in the code mean GPU."""
    for line in code.splitlines()[:MARKER_LINES]:
        marker = _MARKER.match(line)
        if marker is None:
            continue
        if marker["kind"].lower() == "cpu":
            return False, None
        if marker["size"] is None:
            return True, None
        unit = (marker["unit"] or "mb").lower()
        mb = round(float(marker["size"]) * (1024 if unit.startswith("g") else 1))
        return True, mb or None
    code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith("#"))
    return bool(_GPU_IMPORT.search(code) or _GPU_USE.search(code)), None


_GPU_OOM = re.compile(
    r"CUDA out of memory|torch\.(?:cuda\.)?OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED"
    r"|cudaErrorMemoryAllocation|CUDA_ERROR_OUT_OF_MEMORY|RESOURCE_EXHAUSTED: Out of memory"
    r"|CL_MEM_OBJECT_ALLOCATION_FAILURE|(?:cuda|gpu)\b.*\bout of memory",
    re.IGNORECASE,
)
_TF_OOM = re.compile(r"ResourceExhaustedError|OOM when allocating")
_CPU_DEVICE = re.compile(r"device:CPU|allocator cpu", re.IGNORECASE)


def is_gpu_oom(stderr: str) -> bool:
    """Whether a failed run's error output shows the GPU ran out of memory (not the host: MemoryError, Killed)."""
    if _GPU_OOM.search(stderr):
        return True
    tf_lines = [line for line in stderr.splitlines() if _TF_OOM.search(line)]
    # TensorFlow raises the same error when host memory runs out; it names the device then.
    return bool(tf_lines) and not any(_CPU_DEVICE.search(line) for line in tf_lines)
