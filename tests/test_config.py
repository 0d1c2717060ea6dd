import json
from pathlib import Path

import pytest

from gome_agent.config import RunConfig, build_config, load_config_file, parse_duration
from gome_agent.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("12h", 43200), ("90m", 5400), ("1h30m", 5400), ("45s", 45), ("3600", 3600), ("1d", 86400), ("0.5h", 1800), (120, 120)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "12x", "-5", "0"])
def test_parse_duration_rejects(text):
    with pytest.raises(ConfigError, match="duration"):
        parse_duration(text)


def test_flags_override_file_values(tmp_path):
    cfg_file = tmp_path / "gome.toml"
    cfg_file.write_text('time_limit = "3h"\n[llm]\nmodel = "gpt-5-mini"\nprovider = "openai"\n[optimizer]\ndirections = 4\n')
    config = build_config(
        load_config_file(cfg_file),
        {"data_dir": tmp_path, "workdir": tmp_path / "out", "llm": {"model": "o3"}},
    )
    assert config.time_limit_s == 3 * 3600
    assert config.llm.model == "o3"
    assert config.llm.provider == "openai"
    assert config.optimizer.directions == 4


@pytest.mark.parametrize("suffix,text", [(".yaml", "traces: 1\nllm:\n  model: m\n"), (".json", '{"traces": 1, "llm": {"model": "m"}}')])
def test_yaml_and_json_files(tmp_path, suffix, text):
    path = tmp_path / f"c{suffix}"
    path.write_text(text)
    config = build_config(load_config_file(path), {"data_dir": tmp_path, "workdir": tmp_path})
    assert config.llm.model == "m"


def test_unknown_setting_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"optimizer\.directionz"):
        build_config({"optimizer": {"directionz": 3}}, {"data_dir": tmp_path, "workdir": tmp_path})


def test_bad_value_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"optimizer\.directions"):
        build_config({"optimizer": {"directions": 9}}, {"data_dir": tmp_path, "workdir": tmp_path})


def test_stage_order_checked(tmp_path):
    with pytest.raises(ConfigError, match="draft_end"):
        build_config({"stages": {"draft_end": 0.8, "final_start": 0.5}}, {"data_dir": tmp_path, "workdir": tmp_path})


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("llm = [")
    with pytest.raises(ConfigError, match="not valid"):
        load_config_file(bad)
    other = tmp_path / "c.ini"
    other.write_text("x=1")
    with pytest.raises(ConfigError, match=".toml"):
        load_config_file(other)


def test_record_has_no_api_key(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-should-never-appear-123")
    config = RunConfig(data_dir=tmp_path, workdir=tmp_path)
    assert "sk-test-should-never-appear-123" not in json.dumps(config.to_record())
    assert isinstance(config.to_record()["data_dir"], str)
    assert Path(config.to_record()["workdir"]) == tmp_path
