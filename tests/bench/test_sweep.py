"""Sweeps (`gome bench run`): run specifications with stable ids, executed on this machine or on a
real Ray cluster that these tests start (a head and worker nodes on this machine), resumable.

Every run here is a real `gome_agent.run` (or grading) with the scripted LLM behind the fake
server and a one-step budget, about 5 s each.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gome_agent import jsonl
from gome_agent.bench.compare import bench, summarize_folder
from gome_agent.bench.executors import LocalExecutor, RayExecutor
from gome_agent.bench.prepare import prepare
from gome_agent.bench.sweep import (
    ATTEMPTS,
    RESULTS,
    Attempt,
    SweepSpec,
    expand,
    load_sweep,
    read_results,
    run_id,
    sweep_spec,
)
from gome_agent.cli import main
from gome_agent.errors import ConfigError
from tests.run.test_coordinator import Recorder

# One step, no smoke run, no refit: the cheapest real run.
SETTINGS = {"traces": 1, "final_reserve_fraction": 0.0,
            "optimizer": {"max_steps": 1, "max_debug": 0, "draft_repairs": 0},
            "execution": {"min_run_seconds": 1, "static_checks": False, "smoke": {"enabled": False}},
            "validation": {"refit": False}}
HOST = socket.gethostname()
# Ray would announce this machine's network address; with clusters "off" its nodes, drivers and
# workers keep to 127.0.0.1. Set before Ray is first imported (its constants read it then); its
# processes inherit it.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"


def need_ray():
    """Ray, or a skip where it is not installed; in CI it must be (pip install -e '.[dev]' brings it)."""
    if os.environ.get("CI"):
        import ray

        return ray
    return pytest.importorskip("ray")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bench")
    prepare(folder, only=["breast-cancer"], leaderboard_scale=0.1)
    return folder


def sweep_of(data: Path, fake, *, seeds: int = 6, strategies=("gome", "tree"), models=("m",)) -> SweepSpec:
    fake.set_responder(Recorder())
    return SweepSpec(competitions=["breast-cancer"], strategies=list(strategies), seeds=seeds, models=list(models),
                     llm={"provider": "openai-compatible", "base_url": fake.base_url_openai}, time_limit="10m",
                     settings=SETTINGS, data_dir=data)


@pytest.fixture(scope="module")
def ray_cluster():
    """A Ray cluster of two nodes on this machine (one CPU each), stopped after the module's tests."""
    need_ray()
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 10**8})
    try:
        cluster.add_node(num_cpus=1, object_store_memory=10**8)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()


def node_ids(cluster) -> set[str]:
    return {node.node_id for node in cluster.list_all_nodes()}


def attempts(out: Path) -> list[Attempt]:
    return jsonl.read(out / ATTEMPTS, Attempt)


# Specifications --------------------------------------------------------------------------------------


def test_a_sweep_expands_to_named_runs_whose_ids_ignore_where_they_run(tmp_path, fake_llm):
    sweep = sweep_of(tmp_path / "data", fake_llm, seeds=3, models=("m", "org/other"))
    specs = expand(sweep, storage=tmp_path / "runs")
    assert len(specs) == 1 * 3 * 2 * 2 and len({s.id for s in specs}) == 12
    assert specs[0].name == "breast-cancer/gome/m/seed0" and specs[0].workdir == tmp_path / "runs" / specs[0].name
    assert "breast-cancer/tree/org_other/seed2" in {s.name for s in specs}
    assert all(len(s.id) == 12 and s.cpus == 1 and s.gpus == 0 for s in specs)
    # Where the data, the run folders and the model's server are does not change a run's id ...
    moved = sweep.model_copy(update={"data_dir": tmp_path / "elsewhere", "llm": {**sweep.llm, "base_url": "http://x/v1"}})
    assert [s.id for s in expand(moved, storage=tmp_path / "other")] == [s.id for s in specs]
    # ... what the run is does.
    for change in ({"time_limit": "11m"}, {"settings": {**SETTINGS, "traces": 2}}, {"seeds": [1, 2, 3]}):
        assert expand(sweep.model_copy(update=change), storage=tmp_path)[0].id != specs[0].id
    one_model = expand(sweep.model_copy(update={"models": ["m"]}), storage=tmp_path / "runs")
    assert one_model[0].name == "breast-cancer/gome/seed0"  # the model is in the name only when the sweep has several
    assert one_model[0].id == specs[0].id == run_id(specs[0])


def test_the_readme_sweep_file_is_a_valid_sweep(tmp_path):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(# sweep.yaml\n.*?)```", readme, re.DOTALL).group(1)
    (tmp_path / "sweep.yaml").write_text(block)
    specs = expand(sweep_spec(load_sweep(tmp_path / "sweep.yaml")), storage=tmp_path / "runs")
    assert len(specs) == 3 * 3 * 2 * 3 and {s.cpus for s in specs} == {2.0}
    assert specs[0].name == "breast-cancer/gome/qwen2.5-coder-0.5b/seed0"


def test_bad_sweeps_are_refused_with_the_cause(tmp_path, fake_llm):
    sweep = sweep_of(tmp_path, fake_llm)
    file = tmp_path / "sweep.yaml"
    file.write_text("competitions: [breast-cancer, titanic]\nmodels: [m]\n")
    with pytest.raises(ConfigError, match="unknown benchmark competition 'titanic'"):
        expand(sweep_spec(load_sweep(file), str(file)), storage=tmp_path)
    with pytest.raises(ConfigError, match="unknown strategy mcts"):
        expand(sweep.model_copy(update={"strategies": ["gome", "mcts"]}), storage=tmp_path)
    with pytest.raises(ConfigError, match=r"sweep.yaml is not valid: seed: Extra inputs"):
        file.write_text("competitions: [breast-cancer]\nmodels: [m]\nseed: 3\n")
        sweep_spec(load_sweep(file), str(file))
    with pytest.raises(ConfigError, match="settings may not hold seed, llm"):
        expand(sweep.model_copy(update={"settings": {"seed": 1, "llm": {}}}), storage=tmp_path)
    with pytest.raises(ConfigError, match="invalid configuration: traces"):
        expand(sweep.model_copy(update={"settings": {"traces": 0}}), storage=tmp_path)
    with pytest.raises(ConfigError, match="names the same run twice"):
        expand(sweep.model_copy(update={"models": ["m", "m"]}), storage=tmp_path)
    results = tmp_path / RESULTS
    results.write_text('{"competition_id": "a"}\n{"competition_id": "a", "strategy": "gome", "seed": 0}\n')
    with pytest.raises(ConfigError, match=r"results.jsonl:1 is not a result of gome bench run .*fix or remove"):
        read_results(results)
    assert main(["bench", "summary", "--out", str(tmp_path)]) == 2


def test_an_unreachable_ray_cluster_is_named(tmp_path, fake_llm):
    need_ray()
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    specs = expand(sweep_of(tmp_path, fake_llm, seeds=1), storage=tmp_path)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}: .*ray start --head"):
        list(RayExecutor(f"127.0.0.1:{port}").execute(specs))
    assert time.monotonic() - started < 15


def test_without_ray_the_local_executor_and_the_command_work_and_ray_says_what_to_install(tmp_path):
    script = """
import sys
sys.modules["ray"] = None  # as if Ray were not installed
from gome_agent.cli import build_parser
from gome_agent.bench.compare import bench
from gome_agent.bench.executors import LocalExecutor, RayExecutor
from gome_agent.bench.sweep import SweepSpec, expand
from gome_agent.errors import ConfigError
from pathlib import Path
spec = expand(SweepSpec(competitions=["breast-cancer"], models=["m"], llm={"provider": "openai-compatible",
              "base_url": "http://127.0.0.1:9/v1"}, data_dir=Path("d"), seeds=1), storage=Path("r"))
try:
    list(RayExecutor("auto").execute(spec))
except ConfigError as exc:
    print(exc)
print(LocalExecutor(1).slots(spec), sys.modules["ray"])
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "--ray-address needs Ray on this machine and on the cluster's: pip install 'gome-agent[ray]'", "1 None"]


# Sweeps that run ---------------------------------------------------------------------------------------


def kill_when_a_run_starts_there(cluster, node, out: Path, killed: list[str]) -> threading.Thread:
    """A thread that kills `node` (its raylet and its workers, as a lost machine) one second into
    the first run that starts on it, and notes which runs had started there."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            there = [a.run_id for a in attempts(out) if a.event == "started" and a.node == node.node_id]
            if there:
                time.sleep(1.0)  # into the run: its agent and its solution are at work
                cluster.remove_node(node, allow_graceful=False)
                killed.extend(there)
                return
            time.sleep(0.2)

    thread = threading.Thread(target=watch)
    thread.start()
    return thread


@pytest.mark.parametrize("where", ["local", "ray"])
def test_a_sweep_runs_every_run_once_over_the_nodes_loses_no_run_to_a_lost_node_and_a_rerun_starts_nothing(
        where, request, data, fake_llm, tmp_path):
    out = tmp_path / "results"
    killed: list[str] = []
    if where == "ray":
        # The module's head and worker, and a third node killed while it runs a run.
        cluster = request.getfixturevalue("ray_cluster")
        kept = node_ids(cluster)
        assert len(kept) == 2
        doomed = cluster.add_node(num_cpus=1, object_store_memory=10**8)
        cluster.wait_for_nodes()
        killer = kill_when_a_run_starts_there(cluster, doomed, out, killed)
        executor = RayExecutor(cluster.address)
    else:
        executor, kept = LocalExecutor(parallel=2), {HOST}  # two at once, one per core, each in its own process
    sweep = sweep_of(data, fake_llm)
    specs = expand(sweep, storage=out / "runs")
    assert len(specs) == 12
    outcome = bench(sweep, out=out, executor=executor)
    if where == "ray":
        killer.join()
        assert killed, "no run started on the node to kill"
    assert (outcome.total, outcome.skipped, outcome.finished, outcome.failed, outcome.redone) == (12, 0, 12, [], [])
    results = read_results(out / RESULTS)
    assert sorted(r.run_id for r in results) == sorted(s.id for s in specs)
    by_id = {s.id: s for s in specs}
    for result in results:
        spec = by_id[result.run_id]
        assert (result.name, result.competition_id, result.strategy, result.seed, result.model) == (
            spec.name, spec.competition, spec.strategy, spec.seed, "m")
        assert result.workdir == str(out / "runs" / spec.name) and result.host == HOST
        assert (Path(result.workdir) / "submission" / "submission.csv").is_file()
        assert result.report["valid_submission"] and result.steps == 1 and result.duration_s > 0
    # Every node that was kept ran some: on Ray, the head and the worker.
    assert kept <= {r.node for r in results} <= kept | ({doomed.node_id} if where == "ray" else set())
    log = attempts(out)
    started = [a for a in log if a.event == "started"]
    if where == "ray":
        # The runs cut short on the lost node started again on a kept one, and finished there.
        cut = set(killed) - {r.run_id for r in results if r.node == doomed.node_id}
        assert cut
        for result in results:
            if result.run_id in cut:
                assert result.node in kept and sum(a.run_id == result.run_id for a in started) >= 2
    else:
        assert sorted(a.run_id for a in started) == sorted(by_id)
        assert {a.run_id: a.node for a in started} == {r.run_id: r.node for r in results}
    summary = summarize_folder(out)
    assert summary.strategies["gome"]["runs"] == 6 and summary.strategies["gome"]["padded"] == 0
    assert summary.strategies["tree"]["valid_submission"] == {"mean": 100.0, "sem": 0.0}
    requests = len(fake_llm.requests)
    again = bench(sweep, out=out, executor=executor)
    assert (again.skipped, again.finished, again.redone, again.failed) == (12, 0, [], [])
    assert len(fake_llm.requests) == requests and len(attempts(out)) == len(log)
    assert len(read_results(out / RESULTS)) == 12
    if where == "ray":
        import ray

        assert not ray.is_initialized()  # nothing to run: the cluster was not even asked


def test_a_run_that_started_and_left_no_result_is_done_again_and_the_command_line_says_so(data, fake_llm, tmp_path,
                                                                                          monkeypatch, capsys):
    from gome_agent.bench import sweep as sweep_module

    sweep_of(data, fake_llm)  # the scripted LLM
    file = tmp_path / "sweep.yaml"
    file.write_text(f"""competitions: [breast-cancer]
strategies: [gome, tree]
seeds: 1
models: [m]
llm: {{provider: openai-compatible, base_url: "{fake_llm.base_url_openai}"}}
time_limit: 10m
settings: {{traces: 1, final_reserve_fraction: 0.0, optimizer: {{max_steps: 1, max_debug: 0, draft_repairs: 0}},
           execution: {{min_run_seconds: 1, static_checks: false, smoke: {{enabled: false}}}},
           validation: {{refit: false}}}}
""")
    out = tmp_path / "results"
    real_run = sweep_module.run

    def crashing(config):  # tree's run dies half-way: its folder is started, no result is written
        if config.strategy == "tree":
            (config.workdir / "half-written").parent.mkdir(parents=True)
            (config.workdir / "half-written").write_text("x")
            raise RuntimeError("the machine went away")
        return real_run(config)

    monkeypatch.setattr(sweep_module, "run", crashing)
    command = ["bench", "run", "--sweep", str(file), "--data-dir", str(data), "--out", str(out)]
    assert main(command) == 1
    first = capsys.readouterr()
    assert "sweep of 2 runs: 0 done before, 1 done now, 1 failed" in first.out
    assert "failed: breast-cancer/tree/seed0" in first.err and "the same command runs them again" in first.err
    [failure] = [a for a in attempts(out) if a.event == "failed"]
    assert failure.name == "breast-cancer/tree/seed0" and "RuntimeError: the machine went away" in failure.error
    assert "runs missing and counted as failures: gome 2, tree 3." in first.out
    monkeypatch.setattr(sweep_module, "run", real_run)
    assert main(command) == 0
    second = capsys.readouterr().out
    assert "sweep of 2 runs: 1 done before, 1 done now (1 started before and left no result), 0 failed" in second
    tree = next(r for r in read_results(out / RESULTS) if r.strategy == "tree")
    assert not (Path(tree.workdir) / "half-written").exists() and tree.report["valid_submission"]
    assert main(["bench", "summary", "--out", str(out)]) == 0
    assert "| tree | 1 | 33.3 ± 33.3 |" in capsys.readouterr().out


def test_a_signal_stops_the_sweep_and_the_run_it_cut_short_is_done_again(data, fake_llm, tmp_path, monkeypatch,
                                                                          capsys):
    import signal

    from gome_agent.bench import sweep as sweep_module

    spec = sweep_of(data, fake_llm, seeds=1, strategies=("gome",))
    real_run = sweep_module.run

    def killed_mid_run(config):  # SIGTERM arrives while the run is under way, as `kill` of the sweep sends it
        threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
        return real_run(config)

    out = tmp_path / "results"
    monkeypatch.setattr(sweep_module, "run", killed_mid_run)
    with pytest.raises(KeyboardInterrupt, match="stopped by signal SIGTERM"):
        bench(spec, out=out, executor=LocalExecutor())
    assert not (out / RESULTS).exists() or not read_results(out / RESULTS)  # the cut run is no result
    monkeypatch.setattr(sweep_module, "run", real_run)
    outcome = bench(spec, out=out, executor=LocalExecutor())
    assert outcome.finished == 1 and outcome.redone == ["breast-cancer/gome/seed0"]
