"""The same sweep on this machine one run at a time, and on a local Ray cluster (issue #16).

Twelve real runs (breast-cancer; gome and tree; six seeds; one step each) with the scripted LLM
behind the test suite's fake server, so the runs cost CPU and process starts, not model time.
First `LocalExecutor(1)`, then a Ray cluster started here (a head and one worker node, one CPU
each, on 127.0.0.1) with `RayExecutor`. It prints, as JSON, the wall time of each sweep, the
runs' own durations (measured inside each run: the agent and the grading), what each sweep
spends per run beyond them, the cluster's start, the driver's connection (apart from the sweep's
wall time) and the round trip of an empty Ray task.

Run from a checkout, with the `ray` extra installed (the fake server lives in tests/):
    python benchmarks/sweep_bench.py [--seeds 6] [--out FOLDER]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Ray would announce this machine's network address; with clusters "off" it keeps to 127.0.0.1.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gome_agent.bench.compare import bench  # noqa: E402
from gome_agent.bench.executors import LocalExecutor, RayExecutor  # noqa: E402
from gome_agent.bench.overhead import ANALYSIS  # noqa: E402
from gome_agent.bench.prepare import prepare  # noqa: E402
from gome_agent.bench.scripted import ScriptedPolicy  # noqa: E402
from gome_agent.bench.sweep import RESULTS, Executor, SweepSpec, read_results  # noqa: E402
from gome_agent.llm.types import Message  # noqa: E402
from tests.fake_llm import FakeLLMServer  # noqa: E402

SETTINGS = {"traces": 1, "final_reserve_fraction": 0.0,
            "optimizer": {"max_steps": 1, "max_debug": 0, "draft_repairs": 0},
            "execution": {"min_run_seconds": 1, "static_checks": False, "smoke": {"enabled": False}},
            "validation": {"refit": False}}


def one_sweep(sweep: SweepSpec, out: Path, executor: Executor, slots: int) -> dict[str, object]:
    started = time.monotonic()
    outcome = bench(sweep, out=out, executor=executor)
    wall = time.monotonic() - started
    results = read_results(out / RESULTS)
    assert outcome.finished == len(results) and not outcome.failed, outcome
    durations = [r.duration_s or 0.0 for r in results]
    return {
        "runs": len(results), "slots": slots, "wall_s": round(wall, 1),
        "run_s": {"mean": round(statistics.fmean(durations), 2), "min": min(durations), "max": max(durations)},
        # slot-seconds per run not spent inside a run: scheduling, process starts, results coming back, idle tails
        "beyond_the_run_s": round(wall * slots / len(results) - statistics.fmean(durations), 2),
        "nodes": sorted({r.node or "" for r in results}),
    }


def measure(seeds: int, work: Path) -> dict[str, object]:
    prepare(work / "data", only=["breast-cancer"], leaderboard_scale=0.1)
    policy = ScriptedPolicy(ANALYSIS, seed=0, accept_rate=0.7)
    with FakeLLMServer() as server:
        server.set_responder(lambda request: policy([Message(role="user", content=request.text)], request.model))
        sweep = SweepSpec(competitions=["breast-cancer"], strategies=["gome", "tree"], seeds=seeds, models=["m"],
                          llm={"provider": "openai-compatible", "base_url": server.base_url_openai},
                          time_limit="10m", settings=SETTINGS, data_dir=work / "data")
        local = one_sweep(sweep, work / "local", LocalExecutor(1), slots=1)

        import ray
        from ray.cluster_utils import Cluster

        booted = time.monotonic()
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 10**8})
        try:
            cluster.add_node(num_cpus=1, object_store_memory=10**8)
            cluster.wait_for_nodes()
            boot_s = time.monotonic() - booted
            connected = time.monotonic()
            ray.init(address=cluster.address, log_to_driver=False)  # what RayExecutor does first, timed apart
            connect_s = time.monotonic() - connected
            on_ray = one_sweep(sweep, work / "ray", RayExecutor(cluster.address), slots=2)
            empty = ray.remote(lambda: None)
            ray.get(empty.remote())  # a worker started
            trips = []
            for _ in range(50):
                sent = time.monotonic()
                ray.get(empty.remote())
                trips.append(time.monotonic() - sent)
            ray.shutdown()
        finally:
            cluster.shutdown()
    return {
        "machine": {"cpus": os.cpu_count(), "load_average_1min_at_end": round(os.getloadavg()[0], 2)},
        "local_one_at_a_time": local,
        "ray_head_and_worker": on_ray,
        "ray": {"cluster_start_s": round(boot_s, 1), "connect_s": round(connect_s, 2),
                "empty_task_round_trip_ms": {"median": round(1000 * statistics.median(trips), 1),
                                             "max": round(1000 * max(trips), 1)}},
        "speed_up": round(float(local["wall_s"]) / float(on_ray["wall_s"]), 2),
        "ray_adds_per_run_s": round(float(on_ray["beyond_the_run_s"]) - float(local["beyond_the_run_s"]), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=6, help="seeds per strategy (runs = 2 x seeds)")
    parser.add_argument("--out", type=Path, help="keep the sweeps' folders here")
    args = parser.parse_args()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        result = measure(args.seeds, args.out)
    else:
        with tempfile.TemporaryDirectory(prefix="gome-sweep-bench-") as tmp:
            result = measure(args.seeds, Path(tmp))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
