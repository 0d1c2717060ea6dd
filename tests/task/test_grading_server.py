import pandas as pd

from gome_agent.task.grading_server import GradingServer
from tests.mlebench_standin import GradingStandIn


def _answers(tmp_path):
    path = tmp_path / "answers.csv"
    pd.DataFrame({"id": [1, 2, 3], "target": [0, 1, 0]}).to_csv(path, index=False)
    return path


def test_valid_and_invalid_submissions(tmp_path):
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    pd.DataFrame({"id": [3, 2, 1], "target": [0.1, 0.2, 0.3]}).to_csv(good, index=False)
    pd.DataFrame({"id": [1, 2], "target": [0.1, 0.2]}).to_csv(bad, index=False)
    with GradingStandIn(_answers(tmp_path)) as standin:
        server = GradingServer(standin.url)
        assert server(good) is None
        problem = server(bad)
    assert problem == "the grading server rejects it: Submission invalid! Submission and answers must have the same length"
    assert standin.validations == ["Submission is valid.", "Submission invalid! Submission and answers must have the same length"]


def test_down_server_is_skipped_then_asked_again(tmp_path):
    sub = tmp_path / "s.csv"
    pd.DataFrame({"id": [1, 2], "target": [0.1, 0.2]}).to_csv(sub, index=False)
    server = GradingServer("http://127.0.0.1:9", recheck_s=0.0)
    assert server(sub) is None and not server.available()
    with GradingStandIn(_answers(tmp_path)) as standin:
        server.url = standin.url  # the server came up
        assert server(sub) is not None


def test_failing_server_falls_back(tmp_path):
    sub = tmp_path / "s.csv"
    pd.DataFrame({"id": [1], "target": [0.1]}).to_csv(sub, index=False)
    with GradingStandIn(_answers(tmp_path), mode="error500") as standin:
        server = GradingServer(standin.url, recheck_s=60)
        assert server(sub) is None
        assert not server.available()  # not asked again for a while
