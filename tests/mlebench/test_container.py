"""The MLE-bench container flow, simulated: the /home layout in a temporary folder, the real
instructions, a stand-in grading server, the fake LLM, and start.sh run end to end."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import types
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from gome_agent.bench.competitions import build_breast_cancer
from gome_agent.bench.scripted import ScriptedPolicy, solution_code
from gome_agent.cli import build_parser
from gome_agent.execution.executor import namespaces_available
from gome_agent.mlebench.container import ContainerPaths, container_config, finalize
from gome_agent.records.best import BestKeeper
from gome_agent.records.events import EventLog
from gome_agent.task.sample import find_sample_submission, load_sample_submission
from gome_agent.task.submission import check_submission
from tests.fake_llm import FakeRequest
from tests.mlebench_standin import GradingStandIn
from tests.run.test_coordinator import Recorder
from tests.scripted_agent import ANALYSIS
from tests.shared import needs_shared, shared

ROOT = Path(__file__).resolve().parents[2]
SHARED = shared("mlebench")
MLE_BENCH = shared("mle-bench")
pytestmark = needs_shared
KEY = "sk-test-container-key-0123456789"


@pytest.fixture(scope="module")
def competition(tmp_path_factory):
    return build_breast_cancer(tmp_path_factory.mktemp("comp"))


def make_home(tmp_path: Path, competition: Path) -> Path:
    """/home as the mlebench-env container has it."""
    home = tmp_path / "home"
    shutil.copytree(competition, home / "data")
    for name in ("instructions.txt", "instructions_obfuscated.txt"):
        shutil.copyfile(SHARED / name, home / name)
    for name in ("submission", "logs", "code", "agent"):
        (home / name).mkdir()
    return home


def start_sh(home: Path, server: GradingStandIn | None, llm_url: str, *args: str,
             env: dict[str, str | None] | None = None,
             time_limit: int = 200, timeout: float = 300, execution: dict[str, Any] | None = None,
             text: bool = True) -> subprocess.CompletedProcess[Any]:
    base = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    base.update({
        "GOME_MLEBENCH_HOME": str(home), "COMPETITION_ID": "breast-cancer", "TIME_LIMIT_SECS": str(time_limit),
        "GOME_PYTHON": sys.executable, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": KEY,
        "GOME_GRADING_SERVER": server.url if server else "http://127.0.0.1:9", "GOME_TIME_MARGIN_SECS": "10",
    })
    base.update(env or {})
    for key, value in list(base.items()):
        if value is None:
            del base[key]
    config = home.parent / "gome.json"
    config.write_text(json.dumps({"final_reserve_fraction": 0.0, "optimizer": {"max_steps": 2, "max_debug": 0},
                                  "execution": {"min_run_seconds": 2, **(execution or {})},
                                  "validation": {"scoring": "self-reported"}}))
    cmd = ["bash", str(ROOT / "start.sh"), "--provider", "openai", "--base-url", llm_url, "--model", "fake",
           "--traces", "1", "--config", str(config), *args]
    return subprocess.run(cmd, env=base, capture_output=True, text=text, timeout=timeout, cwd=home)


class ChunkedContainer:
    """What `container.exec_run(cmd, stream=True, ...)` gives agents/run.py: the output in chunks of `size` bytes."""

    def __init__(self, output: bytes, size: int) -> None:
        self.output, self.size = output, size

    def exec_run(self, cmd: list[str], **kwargs: Any) -> tuple[None, Iterator[bytes]]:
        return None, (self.output[i:i + self.size] for i in range(0, len(self.output), self.size))


class ListLogger:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)


def mlebench_execute_agent(monkeypatch: pytest.MonkeyPatch) -> Any:
    """`execute_agent` of MLE-bench's real agents/run.py; the modules it imports only for the container's
    creation and extraction (docker, dotenv, MLE-bench's registry) are stubbed."""
    env = dict(line.split("=", 1) for line in (MLE_BENCH / "agents" / ".shared_env").read_text().split())
    stubs = {
        "docker": {"DockerClient": object}, "docker.models": {}, "docker.models.containers": {"Container": object},
        "dotenv": {"dotenv_values": lambda path: env},
        "agents": {}, "agents.registry": {"Agent": object},
        "environment": {}, "environment.utils": {name: None for name in (
            "create_competition_container", "extract_from_container", "extract_from_container_sysbox")},
        "mlebench": {}, "mlebench.registry": {"Competition": object}, "mlebench.utils": {"purple": str},
    }
    for name, attributes in stubs.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("mlebench_agents_run", MLE_BENCH / "agents" / "run.py")
    assert spec is not None and spec.loader is not None
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    return run.execute_agent


def assert_extracted(home: Path, competition: Path) -> None:
    """What run_agent.py tars out: a real, valid submission; the code; the logs and run record."""
    submission = home / "submission" / "submission.csv"
    assert submission.is_file() and not submission.is_symlink()
    sample = load_sample_submission(find_sample_submission(competition))
    assert check_submission(submission, sample) == []
    assert (home / "code" / "main.py").is_file()
    for name in ("start.log", "full_instructions.txt", "run/events.jsonl", "run/llm_calls.jsonl", "run/config.json"):
        assert (home / "logs" / name).is_file(), name
    everything = "".join(p.read_text(errors="ignore") for p in (home / "logs").rglob("*") if p.is_file())
    assert KEY not in everything


def test_start_sh_end_to_end(tmp_path, competition, fake_llm):
    recorder = Recorder()
    fake_llm.set_responder(recorder)
    home = make_home(tmp_path, competition)
    with GradingStandIn(competition.parent / "private" / "answers.csv") as server:
        result = start_sh(home, server, fake_llm.base_url_openai)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_extracted(home, competition)
    # Every accepted candidate was checked by the grading server, and all were valid.
    steps = EventLog(home / "logs" / "run" / "events.jsonl").steps()
    assert len(steps) == 2 and server.validations
    assert all(v == "Submission is valid." for v in server.validations)
    # The full instructions hold MLE-bench's text, the notes and the description.
    full = (home / "logs" / "full_instructions.txt").read_text()
    assert "You are participating in *MLE-bench*" in full and "**Compute**: You have access to a CPU" in full
    assert "Breast Cancer Diagnosis" in full
    assert "BENCHMARK INSTRUCTIONS" in recorder.requests[0]
    # Every prompt holds MLE-bench's instructions adapted to the solution contract, none its container paths.
    draft = next(r for r in recorder.requests if "Write the first complete solution" in r)
    assert "you MUST produce a submission file at `./submission.csv`" in draft
    assert "The dataset files for the competition are available in `./input/`" in draft
    assert not [r for r in recorder.requests if "/home/submission" in r or "/home/data" in r]
    # The data folder was only read.
    assert sorted(p.name for p in (home / "data").iterdir()) == sorted(p.name for p in competition.iterdir())
    # The run record has each attempt's code and logs.
    assert list((home / "logs" / "run" / "traces").glob("t0/s0001/a0/main.py"))


def test_hard_time_limit_still_leaves_the_best(tmp_path, competition, fake_llm):
    class Slow(Recorder):
        def __call__(self, request: FakeRequest) -> str:
            reply = super().__call__(request)
            if "## Your job: diagnose" in request.text:
                time.sleep(60)  # the hard time limit ends the run during this call
            return reply

    fake_llm.set_responder(Slow())
    home = make_home(tmp_path, competition)
    started = time.monotonic()
    with GradingStandIn(competition.parent / "private" / "answers.csv") as server:
        # gome is told it has 10 minutes, but start.sh's hard limit is 40 - 10 = 30 s.
        result = start_sh(home, server, fake_llm.base_url_openai, "--time-limit", "600", time_limit=40)
    assert time.monotonic() - started < 80
    assert "gome reached the hard time limit and was stopped" in result.stdout
    assert_extracted(home, competition)


def test_server_down_or_failing_falls_back_to_the_local_check(tmp_path, competition, fake_llm):
    fake_llm.set_responder(Recorder())
    home = make_home(tmp_path, competition)
    with GradingStandIn(competition.parent / "private" / "answers.csv", mode="error500") as server:
        result = start_sh(home, server, fake_llm.base_url_openai)
    assert result.returncode == 0
    assert_extracted(home, competition)
    log = (home / "logs" / "start.log").read_text() + "".join(
        p.read_text() for p in (home / "logs" / "run" / "logs").glob("*.log"))
    assert "unavailable (/validate answered 500); using the local format check only" in log

    home2 = make_home(tmp_path / "down", competition)
    result = start_sh(home2, None, fake_llm.base_url_openai)
    assert result.returncode == 0
    assert_extracted(home2, competition)


def test_slow_server_times_out_and_the_run_goes_on(tmp_path, competition, fake_llm):
    fake_llm.set_responder(Recorder())
    home = make_home(tmp_path, competition)
    with GradingStandIn(competition.parent / "private" / "answers.csv", mode="slow") as server:
        result = start_sh(home, server, fake_llm.base_url_openai, env={"GOME_GRADING_TIMEOUT_SECS": "1"})
    assert result.returncode == 0
    assert_extracted(home, competition)


def test_missing_competition_id_is_explained_and_a_submission_is_left(tmp_path, competition, fake_llm):
    home = make_home(tmp_path, competition)
    result = start_sh(home, None, fake_llm.base_url_openai, env={"COMPETITION_ID": None})
    assert result.returncode != 0
    log = (home / "logs" / "start.log").read_text()
    assert "COMPETITION_ID is not set" in log
    sample = find_sample_submission(competition)
    assert (home / "submission" / "submission.csv").read_bytes() == sample.read_bytes()


def test_missing_or_empty_data_is_explained(tmp_path, competition, fake_llm):
    home = make_home(tmp_path, competition)
    shutil.rmtree(home / "data")
    (home / "data").mkdir()
    result = start_sh(home, None, fake_llm.base_url_openai)
    assert result.returncode != 0
    log = (home / "logs" / "start.log").read_text()
    assert "is empty" in log and "no submission could be made" in log


def test_missing_secret_is_explained_and_a_submission_is_left(tmp_path, competition, fake_llm):
    home = make_home(tmp_path, competition)
    result = start_sh(home, None, fake_llm.base_url_openai, env={"OPENAI_API_KEY": None})
    assert result.returncode != 0
    log = (home / "logs" / "start.log").read_text()
    assert "OPENAI_API_KEY" in log
    assert (home / "submission" / "submission.csv").is_file()


def test_obfuscate_on_a_read_only_data_folder(tmp_path, competition, fake_llm):
    recorder = Recorder()
    fake_llm.set_responder(recorder)
    home = make_home(tmp_path, competition)
    (home / "agent" / "obfuscated").mkdir()
    (home / "agent" / "obfuscated" / "breast-cancer.md").write_text(
        "# Task\nPredict a binary label for each row.\n# Metric\nROC AUC.\n# Submission Format\nid,target\n")
    (home / "data").chmod(0o555)
    try:
        result = start_sh(home, None, fake_llm.base_url_openai, env={"OBFUSCATE": "true"})
    finally:
        (home / "data").chmod(0o755)
    assert result.returncode == 0, result.stdout
    assert_extracted(home, competition)
    task_prompt = recorder.requests[0]
    assert "Predict a binary label for each row." in task_prompt
    assert "Breast Cancer Diagnosis" not in task_prompt
    assert "a benchmark designed to test" in task_prompt  # the obfuscated instructions
    assert sorted(p.name for p in (home / "data").iterdir()) == sorted(p.name for p in competition.iterdir())


def test_obfuscate_without_an_obfuscated_description_refuses(tmp_path, competition, fake_llm):
    home = make_home(tmp_path, competition)
    result = start_sh(home, None, fake_llm.base_url_openai, env={"OBFUSCATE": "true"})
    assert result.returncode != 0
    log = (home / "logs" / "start.log").read_text()
    assert "no obfuscated description for 'breast-cancer'" in log
    assert (home / "submission" / "submission.csv").is_file()


# Issue 15 -------------------------------------------------------------------------------------


class Overwriter(Recorder):
    """Scripted replies whose every solution also writes `id,WRONG` where MLE-bench's own instructions
    put the graded file; no update improves, so the last write of the run is a solution's."""

    def __init__(self, graded: Path) -> None:
        super().__init__()
        wrong = (f"\ntry:\n    open({str(graded)!r}, 'w').write('id,WRONG\\n')\n"
                 "    print('overwrote the graded file')\n"
                 "except OSError as exc:\n    print('could not overwrite the graded file:', exc)\n")
        self.policy = ScriptedPolicy(ANALYSIS, accept_rate=0.0, code=lambda score: solution_code(score) + wrong)


@pytest.mark.parametrize("sandbox", ["none", "namespace"])
def test_a_solution_cannot_replace_the_published_best(tmp_path, competition, fake_llm, sandbox):
    if sandbox == "namespace" and not namespaces_available():
        pytest.skip("user namespaces are not usable here")
    home = make_home(tmp_path, competition)
    graded = home / "submission" / "submission.csv"
    fake_llm.set_responder(Overwriter(graded))
    result = start_sh(home, None, fake_llm.base_url_openai, execution={"sandbox": sandbox})
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = home / "agent" / "run"
    outputs = "".join(p.read_text() for p in (run_dir / "traces").glob("t0/s*/a*/stdout.txt"))
    # Without namespaces the solutions do write there; in them, the file is out of their reach.
    assert ("overwrote the graded file" in outputs) == (sandbox == "none"), outputs
    best = json.loads((run_dir / "code" / "best.json").read_text())
    assert best["source"] == "step"
    published = run_dir / best["code_dir"] / "submission.csv"
    assert graded.read_bytes() == published.read_bytes()
    assert b"WRONG" not in graded.read_bytes()


def _published_run(tmp_path: Path, home: Path) -> tuple[Path, Path]:
    """A run folder whose best (trace 0, step 1) was published to home/submission; (run dir, attempt dir)."""
    run_dir = tmp_path / "run"
    attempt = run_dir / "traces" / "t0" / "s0001" / "a0"
    attempt.mkdir(parents=True)
    (attempt / "main.py").write_text("print('best')\n")
    (attempt / "submission.csv").write_text("id,target\n1,0.9\n2,0.1\n")
    keeper = BestKeeper(run_dir, higher_is_better=True, mirror_submission_dir=home / "submission",
                        mirror_code_dir=home / "code")
    assert keeper.offer(score=0.9, trace=0, step=1, attempt_dir=attempt)
    return run_dir, attempt


def test_finalize_puts_back_the_recorded_best_over_a_newer_file(tmp_path, competition):
    home = make_home(tmp_path, competition)
    run_dir, attempt = _published_run(tmp_path, home)
    graded = home / "submission" / "submission.csv"
    graded.write_text("id,WRONG\n")  # written after the publication, as a re-run would
    later = time.time() + 60
    os.utime(graded, (later, later))
    messages = finalize(ContainerPaths.from_env({"GOME_MLEBENCH_HOME": str(home)}), run_dir)
    assert graded.read_bytes() == (attempt / "submission.csv").read_bytes()
    assert "differed" in messages[0]
    # The graded file is read-only, so a solution running as the same (non-root) user gets an error.
    assert stat.S_IMODE(graded.stat().st_mode) == 0o444


def test_finalize_takes_the_attempts_copy_when_the_runs_copy_was_changed(tmp_path, competition):
    home = make_home(tmp_path, competition)
    run_dir, attempt = _published_run(tmp_path, home)
    (run_dir / "submission" / "submission.csv").write_text("id,WRONG\n")
    (home / "submission" / "submission.csv").unlink()
    finalize(ContainerPaths.from_env({"GOME_MLEBENCH_HOME": str(home)}), run_dir)
    assert (home / "submission" / "submission.csv").read_bytes() == (attempt / "submission.csv").read_bytes()


def _zip_sample(data: Path) -> bytes:
    """The data folder's sample submission zipped the way MLE-bench prepares text normalization."""
    sample = find_sample_submission(data)
    content = sample.read_bytes()
    with zipfile.ZipFile(data / "en_sample_submission_2.csv.zip", "w") as archive:
        archive.write(sample, arcname="en_sample_submission_2.csv")
    sample.unlink()
    return content


def test_finalize_unzips_a_zipped_sample_submission(tmp_path, competition):
    home = make_home(tmp_path, competition)
    content = _zip_sample(home / "data")
    messages = finalize(ContainerPaths.from_env({"GOME_MLEBENCH_HOME": str(home)}), tmp_path / "no-run")
    assert (home / "submission" / "submission.csv").read_bytes() == content, messages
    assert "en_sample_submission_2.csv.zip" in messages[0]


def test_a_run_that_cannot_start_leaves_the_unzipped_sample(tmp_path, competition, fake_llm):
    home = make_home(tmp_path, competition)
    content = _zip_sample(home / "data")
    result = start_sh(home, None, fake_llm.base_url_openai, env={"OPENAI_API_KEY": None})
    assert result.returncode != 0
    assert (home / "submission" / "submission.csv").read_bytes() == content


@pytest.mark.parametrize("sandbox", ["none", "namespace"])
def test_obfuscated_runs_never_name_the_competition(tmp_path, competition, fake_llm, sandbox):
    if sandbox == "namespace" and not namespaces_available():
        pytest.skip("user namespaces are not usable here")
    home = make_home(tmp_path, competition)
    plain = home / "data" / "description.md"

    class Reader(Recorder):
        """Solutions that keep what ./input/description.md says, and what the plain one's path gives."""

        def __init__(self) -> None:
            super().__init__()
            keep = ("\nopen('seen_description.txt', 'w').write(open('input/description.md').read())\n"
                    f"open('seen_plain.txt', 'w').write(open({str(plain)!r}).read())\n")
            self.policy = ScriptedPolicy(ANALYSIS, code=lambda score: solution_code(score) + keep)

    recorder = Reader()
    fake_llm.set_responder(recorder)
    obfuscated = "# Task\nPredict a binary label for each row.\n# Metric\nROC AUC.\n# Submission Format\nid,target\n"
    (home / "agent" / "obfuscated").mkdir()
    (home / "agent" / "obfuscated" / "breast-cancer.md").write_text(obfuscated)
    # What each solution saw is read below from its attempt folder (by default it goes once the step is recorded).
    result = start_sh(home, None, fake_llm.base_url_openai, env={"OBFUSCATE": "true"},
                      execution={"sandbox": sandbox, "keep_outputs": "all"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert_extracted(home, competition)
    assert recorder.requests and not [r for r in recorder.requests if "breast-cancer" in r.lower()]
    attempts = list((home / "agent" / "run" / "traces").glob("t0/s*/a*/"))
    assert attempts and all((a / "seen_description.txt").read_text() == obfuscated for a in attempts)
    if sandbox == "namespace":  # and even by its path, the plain description is empty to a solution
        assert all((a / "seen_plain.txt").read_text() == "" for a in attempts)


def test_container_output_survives_mlebench_chunked_decoding(tmp_path, competition, monkeypatch):
    """agents/run.py decodes every streamed chunk on its own; a split multibyte character must not
    end the run (it would skip the extraction of the submission)."""
    home = make_home(tmp_path, competition)
    result = start_sh(home, None, "http://127.0.0.1:9", env={"COMPETITION_ID": "r²-task",
                                                               "GOME_DATA_DIR": str(home / "données")},
                      text=False)
    output: bytes = result.stdout + result.stderr
    assert output and max(output) < 128, output
    assert b"r\\xc2\\xb2-task" in output  # escaped, not lost
    execute_agent = mlebench_execute_agent(monkeypatch)
    for size in (1, 2, 3, 7, len(output)):
        logger = ListLogger()
        # Raises UnicodeDecodeError when a chunk ends inside a multibyte character.
        execute_agent(ChunkedContainer(output, size), SimpleNamespace(kwargs_type="argparse", kwargs={}), logger)
        assert len(logger.lines) == 1 + -(-len(output) // size)  # "Running agent...", then one per chunk


def test_solutions_find_the_agent_envs_python_first(tmp_path, competition):
    home = make_home(tmp_path, competition)
    agent_env = tmp_path / "conda" / "envs" / "agent" / "bin"
    agent_env.mkdir(parents=True)
    (agent_env / "python").symlink_to(sys.executable)
    record = tmp_path / "path.txt"
    wrapper = tmp_path / "gome-python"
    wrapper.write_text(f'#!/bin/sh\necho "$PATH" > {record}\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    start_sh(home, None, "http://127.0.0.1:9", env={"COMPETITION_ID": None, "GOME_PYTHON": str(wrapper),
                                                   "GOME_SOLUTION_PYTHON": str(agent_env / "python")})
    first = next(d for d in record.read_text().strip().split(":") if (Path(d) / "python").exists())
    assert Path(first) == agent_env


def test_max_run_minutes_is_an_option_and_an_agent_yaml_knob(tmp_path, competition):
    home = make_home(tmp_path, competition)
    env = {"GOME_MLEBENCH_HOME": str(home), "COMPETITION_ID": "breast-cancer", "TIME_LIMIT_SECS": "43200"}
    parser = build_parser()
    config, _ = container_config(parser.parse_args(["mlebench", "--max-run-minutes", "540"]), env)
    assert config.execution.max_run_minutes == 540
    agents = yaml.safe_load((ROOT / "agent.yaml").read_text())
    for agent_id in ("gome", "gome/obfuscated", "gome/tree-search"):
        # The kwargs as agents/run.py renders them for kwargs_type argparse.
        argv = [a for k, v in agents[agent_id]["kwargs"].items() for a in (f"--{k}", str(v))]
        config, _ = container_config(parser.parse_args(["mlebench", *argv]), env)
        assert config.execution.max_run_minutes == 180, agent_id
