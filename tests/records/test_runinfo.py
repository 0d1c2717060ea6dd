
import pytest

from gome_agent.errors import ConfigError
from gome_agent.records import runinfo


def test_start_heartbeat_and_resume_count_the_time_spent(tmp_path):
    info = runinfo.start(tmp_path, 3600, 300)
    info = runinfo.heartbeat(tmp_path, info.model_copy(update={"started_at": info.started_at - 100}))
    assert runinfo.load(tmp_path).spent_s() == pytest.approx(100, abs=1)
    resumed = runinfo.resume(tmp_path)
    assert resumed.sessions == 2
    assert resumed.spent_before_s == pytest.approx(100, abs=1)
    assert resumed.budget().remaining() == pytest.approx(3600 - 300 - 100, abs=2)


def test_resume_counts_activity_after_the_last_heartbeat(tmp_path):
    info = runinfo.start(tmp_path, 3600, 0)
    runinfo.save(tmp_path, info.model_copy(update={"started_at": info.started_at - 50, "heartbeat_at": info.started_at - 50}))
    (tmp_path / "events.jsonl").write_text("{}\n")  # a trace wrote an event just now
    resumed = runinfo.resume(tmp_path)
    assert resumed.spent_before_s == pytest.approx(50, abs=2)


def test_resume_can_extend_the_budget(tmp_path):
    runinfo.start(tmp_path, 3600, 0)
    assert runinfo.resume(tmp_path, 7200).time_limit_s == 7200


def test_missing_or_damaged_run_json(tmp_path):
    with pytest.raises(ConfigError, match="holds no run"):
        runinfo.load(tmp_path)
    (tmp_path / "run.json").write_text("{broken")
    with pytest.raises(ConfigError, match="damaged"):
        runinfo.load(tmp_path)
