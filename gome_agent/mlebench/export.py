"""`gome export-submissions`: the `submission.jsonl` that `mlebench grade` takes, from a run group.

`run_agent.py` writes `runs/<run-group>/<competition>_<uuid>/` per run (with the
extracted `submission/`, `logs/` and `code/`) and `metadata.json` listing the
runs. Each line: competition_id, submission_path (null when there is no
submission), logs_path, code_path. With `--grade` and the `mlebench` package
importable, the grader runs right away.
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


def grade(submissions: Path, output_dir: Path, data_dir: Path | None = None) -> None:
    """Run MLE-bench's own grader on the exported file (needs the `mlebench` package)."""
    try:
        from mlebench.grade import grade_jsonl
        from mlebench.registry import registry
    except ImportError as exc:
        raise ConfigError(
            "--grade needs the mlebench package: pip install -e PATH/TO/mle-bench "
            "(or gome-agent's `mlebench` extra), then run again"
        ) from exc
    reg = registry.set_data_dir(data_dir) if data_dir is not None else registry
    grade_jsonl(submissions, output_dir, reg)
