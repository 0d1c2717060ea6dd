"""`gome mlebench`: `gome run` inside MLE-bench's agent container.

The container gives the competition in `/home/data` (read-only), its id in
`COMPETITION_ID`, and extracts `/home/submission`, `/home/logs` and `/home/code`
when `start.sh` exits. The run itself lives in `$AGENT_DIR/run`; the best
submission and code are mirrored into the extracted folders at every
improvement, and `--finalize` (called by start.sh on any exit) makes sure the
submission is a real file holding the run's published best (by content: without
the namespace sandbox a solution could have written there) and copies the run
record into the logs. Solutions never get the container's folders in their
environment. An obfuscated run (OBFUSCATE=true) shows solutions the obfuscated
description in place of the plain one and never names the competition.

Every path comes from the environment (GOME_MLEBENCH_HOME, SUBMISSION_DIR,
LOGS_DIR, CODE_DIR, AGENT_DIR, GOME_DATA_DIR), so the flow runs in any folder.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gome_agent.config import RunConfig, build_config, load_config_file, parse_duration
from gome_agent.errors import ConfigError, GomeError, TaskError
from gome_agent.mlebench.instructions import write_adapted
from gome_agent.records.best import copy_atomic, recorded_best, sha256_of
from gome_agent.task.sample import find_sample_submission, load_sample_submission, write_plain_sample

log = logging.getLogger(__name__)

DEFAULT_SERVER = "http://localhost:5000"
# How an obfuscated run (OBFUSCATE=true) names its competition in prompts and records, instead of the slug.
OBFUSCATED_ID = "task"
# MLE-bench's container folders: gome reads them once; solutions, which it starts, never get them.
_CONTAINER_VARS = ("SUBMISSION_DIR", "LOGS_DIR", "CODE_DIR", "AGENT_DIR", "GOME_MLEBENCH_HOME")
# What the run record in /home/logs holds (besides each attempt's code and logs).
_RECORD_FILES = ("config.json", "run.json", "task.json", "environment.json", "events.jsonl", "llm_calls.jsonl")
_RECORD_DIRS = ("memory", "logs", "code")
_ATTEMPT_FILES = ("main.py", "scores.json", "stdout.txt", "stderr.txt")
_MAX_ATTEMPT_FILE = 2_000_000  # bytes of each attempt file copied into the logs
_DESCRIPTION = re.compile(r"description(_obfuscated)?\.md")


@dataclass(frozen=True)
class ContainerPaths:
    home: Path
    data: Path
    submission: Path
    logs: Path
    code: Path
    agent: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ContainerPaths:
        env = os.environ if env is None else env
        home = Path(env.get("GOME_MLEBENCH_HOME", "/home"))
        return cls(
            home=home,
            data=Path(env.get("GOME_DATA_DIR", str(home / "data"))),
            submission=Path(env.get("SUBMISSION_DIR", str(home / "submission"))),
            logs=Path(env.get("LOGS_DIR", str(home / "logs"))),
            code=Path(env.get("CODE_DIR", str(home / "code"))),
            agent=Path(env.get("AGENT_DIR", str(home / "agent"))),
        )


def _flag(value: str | None) -> bool | None:
    """argparse kwargs arrive as `--flag ""` (MLE-bench renders every kwarg with a value)."""
    if value is None:
        return None
    return value.strip().lower() not in ("false", "0", "no", "off")


def obfuscated(env: Mapping[str, str]) -> bool:
    """MLE-bench's obfuscated variant (aide/obfuscated, gome/obfuscated): start.sh tests the same value."""
    return env.get("OBFUSCATE", "").strip() == "true"


def obfuscated_view(data: Path, description: Path, view: Path) -> Path:
    """The competition folder of an obfuscated run: every entry of `data` linked, but the plain
    description, which gives way to the obfuscated one. Solutions read it as ./input/ (MLE-bench's
    data folder is read-only, so it cannot be swapped there as AIDE's start.sh tries)."""
    if view.exists():
        shutil.rmtree(view)  # links only: what they point to stays
    view.mkdir(parents=True)
    for entry in data.iterdir():
        if not _DESCRIPTION.fullmatch(entry.name):
            (view / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    shutil.copyfile(description, view / "description.md")
    return view


def container_config(args: Any, env: Mapping[str, str] | None = None) -> tuple[RunConfig, ContainerPaths]:
    """The run's configuration from the container's environment and the agent's kwargs."""
    env = os.environ if env is None else env
    paths = ContainerPaths.from_env(env)
    competition = env.get("COMPETITION_ID", "").strip()
    if not competition:
        raise ConfigError("COMPETITION_ID is not set: MLE-bench's run_agent.py sets it in every agent container")
    if not paths.data.is_dir():
        raise TaskError(f"the competition data folder {paths.data} does not exist (MLE-bench mounts it at /home/data)")
    if not any(paths.data.iterdir()):
        raise TaskError(f"the competition data folder {paths.data} is empty: was `mlebench prepare -c {competition}` run?")
    if args.time_limit is not None:
        time_limit = parse_duration(args.time_limit)
    elif env.get("TIME_LIMIT_SECS"):
        time_limit = parse_duration(env["TIME_LIMIT_SECS"])
    else:
        raise ConfigError("no time limit: pass --time-limit or set TIME_LIMIT_SECS (start.sh does both)")
    workdir = Path(args.workdir or paths.agent / "run")
    description = None
    if args.description is not None:
        # MLE-bench's paths rewritten to the solution contract's, beside the run (the data stays read-only).
        description = write_adapted(Path(args.description), workdir / "instructions.md")
    file_values = load_config_file(args.config) if args.config else {}
    execution: dict[str, Any] = {}
    data_dir = paths.data
    if obfuscated(env):
        source = Path(env.get("GOME_OBFUSCATED_DESCRIPTION", ""))
        if not source.is_file():
            raise ConfigError("OBFUSCATE=true but GOME_OBFUSCATED_DESCRIPTION names no file: start.sh sets it to the "
                              "obfuscated description it found")
        data_dir = obfuscated_view(paths.data, source, paths.agent / "obfuscated_data")
        # The namespace sandbox also shows the plain description empty to a solution that opens it by path.
        hidden = file_values.get("execution", {}).get("hidden_paths", [])
        execution["hidden_paths"] = [*hidden, *(p for p in paths.data.iterdir() if _DESCRIPTION.fullmatch(p.name))]
    if env.get("GOME_SOLUTION_PYTHON"):
        execution["python"] = env["GOME_SOLUTION_PYTHON"]
    if args.max_run_minutes is not None:
        execution["max_run_minutes"] = args.max_run_minutes
    overrides: dict[str, Any] = {
        "data_dir": data_dir,
        "workdir": workdir,
        "time_limit_s": time_limit,
        "description_path": description,
        "validation_server": env.get("GOME_GRADING_SERVER", DEFAULT_SERVER),
        "mirror_submission_dir": paths.submission,
        "mirror_code_dir": paths.code,
    }
    llm = {k: getattr(args, k) for k in ("model", "provider", "base_url", "api", "max_run_cost_usd", "max_run_tokens")
           if getattr(args, k) is not None}
    if llm:
        overrides["llm"] = llm
    if args.traces is not None:
        overrides["traces"] = args.traces
    if args.strategy is not None:
        overrides["strategy"] = args.strategy
    optimizer = {}
    if _flag(args.no_momentum):
        optimizer["momentum"] = False
    if _flag(args.direct):
        optimizer["structured_gradient"] = False
    if optimizer:
        overrides["optimizer"] = optimizer
    if execution:
        overrides["execution"] = execution
    return build_config(file_values, overrides), paths


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _ensure_submission(paths: ContainerPaths, run_dir: Path) -> str:
    """The graded file holds the run's published best, compared by content: a solution (outside the
    namespace sandbox) may have written there after it, so a newer file proves nothing."""
    target = paths.submission / "submission.csv"
    best = recorded_best(run_dir)
    if best is not None:
        note = "" if best.verified else " (its content could not be checked against the hash recorded at publication)"
        if target.is_file() and not target.is_symlink() and sha256_of(target) == sha256_of(best.path):
            return f"submission in place: {target} is the run's best{note}"
        what = "differed from" if target.is_file() or target.is_symlink() else "was missing"
        copy_atomic(best.path, target, read_only=True)  # the rename also replaces a link, not its target
        return f"{target} {what} the run's best; put {best.path} there{note}"
    if target.is_symlink():
        resolved = target.resolve()
        target.unlink()
        if resolved.is_file():
            copy_atomic(resolved, target)
    if target.is_file() and target.stat().st_size > 0:
        return f"submission in place: {target}"
    try:
        sample = find_sample_submission(paths.data)
        load_sample_submission(sample)
        write_plain_sample(sample, target)
    except GomeError as exc:
        return f"no submission could be made: {exc}"
    return f"no solution was made; copied the sample submission {sample.name} to {target}"


def _copy_record(run_dir: Path, logs: Path) -> int:
    """The run record into the logs: small files whole, each attempt's code, scores and logs (capped)."""
    out = logs / "run"
    copied = 0
    for name in _RECORD_FILES:
        if (run_dir / name).is_file():
            _copy(run_dir / name, out / name)
            copied += 1
    for name in _RECORD_DIRS:
        if (run_dir / name).is_dir():
            shutil.copytree(run_dir / name, out / name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.lock"))
            copied += 1
    if (run_dir / "scheduler" / "leases.jsonl").is_file():
        _copy(run_dir / "scheduler" / "leases.jsonl", out / "scheduler" / "leases.jsonl")
    for folder in ("traces", "final"):
        for path in sorted((run_dir / folder).glob("**/*")) if (run_dir / folder).is_dir() else []:
            if path.name in _ATTEMPT_FILES and path.is_file():
                dst = out / path.relative_to(run_dir)
                dst.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "rb") as src, open(dst, "wb") as f:
                    f.write(src.read(_MAX_ATTEMPT_FILE))
                copied += 1
    return copied


def finalize(paths: ContainerPaths, run_dir: Path) -> list[str]:
    """Leave the best submission (a real file), the best code and the run record where MLE-bench extracts them."""
    for folder in (paths.submission, paths.logs, paths.code):
        folder.mkdir(parents=True, exist_ok=True)
    messages = [_ensure_submission(paths, run_dir)]
    if (run_dir / "code").is_dir():
        shutil.copytree(run_dir / "code", paths.code, dirs_exist_ok=True)
    messages.append(f"run record: {_copy_record(run_dir, paths.logs)} item(s) copied to {paths.logs / 'run'}")
    return messages


def main(args: Any) -> int:
    """`gome mlebench`: run, or only finalize (start.sh's exit trap)."""
    paths = ContainerPaths.from_env()
    if args.finalize:
        for message in finalize(paths, args.workdir or paths.agent / "run"):
            print(f"gome: {message}")
        return 0
    from gome_agent.run.coordinator import run

    try:
        config, paths = container_config(args)
    except GomeError as exc:
        print(f"gome: error: {exc}", file=sys.stderr)
        return 2
    for name in _CONTAINER_VARS:
        os.environ.pop(name, None)
    if obfuscated(os.environ):
        # The run names its task by $COMPETITION_ID (prompts, records, solutions' environment).
        os.environ["COMPETITION_ID"] = OBFUSCATED_ID
    paths.logs.mkdir(parents=True, exist_ok=True)
    summary = run(config)
    score = "none" if summary.best_score is None else f"{summary.best_score:.6g}"
    print(f"gome: run finished ({summary.reason}); {summary.steps} step(s); best validation score {score}")
    return 0 if summary.submission is not None and not summary.fatal else 1
