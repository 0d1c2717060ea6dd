"""The CPU count of the prompt and of the thread division follows the container's CPU quota.

MLE-bench's default container config gives `nano_cpus: 4e9`: a CFS quota of 4 CPUs, while the
affinity mask still lists every core of the host. The cgroup trees below are built in a temporary
folder the way the kernel shows them (v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from gome_agent.execution import environment

HOST_CORES = 8


def cgroup_tree(root: Path, membership: str, files: dict[str, str]) -> Path:
    """A fake /sys/fs/cgroup under `root` and the /proc/self/cgroup line(s) that lead into it."""
    for relative, content in files.items():
        path = root / "sys" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (root / "sys").mkdir(exist_ok=True)
    proc = root / "proc-self-cgroup"
    proc.write_text(membership)
    return proc


CASES = [
    # cgroup v2 in a container (its own cgroup namespace): the quota at the root of the view.
    ("0::/\n", {"cpu.max": "400000 100000\n"}, 4),
    # v2 seen from the host: the tightest quota on the way up counts; a fraction rounds up.
    ("0::/a/b\n", {"a/b/cpu.max": "max 100000\n", "a/cpu.max": "150000 100000\n", "cpu.max": "max 100000\n"}, 2),
    # v2 without a quota: every core the affinity mask allows.
    ("0::/a\n", {"a/cpu.max": "max 100000\n"}, HOST_CORES),
    # v1 in Docker without a cgroup namespace: /proc names the host's path, the mount shows the container's own.
    ("12:cpu,cpuacct:/docker/0123abc\n11:memory:/docker/0123abc\n",
     {"cpu,cpuacct/cpu.cfs_quota_us": "200000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 2),
    # v1 without a quota (-1).
    ("4:cpu,cpuacct:/\n", {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"},
     HOST_CORES),
    # Unreadable values are no quota, not an error.
    ("0::/\n", {"cpu.max": "garbage\n"}, HOST_CORES),
]


@pytest.mark.parametrize(("membership", "files", "expected"), CASES)
def test_detected_cpus_follow_the_cgroup_cpu_quota(tmp_path, monkeypatch, membership, files, expected):
    proc = cgroup_tree(tmp_path, membership, files)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(HOST_CORES)))
    monkeypatch.setattr(environment, "CGROUP_ROOT", tmp_path / "sys", raising=False)
    monkeypatch.setattr(environment, "PROC_CGROUP", proc, raising=False)
    env = environment.detect_environment(sys.executable)
    assert env.cpus == expected
    assert env.describe().startswith(f"{expected} CPU cores")
