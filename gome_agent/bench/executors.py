"""Where a sweep's runs happen: this machine, or a Ray cluster, behind one interface.

An executor (the `Executor` protocol of bench/sweep.py) takes the runs still to do and reports,
as they happen, each run that starts (and on which node), each result and each failure; the
sweep records them. Neither
decides what to run: a run that fails here is simply not recorded, and the next pass of the sweep
does it again.

- `LocalExecutor` (the default): one run at a time in this process, or up to N at once, each in a
  process of its own, within this machine's cores and GPUs (each run gets its own GPUs through
  CUDA_VISIBLE_DEVICES).
- `RayExecutor`: each run is a Ray task that asks for the CPUs and GPUs the run's settings need,
  writes its run folder where the sweep's storage path says (on the node that runs it), and is
  run again elsewhere when its node is lost (Ray's `max_retries`). Ray is imported here only,
  and only when a Ray executor runs: nothing else in gome needs it.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import socket
import traceback
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from gome_agent.bench.sweep import Event, Failed, Finished, RunResult, RunSpec, Started, execute
from gome_agent.errors import ConfigError
from gome_agent.execution.environment import detect_gpus

log = logging.getLogger(__name__)

RAY_EXTRA = "pip install 'gome-agent[ray]'"
CONNECT_TIMEOUT_S = 10.0


# This machine -------------------------------------------------------------------------------------


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [d.strip() for d in given.split(",") if d.strip() and d.strip() != "-1"]
    return [str(i) for i in range(len(detect_gpus()))]


def run_in_child(spec: RunSpec, devices: list[str] | None, node: str,
                 sender: multiprocessing.connection.Connection) -> None:
    """The body of a local run's own process: the run, and its result or its error sent back. What
    the run prints goes to `<run folder>.log` beside its folder, not to the sweep's terminal."""
    output = spec.workdir.with_name(f"{spec.workdir.name}.log")
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "ab") as log_file:
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    try:
        sender.send(("result", execute(spec, node=node).model_dump(mode="json")))
    except Exception:  # any failure of the run goes back as text, to be recorded; the sweep goes on
        sender.send(("error", traceback.format_exc()))
    finally:
        sender.close()


class LocalExecutor:
    """This machine: `parallel` runs at once at most, fewer when its cores or GPUs do not suffice.
    With `parallel` 1 the runs happen in this process; otherwise each in a process of its own."""

    def __init__(self, parallel: int = 1) -> None:
        if parallel < 1:
            raise ConfigError(f"--parallel must be at least 1, not {parallel}")
        self.parallel = parallel
        self.in_this_process = parallel == 1
        self.host = socket.gethostname()

    def slots(self, specs: list[RunSpec]) -> int:
        """How many of `specs` may run at once here."""
        cpus = max(s.cpus for s in specs)
        gpus = math.ceil(max(s.gpus for s in specs))
        cores = len(os.sched_getaffinity(0))
        fits = max(1, int(cores // cpus))
        if gpus:
            devices = len(visible_gpus())
            if devices < gpus:
                raise ConfigError(f"each run asks for {gpus} GPU(s) and this machine has {devices}")
            fits = min(fits, devices // gpus)
        if fits < self.parallel:
            log.info("running %d at once, not %d: each run asks for %g CPU(s)%s and this machine has %d cores%s",
                     fits, self.parallel, cpus, f" and {gpus} GPU(s)" if gpus else "", cores,
                     f" and {len(visible_gpus())} GPU(s)" if gpus else "")
        return min(self.parallel, fits)

    def execute(self, specs: list[RunSpec]) -> Iterator[Event]:
        if not specs:
            return
        if self.in_this_process:
            yield from self._one_at_a_time(specs)
        else:
            yield from self._in_processes(specs, self.slots(specs))

    def _one_at_a_time(self, specs: list[RunSpec]) -> Iterator[Event]:
        for spec in specs:
            yield Started(run_id=spec.id, node=self.host, host=self.host)
            try:
                result = execute(spec, node=self.host)
            except Exception:  # one run's failure is recorded and the sweep goes on; the next pass redoes it
                yield Failed(run_id=spec.id, node=self.host, error=traceback.format_exc())
                continue
            yield Finished(result=result)

    def _in_processes(self, specs: list[RunSpec], slots: int) -> Iterator[Event]:
        # Each run forks from a server process that imported gome once: a clean process (this one has
        # threads, the live display's among them, that a plain fork would copy half-way), started fast.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        gpus = math.ceil(max(s.gpus for s in specs))
        free = visible_gpus() if gpus else []
        waiting = list(specs)
        running: dict[Any, tuple[Any, RunSpec, list[str] | None]] = {}
        try:
            while waiting or running:
                while waiting and len(running) < slots:
                    spec = waiting.pop(0)
                    devices = [free.pop(0) for _ in range(gpus)] if gpus else None
                    receiver, sender = context.Pipe(duplex=False)
                    process = context.Process(target=run_in_child, args=(spec, devices, self.host, sender),
                                              name=f"gome sweep {spec.name}")
                    process.start()
                    sender.close()  # the child holds the only sending end: its death reads as EOF
                    running[receiver] = (process, spec, devices)
                    yield Started(run_id=spec.id, node=self.host, host=self.host)
                for receiver in multiprocessing.connection.wait(list(running)):
                    process, spec, devices = running.pop(receiver)
                    try:
                        kind, payload = receiver.recv()
                    except EOFError:
                        kind, payload = "error", "the run's process ended before sending its result"
                    process.join()
                    free.extend(devices or [])
                    if kind == "result":
                        yield Finished(result=RunResult.model_validate(payload))
                    else:
                        if process.exitcode:
                            payload += f" (exit code {process.exitcode})"
                        yield Failed(run_id=spec.id, node=self.host, error=payload)
        finally:
            for process, _, _ in running.values():  # the sweep stopped (Ctrl-C): stop the runs it started
                process.terminate()
                process.join()


# A Ray cluster --------------------------------------------------------------------------------------


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"--ray-address needs Ray on this machine and on the cluster's: {RAY_EXTRA}") from exc
    return ray


def check_reachable(address: str) -> None:
    """Fail at once, naming the address, where Ray itself would retry for minutes."""
    if address == "auto":
        return  # Ray looks for a cluster started on this machine and says at once when there is none
    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {exc} (start one with `ray start --head`; "
                          "give host:6379, ray://host:10001, or auto on one of its machines)") from exc


class StartBoard:
    """Where a sweep's Ray tasks say that they started (a Ray actor on the driver's node): the
    progress display and `attempts.jsonl` learn which node runs what."""

    def __init__(self) -> None:
        self.events: list[Started] = []

    def report(self, event: Started) -> None:
        self.events.append(event)

    def drain(self) -> list[Started]:
        events, self.events = self.events, []
        return events


def run_on_node(spec: RunSpec, board: Any) -> RunResult:
    """A sweep's run as a Ray task: says where it started, then runs and grades it there."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    # Not waited for: a task that waits on another gives its CPUs back while it waits, and Ray would
    # start a second run in them.
    board.report.remote(Started(run_id=spec.id, node=node, host=socket.gethostname()))
    return execute(spec, node=node)


class RayExecutor:
    """A Ray cluster at `address` (`auto`, host:port, or ray://host:port for Ray Client)."""

    in_this_process = False

    def __init__(self, address: str, *, max_retries: int = 3, poll_s: float = 0.5) -> None:
        self.address = address
        self.max_retries = max_retries
        self.poll_s = poll_s

    def connect(self, ray: ModuleType, specs: list[RunSpec]) -> None:
        check_reachable(self.address)
        # API keys are read from the environment: the runs get the driver's, where it has them.
        keys = {name: os.environ[name] for name in {s.llm.key_env_var() for s in specs} if name in os.environ}
        try:
            ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING,
                     runtime_env={"env_vars": keys} if keys else None)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot connect to the Ray cluster at {self.address}: {exc}") from exc

    def execute(self, specs: list[RunSpec]) -> Iterator[Event]:
        if not specs:
            return
        ray = import_ray()
        owned = not ray.is_initialized()  # a caller that connected itself keeps its connection
        if owned:
            self.connect(ray, specs)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        try:
            # Pinned to the driver's node, which the loss of a worker node cannot take down (Ray's soft
            # affinity may place it on any node).
            here = ray.get_runtime_context().get_node_id()
            board = ray.remote(StartBoard).options(
                num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False)).remote()
            task = ray.remote(run_on_node)
            pending = {
                task.options(num_cpus=s.cpus, num_gpus=s.gpus, max_retries=self.max_retries, retry_exceptions=False,
                             name=s.name).remote(s, board): s
                for s in specs
            }
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=self.poll_s)
                try:
                    yield from ray.get(board.drain.remote())
                except ray.exceptions.RayError as exc:  # the board feeds the display only; the results come anyway
                    log.warning("could not read which runs started: %s", exc)
                for ref in ready:
                    spec = pending.pop(ref)
                    try:
                        yield Finished(result=ray.get(ref))
                    except ray.exceptions.RayError as exc:  # the run's own error, or its retries used up
                        yield Failed(run_id=spec.id, error=str(exc))
        finally:
            if owned:
                ray.shutdown()
