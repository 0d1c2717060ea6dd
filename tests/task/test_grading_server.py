"""The validator against MLE-bench's real grading server (environment/grading_server.py, run as a
process) on one of its competitions; the stand-in serves only for a server too slow to answer."""

from pathlib import Path

import pandas as pd
import pytest

from gome_agent.task.grading_server import GradingServer
from tests.mlebench.real import (
    SPOOKY,
    RealGradingServer,
    free_port,
    prepare_private,
    require_source,
    spooky_answers,
)
from tests.mlebench_standin import GradingStandIn

IDS = ["id07", "id11", "id23"]
INVALID = ("the grading server rejects it: Submission invalid! The attempt to grade the submission has resulted in "
           "the following error message:\nSubmission shape (2, 4) does not match answers shape (3, 4).")


@pytest.fixture(scope="module")
def private_data(tmp_path_factory) -> Path:
    require_source()
    data = tmp_path_factory.mktemp("private-data")
    prepare_private(data, SPOOKY, spooky_answers(IDS))
    return data


def _submission(path: Path, ids: list[str]) -> Path:
    pd.DataFrame({"id": ids, "EAP": 0.5, "HPL": 0.25, "MWS": 0.25}).to_csv(path, index=False)
    return path


def test_valid_and_invalid_submissions(tmp_path, private_data):
    good = _submission(tmp_path / "good.csv", list(reversed(IDS)))  # row order is free
    short = _submission(tmp_path / "short.csv", IDS[:2])
    unknown = _submission(tmp_path / "unknown.csv", ["id07", "id11", "nope"])
    with RealGradingServer(private_data, SPOOKY, tmp_path / "server") as real:
        server = GradingServer(real.url)
        assert server(good) is None
        assert server(short) == INVALID
        problem = server(unknown)
        assert server.available()
    assert problem is not None and problem.startswith("the grading server rejects it: Submission invalid!")
    assert "Mismatch in Ids" in problem


def test_down_server_is_skipped_then_asked_again(tmp_path, private_data):
    short = _submission(tmp_path / "short.csv", IDS[:2])
    port = free_port()
    server = GradingServer(f"http://127.0.0.1:{port}", recheck_s=0.0)
    assert server(short) is None and not server.available()
    with RealGradingServer(private_data, SPOOKY, tmp_path / "server", port=port):
        assert server(short) == INVALID  # the server came up
        assert server.available()


def test_failing_server_falls_back(tmp_path, private_data, caplog):
    sub = _submission(tmp_path / "s.csv", IDS)
    # A competition without prepared answers: MLE-bench's validation raises, the server answers 500.
    with RealGradingServer(tmp_path / "unprepared", SPOOKY, tmp_path / "server") as real:
        server = GradingServer(real.url, recheck_s=60)
        assert server(sub) is None
        assert not server.available()  # not asked again for a while
    assert "unavailable (/validate answered 500)" in caplog.text


def test_slow_server_times_out_and_is_left_alone(tmp_path, caplog):
    answers = tmp_path / "answers.csv"
    pd.DataFrame({"id": [1], "target": [0]}).to_csv(answers, index=False)
    sub = tmp_path / "s.csv"
    pd.DataFrame({"id": [1], "target": [0.1]}).to_csv(sub, index=False)
    with GradingStandIn(answers, mode="slow") as standin:
        server = GradingServer(standin.url, timeout_s=0.5, recheck_s=60)
        assert server(sub) is None
        assert not server.available()
    assert "unavailable (/validate: ReadTimeout)" in caplog.text
