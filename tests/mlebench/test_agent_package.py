"""What `gome register` installs into agents/gome/: the agent ids and the Dockerfile."""

from __future__ import annotations

import re
from pathlib import Path

from gome_agent.mlebench.register import agent_ids, load_agent_yaml

ROOT = Path(__file__).resolve().parents[2]
IDS = ["gome", "gome/anthropic", "gome/dev", "gome/obfuscated", "gome/no-momentum", "gome/single-trace",
       "gome/direct", "gome/tree-search"]


def test_the_agent_ids_are_the_agents_and_no_yaml_anchor():
    assert agent_ids(load_agent_yaml(ROOT / "agent.yaml")) == IDS


def test_every_dockerfile_arg_has_a_default():
    """A build without the --build-arg flags (MLE-bench's README passes them by hand) still gets
    MLE-bench's folders, not empty paths."""
    args = re.findall(r"^ARG\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert len(args) >= 4
    defaults = dict(a.split("=", 1) for a in args if "=" in a)
    assert sorted(a.split("=")[0] for a in args) == sorted(defaults)
    assert {k: defaults[k] for k in ("SUBMISSION_DIR", "LOGS_DIR", "CODE_DIR", "AGENT_DIR")} == {
        "SUBMISSION_DIR": "/home/submission", "LOGS_DIR": "/home/logs", "CODE_DIR": "/home/code",
        "AGENT_DIR": "/home/agent"}
