"""Disk housekeeping: what an attempt folder keeps once its step is recorded, the free space a
solution run needs, and how much a run folder holds.

A solution writes what it likes into its attempt folder (`traces/t<K>/s<NNNN>/a<N>`, and `a<N>-smoke`
for its smoke run): checkpoints, cached features, copies of the data. Hundreds of attempts on an
image competition would fill the disk, yet once a step is recorded and published only a few of
its files are ever read again:

- `main.py`: later steps start from it; resume, the report, the exported traces, the tree search,
  the final selection and the refit read it;
- `stdout.txt`, `stderr.txt`: resume (the best's output), the report, the tree search's debug
  steps, the exported traces and the container's run record;
- `scores.json`: resume (the best's score table) and the container's run record;
- and only in the attempt of a step that may still be submitted (a candidate of the final
  selection, its trace's best, or the best in place): `submission.csv` (the final selection puts
  it in place and compares its re-runs with it; `finalize` falls back on it) and the predictions
  of the held-out rows.

Everything else is deleted (`execution.keep_outputs = "all"` keeps it). Each trace tidies its own
folders only, after its step is recorded and published, so no other process is reading them then;
the final selection tidies each re-run's folder once it is scored (nothing reads its submission
again).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

from gome_agent.records.candidates import pick_candidates
from gome_agent.records.events import StepRecord
from gome_agent.task.analysis import Task
from gome_agent.task.holdout import PREDICTIONS_FILE

log = logging.getLogger(__name__)

RECORD_FILES = frozenset({"main.py", "scores.json", "stdout.txt", "stderr.txt"})
SUBMISSION_FILES = frozenset({"submission.csv", PREDICTIONS_FILE})
GB = 1024**3


def unneeded(names: Iterable[str], *, submittable: bool) -> list[str]:
    """The entries of an attempt folder that nothing reads once its step is recorded (sorted);
    `submittable`: the attempt's submission may still be put in place."""
    keep = RECORD_FILES | SUBMISSION_FILES if submittable else RECORD_FILES
    return sorted(set(names) - keep)


def submittable_dirs(steps: list[StepRecord], task: Task, limit: int, *, also: Iterable[str | None]) -> set[str]:
    """The attempt folders (`code_dir`) whose submissions must stay: the final selection's candidates
    among `steps` (`limit` of them), and `also` (the trace's best, the best in place)."""
    kept = {s.code_dir for s in pick_candidates(steps, task, limit) if s.code_dir}
    return kept | {d for d in also if d}


def prune(folder: Path, *, submittable: bool) -> int:
    """Delete what `unneeded` names in `folder`; the bytes freed. What cannot be deleted is logged
    and left (a full disk later is reported before a run, never a crash here)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    freed = 0
    for name in unneeded(names, submittable=submittable):
        path = folder / name
        size = disk_bytes(path)
        try:
            _remove(path)
        except OSError as exc:
            log.warning("could not delete %s: %s", path, exc)
            continue
        freed += size
    return freed


def tidy_step(workdir: Path, step_dir: Path, record: StepRecord, *, trace_steps: list[StepRecord],
              submittable: set[str] | None) -> int:
    """After `record` is recorded and published: prune each attempt folder of its step (the accepted
    attempt keeps its submission); with `submittable` (given after an accepted step), also drop the
    submissions of the trace's earlier accepted steps that are not in it. The bytes freed."""
    freed = 0
    try:
        attempts = [p for p in step_dir.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        attempts = []
    for attempt in attempts:
        code_dir = attempt.relative_to(workdir).as_posix()
        freed += prune(attempt, submittable=record.accepted and code_dir == record.code_dir)
    if submittable is not None:
        for step in trace_steps:
            if step.accepted and step.code_dir and step.code_dir not in submittable:
                freed += prune(workdir / step.code_dir, submittable=False)
    return freed


def _remove(path: Path) -> None:
    try:
        _delete(path)
    except PermissionError:
        # A solution may have made its folders read-only: make them writable, then try again.
        for folder in [path.parent, *(Path(f, d) for f, dirs, _ in os.walk(path) for d in dirs), path]:
            if folder.is_dir() and not folder.is_symlink():
                folder.chmod(stat.S_IRWXU)
        _delete(path)


def _delete(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)


def disk_bytes(path: Path) -> int:
    """The disk space `path` takes (allocated blocks, as `du`), links not followed; 0 when it is gone."""
    try:
        info = path.lstat()
    except OSError:
        return 0
    total = info.st_blocks * 512
    if not stat.S_ISDIR(info.st_mode):
        return total
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except OSError:
                continue  # deleted while being counted
    return total


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def free_space_problem(path: Path, min_free_gb: float) -> str | None:
    """Why no solution run should start: the file system of `path` has less than `min_free_gb`
    free (None: enough)."""
    free = free_bytes(path)
    if free >= min_free_gb * GB:
        return None
    return (f"only {format_bytes(free)} free on the file system of {path}, under the {min_free_gb:g} GB a run "
            "needs (execution.min_free_disk_gb)")


def format_bytes(size: int) -> str:
    for unit, scale in (("GB", GB), ("MB", 1024**2), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
