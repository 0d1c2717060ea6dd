"""What the solutions run on: cores, memory, GPUs and the ML packages of their interpreter.

The prompts state it so that generated code uses the GPU when there is one and
imports only what is installed (a common cause of wasted steps).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from gome_agent.secrets import scrubbed_env

PACKAGES = (
    "numpy", "pandas", "scipy", "scikit-learn", "lightgbm", "xgboost", "catboost", "torch",
    "torchvision", "timm", "transformers", "tensorflow", "keras", "opencv-python", "pillow",
    "statsmodels", "optuna",
)

_PROBE = """
import json, sys, importlib.metadata as md
out = {"python": sys.version.split()[0]}
for name in json.loads(sys.argv[1]):
    try:
        out[name] = md.version(name)
    except md.PackageNotFoundError:
        pass
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_mib: int


@dataclass(frozen=True)
class Environment:
    cpus: int
    memory_bytes: int
    gpus: list[Gpu] = field(default_factory=list)
    packages: dict[str, str] = field(default_factory=dict)

    def describe(self, *, name_absent: bool = True) -> str:
        """The environment line of the prompts; `name_absent` adds the usual packages that are missing."""
        gib = self.memory_bytes / 2**30
        if self.gpus:
            names = ", ".join(f"{g.name} ({g.memory_mib // 1024} GiB)" for g in self.gpus)
            gpu = f"GPU: {len(self.gpus)} x {names}"
        else:
            gpu = "no GPU"
        python = self.packages.get("python", "?")
        pkgs = ", ".join(f"{k} {v}" for k, v in self.packages.items() if k != "python")
        text = f"{self.cpus} CPU cores, {gib:.0f} GiB RAM, {gpu}. Python {python} with {pkgs or 'no ML packages found'}."
        # Naming what is absent stops capable models from reaching for the usual deep-learning stack;
        # a small one imports what the list names (the 0.5B model imported all twelve), so it is told
        # only what is installed.
        absent = [name for name in PACKAGES if name not in self.packages]
        if pkgs and absent and name_absent:
            text += f" Not installed (do not import): {', '.join(absent)}."
        return text


def detect_gpus() -> list[Gpu]:
    """GPUs visible through nvidia-smi (empty when there is none or it fails)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, _, mem = line.rpartition(",")
        if name and mem.strip().isdigit():
            gpus.append(Gpu(name=name.strip(), memory_mib=int(mem.strip())))
    return gpus


def probe_packages(python: str) -> dict[str, str]:
    """Versions of the common ML packages in the solutions' interpreter."""
    try:
        out = subprocess.run(
            [python, "-c", _PROBE, json.dumps(PACKAGES)],
            capture_output=True, text=True, timeout=60, env=scrubbed_env(), check=True,
        ).stdout
        return json.loads(out.strip().splitlines()[-1])
    except (subprocess.SubprocessError, OSError, json.JSONDecodeError, IndexError):
        return {}


CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def _read_quota(files: tuple[Path, ...]) -> float | None:
    """CPUs allowed by one cgroup's quota: v2 `cpu.max` ("400000 100000", "max 100000"), or v1's
    `cpu.cfs_quota_us` and `cpu.cfs_period_us` (quota -1: none). None for no quota or no file."""
    try:
        values = " ".join(f.read_text().strip() for f in files).split()
        quota, period = float(values[0]), float(values[1])
    except (OSError, ValueError, IndexError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def cpu_quota() -> float | None:
    """The CPU quota of this process's cgroups (a container's `--cpus`, MLE-bench's `nano_cpus`), the
    tightest on the way up to the root; None when there is none or it cannot be read."""
    root = CGROUP_ROOT
    try:
        lines = PROC_CGROUP.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        _, controllers, path = fields
        if controllers == "":  # cgroup v2
            mount, names = root, ("cpu.max",)
        elif "cpu" in controllers.split(","):
            mount = next((root / n for n in (controllers, "cpu,cpuacct", "cpu") if (root / n).is_dir()), root / "cpu")
            names = ("cpu.cfs_quota_us", "cpu.cfs_period_us")
        else:
            continue
        # Without a cgroup namespace /proc names the host's path while the mount shows the container's
        # own cgroup at its root: every level that exists is read.
        folder = mount / path.lstrip("/")
        for level in [folder, *folder.parents]:
            if level.is_relative_to(mount) and (quota := _read_quota(tuple(level / n for n in names))) is not None:
                quotas.append(quota)
    return min(quotas) if quotas else None


def usable_cpus() -> int:
    """Cores this process may use: its affinity mask, capped by its cgroup's CPU quota (rounded up)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    quota = cpu_quota()
    return max(1, min(cpus, math.ceil(quota))) if quota is not None else cpus


def detect_environment(python: str) -> Environment:
    return Environment(
        cpus=usable_cpus(),
        memory_bytes=psutil.virtual_memory().total,
        gpus=detect_gpus(),
        packages=probe_packages(python),
    )
