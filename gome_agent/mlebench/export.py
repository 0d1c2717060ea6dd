"""`gome export-submissions`: the `submission.jsonl` that `mlebench grade` takes, from a run group.

`run_agent.py` writes `runs/<run-group>/<competition>_<uuid>/` per run (with the
extracted `submission/`, `logs/` and `code/`) and `metadata.json` listing the
runs. Each line: competition_id, submission_path (null when there is no
submission), logs_path, code_path. With `--grade` and the `mlebench` package
importable, MLE-bench's own grader runs right away, once the leaderboards it
needs are known to be real files: a clone without Git LFS has pointer files in
their place, on which MLE-bench's grader fails without saying why.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from gome_agent.errors import ConfigError

_RUN_ID = re.compile(r"^(?P<competition>[A-Za-z0-9.\-]+)_[0-9a-f\-]{8,}$")


def _run_ids(run_group: Path) -> list[str]:
    metadata = run_group / "metadata.json"
    if metadata.is_file():
        try:
            runs = json.loads(metadata.read_text(encoding="utf-8"))["runs"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{metadata} is not run_agent.py's metadata (a 'runs' mapping): {exc}") from exc
        return sorted(runs)
    # A run group copied without its metadata (or still running): every run folder counts.
    return sorted(p.name for p in run_group.iterdir() if p.is_dir() and _RUN_ID.match(p.name))


def submission_lines(run_group: Path) -> list[dict[str, Any]]:
    if not run_group.is_dir():
        raise ConfigError(f"run group folder {run_group} does not exist")
    ids = _run_ids(run_group)
    if not ids:
        raise ConfigError(f"{run_group} holds no runs (no metadata.json and no <competition>_<uuid> folders)")
    lines = []
    for run_id in ids:
        run_dir = (run_group / run_id).resolve()
        submission = run_dir / "submission" / "submission.csv"
        lines.append({
            "competition_id": run_id.split("_")[0],
            "submission_path": str(submission) if submission.is_file() else None,
            "logs_path": str(run_dir / "logs"),
            "code_path": str(run_dir / "code"),
        })
    return lines


def export_submissions(run_group: Path, output: Path) -> list[dict[str, Any]]:
    lines = submission_lines(run_group)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return lines


# What a clone without Git LFS has instead of a leaderboard file (its first line).
LFS_POINTER = b"version https://git-lfs.github.com/spec/"
MLEBENCH_INSTALL = ("in a clone of github.com/openai/mle-bench run `git lfs install && git lfs pull`, then, from a "
                    "gome-agent checkout: pip install -e '.[mlebench]' && bash scripts/install_mlebench.sh "
                    "PATH/TO/mle-bench (README, \"Run on MLE-bench\")")


def check_leaderboards(competitions_dir: Path, competition_ids: list[str]) -> None:
    """Every competition is MLE-bench's and has a real leaderboard file, not a Git LFS pointer."""
    unknown = [cid for cid in competition_ids if not (competitions_dir / cid / "config.yaml").is_file()]
    if unknown:
        raise ConfigError(f"not MLE-bench competitions (no {competitions_dir}/<id>/config.yaml): {', '.join(unknown)}")
    pointers, missing = [], []
    for cid in competition_ids:
        board = competitions_dir / cid / "leaderboard.csv"
        try:
            with board.open("rb") as f:
                head = f.read(len(LFS_POINTER))
        except FileNotFoundError:
            missing.append(cid)
            continue
        if head == LFS_POINTER:
            pointers.append(cid)
    if pointers:
        raise ConfigError(
            f"the installed mlebench has Git LFS pointer files instead of the leaderboards of {', '.join(pointers)} "
            f"(in {competitions_dir}): it was installed from a copy made without Git LFS (as `pip install git+...` "
            f"makes on a machine without it), so no medal can be decided. Fix: {MLEBENCH_INSTALL}"
        )
    if missing:
        raise ConfigError(f"the installed mlebench has no leaderboard.csv for {', '.join(missing)} "
                          f"(in {competitions_dir}). Fix: {MLEBENCH_INSTALL}")


def grade(submissions: Path, output_dir: Path, data_dir: Path | None = None) -> None:
    """Run MLE-bench's own grader on the exported file (needs the `mlebench` package with its leaderboards)."""
    try:
        from mlebench.registry import registry
    except ImportError as exc:
        raise ConfigError(f"--grade needs the mlebench package ({exc}): {MLEBENCH_INSTALL}; then run again") from exc
    lines = [json.loads(line) for line in submissions.read_text(encoding="utf-8").splitlines() if line.strip()]
    check_leaderboards(registry.get_competitions_dir(), sorted({line["competition_id"] for line in lines}))
    # Imported only now: mlebench.grade makes a cache folder in the working directory.
    from mlebench.grade import grade_jsonl

    reg = registry.set_data_dir(data_dir) if data_dir is not None else registry
    output_dir.mkdir(parents=True, exist_ok=True)  # MLE-bench makes only the last folder
    grade_jsonl(submissions, output_dir, reg)
