"""`gome register`: install gome-agent into an mle-bench checkout as `agents/gome/`.

It writes `agents/gome/config.yaml` (this repository's agent.yaml), the
Dockerfile, start.sh, the build context (gome-agent's source, which the
Dockerfile installs without network access to this repository) and the
obfuscated descriptions of the checkout's competitions (for OBFUSCATE=true runs,
without writing into the read-only data folder). The configuration is checked
with the rules MLE-bench's registry applies when `run_agent.py` loads it.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gome_agent.errors import ConfigError

AGENT_NAME = "gome"
# MLE-bench's secret reference: applied with re.match to top-level kwargs and env_vars values.
SECRET = re.compile(r"\$\{\{\s*secrets\.(\w+)\s*\}\}")
_SOURCE_FILES = ("pyproject.toml", "README.md")
_SOURCE_DIRS = ("gome_agent", "prompts")
_KWARGS_TYPES = ("argparse", "omegaconf")


def source_root() -> Path:
    """The gome-agent source checkout this package runs from (agent.yaml, Dockerfile, start.sh)."""
    root = Path(__file__).resolve().parents[2]
    missing = [n for n in ("agent.yaml", "Dockerfile", "start.sh", "pyproject.toml") if not (root / n).is_file()]
    if missing:
        raise ConfigError(
            f"gome register needs a source checkout of gome-agent (missing {', '.join(missing)} in {root}); "
            "clone the repository and run it from there"
        )
    return root


def agent_ids(config: Mapping[str, Any]) -> list[str]:
    """The agent entries of a config file (anchor-only keys such as `vars` or `defaults` hold no `start`)."""
    return [key for key, value in config.items() if isinstance(value, dict) and "start" in value]


def check_agent_config(config: Mapping[str, Any], agents_dir: Path) -> list[str]:
    """Problems MLE-bench's registry would raise when `run_agent.py --agent-id <id>` loads each entry."""
    problems = []
    ids = agent_ids(config)
    if not ids:
        problems.append("no agent entry (a top-level key whose value has `start` and `dockerfile`)")
    for agent_id in ids:
        entry = config[agent_id]
        for key in ("start", "dockerfile"):
            if key not in entry:
                problems.append(f"{agent_id}: missing key `{key}`")
            elif not (agents_dir / str(entry[key])).is_file():
                problems.append(f"{agent_id}: {key} {entry[key]!r} does not exist relative to {agents_dir}")
        kwargs = entry.get("kwargs", {}) or {}
        kwargs_type = entry.get("kwargs_type")
        if kwargs and kwargs_type is None:
            problems.append(f"{agent_id}: kwargs need a kwargs_type (argparse or omegaconf)")
        if kwargs_type is not None and kwargs_type not in _KWARGS_TYPES:
            problems.append(f"{agent_id}: kwargs_type {kwargs_type!r} would silently drop the kwargs")
        for section in ("kwargs", "env_vars"):
            values = entry.get(section, {}) or {}
            if not isinstance(values, dict):
                problems.append(f"{agent_id}: {section} must be a mapping")
                continue
            for key, value in values.items():
                if isinstance(value, str) and "secrets" in value and not SECRET.match(value):
                    problems.append(f"{agent_id}: {section}.{key} = {value!r} is not of the form ${{{{ secrets.NAME }}}}")
        if not isinstance(entry.get("privileged", False), bool):
            problems.append(f"{agent_id}: privileged must be true or false")
    return problems


def resolve_secrets(values: Mapping[str, Any], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Top-level secret references replaced from the host environment, as run_agent.py does."""
    env = os.environ if env is None else env
    out = {}
    for key, value in values.items():
        match = SECRET.match(value) if isinstance(value, str) else None
        if match:
            name = match.group(1)
            if name not in env:
                raise ConfigError(f"environment variable `{name}` is not set (needed by {key})")
            out[key] = env[name]
        else:
            out[key] = value
    return out


def load_agent_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path} cannot be read: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of agent ids")
    return data


@dataclass
class Registration:
    folder: Path
    agent_ids: list[str]
    obfuscated: int

    def next_commands(self, mlebench_root: Path) -> list[str]:
        dirs = "SUBMISSION_DIR=/home/submission LOGS_DIR=/home/logs CODE_DIR=/home/code AGENT_DIR=/home/agent"
        args = " ".join(f"--build-arg {d}=${d}" for d in ("SUBMISSION_DIR", "LOGS_DIR", "CODE_DIR", "AGENT_DIR"))
        return [
            f"cd {mlebench_root}",
            f"export {dirs}",
            "docker build --platform=linux/amd64 -t mlebench-env -f environment/Dockerfile .   # once",
            f"docker build --platform=linux/amd64 -t {AGENT_NAME} agents/{AGENT_NAME}/ {args}",
            f"python run_agent.py --agent-id {AGENT_NAME} --competition-set experiments/splits/low.txt "
            '--container-config environment/config/container_configs/default.json   # add "gpus": -1 to that JSON for a GPU',
            "gome export-submissions runs/<run-group> -o runs/<run-group>/submission.jsonl",
            "mlebench grade --submission runs/<run-group>/submission.jsonl --output-dir runs/<run-group>"
            "   # needs the real leaderboards: git lfs pull in this checkout",
        ]


def register(mlebench_root: Path, *, force: bool = False, source: Path | None = None) -> Registration:
    mlebench_root = mlebench_root.resolve()
    agents_dir = mlebench_root / "agents"
    if not agents_dir.is_dir() or not (mlebench_root / "environment").is_dir():
        raise ConfigError(
            f"{mlebench_root} is not an mle-bench checkout (it needs agents/ and environment/); "
            "clone github.com/openai/mle-bench and pass its root"
        )
    source = source or source_root()
    config = load_agent_yaml(source / "agent.yaml")
    target = agents_dir / AGENT_NAME
    if target.exists():
        if not force:
            raise ConfigError(f"{target} exists; pass --force to replace it")
        shutil.rmtree(target)
    target.mkdir()
    (target / "config.yaml").write_text((source / "agent.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    shutil.copyfile(source / "Dockerfile", target / "Dockerfile")
    shutil.copyfile(source / "start.sh", target / "start.sh")
    (target / "start.sh").chmod(0o755)
    context = target / "gome-agent"
    context.mkdir()
    for name in _SOURCE_FILES:
        shutil.copyfile(source / name, context / name)
    for package in _SOURCE_DIRS:
        shutil.copytree(source / package, context / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    obfuscated = target / "obfuscated"
    obfuscated.mkdir()
    count = 0
    for description in sorted((mlebench_root / "mlebench" / "competitions").glob("*/description_obfuscated.md")):
        shutil.copyfile(description, obfuscated / f"{description.parent.name}.md")
        count += 1
    problems = check_agent_config(config, agents_dir)
    if problems:
        shutil.rmtree(target)
        raise ConfigError("agent.yaml would not load in MLE-bench: " + "; ".join(problems))
    return Registration(folder=target, agent_ids=agent_ids(config), obfuscated=count)
