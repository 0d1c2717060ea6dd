"""AIDE as a peer in `gome bench run`: its command line, its LLM settings, its submission, its time limit."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from gome_agent.bench.compare import compare
from gome_agent.bench.grading import grade_csv
from gome_agent.bench.peers import (
    AIDE_MAX_STEPS,
    AIDE_VERSION,
    ENV_RECORD,
    PeerEnv,
    PeerError,
    SubmissionWatcher,
    aide_command,
    aide_crash,
    aide_environment,
    aide_llm_variables,
    collect_aide_submission,
    ensure_aide_venv,
    installed_version,
    run_aide,
)
from gome_agent.bench.prepare import load_competition, prepare
from gome_agent.cli import build_parser
from gome_agent.errors import ConfigError
from gome_agent.llm.config import LLMConfig

LOCAL = LLMConfig(provider="openai-compatible", base_url="http://127.0.0.1:8080/v1", model="qwen2.5-coder")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench")
    prepare(root, only=["breast-cancer"], leaderboard_scale=0.1)
    return root


@pytest.fixture(scope="module")
def competition(data):
    return load_competition(data, "breast-cancer")


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\n{body}", encoding="utf-8")
    path.chmod(0o755)
    return path


def _fake_venv(root: Path, body: str) -> Path:
    """A folder shaped like a virtual environment with aideml installed, whose `aide` runs `body`."""
    _script(root / "bin" / "aide", body)
    (root / "lib" / "python3.11" / "site-packages" / f"aideml-{AIDE_VERSION}.dist-info").mkdir(parents=True)
    return root


# The command line and the LLM settings ------------------------------------------------------------


def test_aide_command_passes_the_competition_model_and_limits(competition, tmp_path):
    aide = tmp_path / "venv" / "bin" / "aide"
    cmd = aide_command(aide, competition=competition, llm=LOCAL, aide_dir=tmp_path / "run" / "aide",
                       exec_timeout_s=120.7, exp_name="seed1")
    assert cmd[0] == str(aide)
    args = dict(arg.split("=", 1) for arg in cmd[1:])
    assert args == {
        "data_dir": str(competition.public_dir.resolve()),
        "desc_file": str(competition.description_path.resolve()),
        "log_dir": str((tmp_path / "run" / "aide" / "logs").resolve()),
        "workspace_dir": str((tmp_path / "run" / "aide" / "workspaces").resolve()),
        "exp_name": "seed1",
        "exec.timeout": "120",
        "agent.steps": str(AIDE_MAX_STEPS),
        "agent.code.model": "qwen2.5-coder",
        "agent.feedback.model": "qwen2.5-coder",
        "report.model": "qwen2.5-coder",
        "generate_report": "False",
    }
    hot = LOCAL.model_copy(update={"temperature": 0.2})
    args = dict(arg.split("=", 1) for arg in aide_command(aide, competition=competition, llm=hot,
                                                           aide_dir=tmp_path, exec_timeout_s=60, exp_name="s")[1:])
    assert args["agent.code.temp"] == args["agent.feedback.temp"] == "0.2"


def test_a_local_server_is_reached_through_openai_variables(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert aide_llm_variables(LOCAL) == {"OPENAI_BASE_URL": "http://127.0.0.1:8080/v1", "OPENAI_API_KEY": "not-needed"}
    monkeypatch.setenv("MY_KEY", "sk-mine")
    keyed = LOCAL.model_copy(update={"api_key_env": "MY_KEY"})
    env = aide_environment(keyed, {"PATH": "/bin", "OPENAI_BASE_URL": "https://elsewhere", "ANTHROPIC_API_KEY": "x"})
    assert env == {"PATH": "/bin", "OPENAI_BASE_URL": "http://127.0.0.1:8080/v1", "OPENAI_API_KEY": "sk-mine",
                   "PYTHONUNBUFFERED": "1"}


def test_openai_and_anthropic_map_to_aides_own_backends(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-o")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-a")
    assert aide_llm_variables(LLMConfig(provider="openai", model="gpt-5")) == {"OPENAI_API_KEY": "sk-o"}
    assert aide_llm_variables(LLMConfig(provider="anthropic", model="claude-sonnet-4-5")) == {"ANTHROPIC_API_KEY": "sk-a"}


@pytest.mark.parametrize("llm, cause", [
    (LLMConfig(provider="openai-compatible", base_url="http://127.0.0.1:8000/v1", model="gpt-oss-20b"),
     "to their vendors' own APIs"),
    (LLMConfig(provider="openai", model="my-finetune"), "only for OpenAI's own models"),
    (LLMConfig(provider="anthropic", model="sonnet"), "only models named claude-"),
])
def test_settings_aide_cannot_follow_are_refused_with_the_cause(llm, cause, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    with pytest.raises(ConfigError, match=cause):
        aide_llm_variables(llm)


def test_the_command_line_takes_aide_and_its_venv():
    args = build_parser().parse_args(["bench", "run", "--competitions", "a", "--model", "m", "--data-dir", "d",
                                      "--out", "o", "--strategies", "gome,tree,aide", "--aide-venv", "/v"])
    assert args.strategies == "gome,tree,aide" and args.aide_venv == Path("/v")


def test_compare_refuses_an_unknown_strategy(tmp_path):
    with pytest.raises(ConfigError, match="unknown strategy aider"):
        compare(data_dir=tmp_path, out=tmp_path, competitions=["breast-cancer"], strategies=["gome", "aider"],
                seeds=1, llm=LOCAL, time_limit_s=60)


# The virtual environment ---------------------------------------------------------------------------


def test_a_failed_install_names_the_cause(tmp_path):
    venv = tmp_path / "venv"
    (venv / "pyvenv.cfg").parent.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    _script(venv / "bin" / "python", "import sys\n"
            "print('ERROR: Could not find a version that satisfies the requirement aideml==0.2.2 (from versions: none)')\n"
            "sys.exit(1)\n")
    with pytest.raises(PeerError) as caught:
        ensure_aide_venv(venv)
    message = str(caught.value)
    assert f"could not install aideml=={AIDE_VERSION} for AIDE in {venv}" in message
    assert "(from versions: none)" in message and "is the network reachable?" in message and "--aide-venv" in message


def test_an_unfinished_install_is_completed_and_a_users_venv_is_used_as_it_is(tmp_path):
    venv = tmp_path / "venv"
    (venv / "pyvenv.cfg").parent.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    calls = tmp_path / "pip-calls.txt"
    _script(venv / "bin" / "python", f"import sys\nopen({str(calls)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n")
    _script(venv / "bin" / "aide", "")
    (venv / ENV_RECORD).write_text(PeerEnv(package="aideml", version=AIDE_VERSION, requirements=[],
                                           complete=False).model_dump_json())
    assert ensure_aide_venv(venv) == venv / "bin" / "aide"
    lines = calls.read_text().splitlines()
    assert len(lines) == 2 and f"--no-deps aideml=={AIDE_VERSION}" in lines[0] and "lightgbm" in lines[1]
    assert PeerEnv.model_validate_json((venv / ENV_RECORD).read_text()).complete
    ensure_aide_venv(venv)
    assert len(calls.read_text().splitlines()) == 2  # installed once

    own = _fake_venv(tmp_path / "own", "")
    assert ensure_aide_venv(own) == own / "bin" / "aide" and not (own / ENV_RECORD).exists()
    assert installed_version(own) == AIDE_VERSION


# Its submission ---------------------------------------------------------------------------------------


def _node(ident: str, step: int, ctime: float, *, buggy: bool, metric: float | None = None,
          maximize: bool = True) -> dict:
    return {"code": "...", "plan": "...", "step": step, "id": ident, "ctime": ctime, "_term_out": [],
            "exec_time": 1.0, "exc_type": None, "analysis": "...", "is_buggy": buggy,
            "metric": {"value": metric, "maximize": maximize if metric is not None else None}}


def _aide_output(aide_dir: Path, nodes: list[dict]) -> Path:
    """AIDE's output layout (aideml 0.2.2): logs/<exp>/journal.json and workspaces/<exp>/working/."""
    journal = aide_dir / "logs" / "0-seed0" / "journal.json"
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text(json.dumps({"nodes": nodes, "node2parent": {}, "__version": "2"}))
    working = aide_dir / "workspaces" / "0-seed0" / "working"
    working.mkdir(parents=True, exist_ok=True)
    return working / "submission.csv"


def _answers_as_submission(competition, path: Path, *, broken: bool = False) -> None:
    answers = competition.answers_path.read_text()
    path.write_text("id,nonsense\n1,2\n" if broken else answers)


def test_the_submission_of_the_best_good_node_is_graded(competition, tmp_path):
    aide_dir, store, dest = tmp_path / "aide", tmp_path / "aide" / "submissions", tmp_path / "submission.csv"
    nodes = [_node("a", 0, 1.0, buggy=False, metric=0.90), _node("b", 1, 2.0, buggy=False, metric=0.95),
             _node("c", 2, 3.0, buggy=True), _node("d", 3, 4.0, buggy=False, metric=0.99)]
    left = _aide_output(aide_dir, nodes)
    store.mkdir()
    _answers_as_submission(competition, store / "b.csv")        # the best good node that wrote one
    _answers_as_submission(competition, store / "a.csv", broken=True)
    _answers_as_submission(competition, left, broken=True)      # what the last node left
    found, source = collect_aide_submission(aide_dir, store, dest)
    assert len(found) == 4 and source.startswith("node 1's") and "metric 0.95" in source
    report = grade_csv(dest, competition)
    assert report.valid_submission and report.score == pytest.approx(1.0)


def test_lower_is_better_nodes_rank_by_their_own_direction(competition, tmp_path):
    aide_dir, store = tmp_path / "aide", tmp_path / "aide" / "submissions"
    _aide_output(aide_dir, [_node("a", 0, 1.0, buggy=False, metric=0.3, maximize=False),
                            _node("b", 1, 2.0, buggy=False, metric=0.1, maximize=False)])
    store.mkdir()
    for ident in "ab":
        _answers_as_submission(competition, store / f"{ident}.csv")
    assert collect_aide_submission(aide_dir, store, tmp_path / "s.csv")[1].startswith("node 1's")


def test_without_a_good_node_the_last_submission_left_is_graded_and_may_be_invalid(competition, tmp_path):
    aide_dir, store, dest = tmp_path / "aide", tmp_path / "aide" / "submissions", tmp_path / "submission.csv"
    left = _aide_output(aide_dir, [_node("a", 0, 1.0, buggy=True)])
    _answers_as_submission(competition, left, broken=True)
    assert collect_aide_submission(aide_dir, store, dest)[1].startswith("the last submission.csv AIDE left")
    report = grade_csv(dest, competition)
    assert not report.valid_submission and report.invalid_reason

    left.unlink()
    dest.unlink()
    assert collect_aide_submission(aide_dir, store, dest)[1].startswith("none")
    assert not dest.exists() and not grade_csv(dest, competition).valid_submission


def test_the_watcher_keeps_a_submission_only_for_the_node_that_wrote_it(tmp_path):
    aide_dir, store = tmp_path / "aide", tmp_path / "store"
    now = time.time()
    left = _aide_output(aide_dir, [_node("a", 0, now - 100, buggy=False, metric=1.0)])
    left.write_text("id,target\n1,0\n")
    os.utime(left, (now - 50, now - 50))
    watcher = SubmissionWatcher(aide_dir, store)
    watcher.poll()
    assert (store / "a.csv").read_text() == "id,target\n1,0\n"
    # The next node wrote none: the file left is the previous node's, not its own.
    _aide_output(aide_dir, [_node("a", 0, now - 100, buggy=False, metric=1.0), _node("b", 1, now - 10, buggy=False,
                                                                                   metric=2.0)])
    watcher.poll()
    assert sorted(p.name for p in store.iterdir()) == ["a.csv"]


# The time limit -----------------------------------------------------------------------------------------


_SLEEPER = """import subprocess, sys, time
from pathlib import Path
Path('calls.txt').open('a').write('run\\n')
child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])
Path('child.pid').write_text(str(child.pid))
time.sleep(300)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_run_past_its_budget_is_killed_with_its_children_and_recorded_as_timed_out(data, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    venv = _fake_venv(tmp_path / "venv", _SLEEPER)
    out = tmp_path / "results"
    started = time.monotonic()
    summary = compare(data_dir=data, out=out, competitions=["breast-cancer"], strategies=["aide"], seeds=1,
                      llm=LOCAL, time_limit_s=3, aide_venv=venv)
    assert time.monotonic() - started < 3 + 8
    workdir = out / "runs" / "breast-cancer" / "aide" / "seed0"
    assert not _alive(int((workdir / "aide" / "child.pid").read_text()))
    [row] = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert row["strategy"] == "aide" and row["steps"] == 0
    assert row["reason"].startswith("time limit: AIDE stopped after 3 s") and "submission: none" in row["reason"]
    assert not row["report"]["valid_submission"] and not row["report"]["submission_exists"]
    assert summary["aide"]["valid_submission"]["mean"] == 0.0
    record = json.loads((workdir / "peer.json").read_text())
    assert record["timed_out"] and record["returncode"] is None and record["version"] == AIDE_VERSION
    assert record["llm_variables"] == {"OPENAI_BASE_URL": LOCAL.base_url, "OPENAI_API_KEY": "$OPENAI_API_KEY"}
    compare(data_dir=data, out=out, competitions=["breast-cancer"], strategies=["aide"], seeds=1,
            llm=LOCAL, time_limit_s=3, aide_venv=venv)
    assert (workdir / "aide" / "calls.txt").read_text() == "run\n"  # a finished run is not run again


def test_a_crashed_aide_is_stopped_at_once_with_its_error(competition, tmp_path):
    # aideml 0.2.2 does not exit after a crash: it waits for its interpreter's worker, which never ends.
    aide = tmp_path / "venv" / "bin" / "aide"
    venv = _fake_venv(tmp_path / "venv", f"""import sys, time
print("Plan + code extraction failed, retrying...")
print('Traceback (most recent call last):\\n  File "{aide}", line 8, in <module>\\n    sys.exit(run())\\n'
      '             ^^^^^\\n'
      "TypeError: string indices must be integers, not 'str'", file=sys.stderr, flush=True)
time.sleep(300)
""")
    started = time.monotonic()
    peer = run_aide(aide=venv / "bin" / "aide", competition=competition, llm=LOCAL, workdir=tmp_path / "run",
                    time_limit_s=60, max_run_s=15, seed=0)
    assert time.monotonic() - started < 20
    assert peer.reason.startswith("AIDE crashed after ") and "TypeError: string indices must be integers" in peer.reason
    assert aide_crash(tmp_path / "run" / "aide" / "aide.log", aide) == "TypeError: string indices must be integers, not 'str'"


# The real thing (not in the default run) -------------------------------------------------------------


def _local_server_up(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=3) as reply:
            return reply.status == 200
    except OSError:
        return False


@pytest.mark.slow
def test_real_aide_against_the_local_llama_server(data, tmp_path):
    if not _local_server_up(LOCAL.base_url or ""):
        pytest.skip("no local llama.cpp server at http://127.0.0.1:8080/v1 (start one: gome llm serve)")
    out = tmp_path / "results"
    started = time.monotonic()
    compare(data_dir=data, out=out, competitions=["breast-cancer"], strategies=["aide"], seeds=1, llm=LOCAL,
            time_limit_s=180)
    assert time.monotonic() - started < 180 + 60  # the first call may install aideml's venv
    [row] = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    record = json.loads((Path(row["workdir"]) / "peer.json").read_text())
    # With a small model AIDE may end any way (see README); how it ended is recorded and its submission graded.
    assert record["version"] == AIDE_VERSION and record["reason"] == row["reason"] and record["elapsed_s"] <= 185
    assert row["report"]["submission_exists"] == (Path(row["workdir"]) / "submission" / "submission.csv").is_file()
