"""The MLE-bench container flow, simulated: the /home layout in a temporary folder, the real
instructions, a stand-in grading server, the fake LLM, and start.sh run end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gome_agent.bench.competitions import build_breast_cancer
from gome_agent.records.events import EventLog
from gome_agent.task.sample import find_sample_submission, load_sample_submission
from gome_agent.task.submission import check_submission
from tests.fake_llm import FakeRequest
from tests.mlebench_standin import GradingStandIn
from tests.run.test_coordinator import Recorder
from tests.shared import needs_shared, shared

ROOT = Path(__file__).resolve().parents[2]
SHARED = shared("mlebench")
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


def start_sh(home: Path, server: GradingStandIn | None, llm_url: str, *args: str, env: dict[str, str] | None = None,
             time_limit: int = 200, timeout: float = 300) -> subprocess.CompletedProcess[str]:
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
                                  "execution": {"min_run_seconds": 2},
                                  "validation": {"scoring": "self-reported"}}))
    cmd = ["bash", str(ROOT / "start.sh"), "--provider", "openai", "--base-url", llm_url, "--model", "fake",
           "--traces", "1", "--config", str(config), *args]
    return subprocess.run(cmd, env=base, capture_output=True, text=True, timeout=timeout, cwd=home)


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
