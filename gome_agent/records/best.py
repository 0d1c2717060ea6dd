"""Keeping the best valid submission in place at every moment.

Whenever a trace finds a better solution, its `submission.csv` goes to
`OUT/submission/` and its code to `OUT/code/`, each by atomic rename, under a
lock shared by all traces: a hard kill at any instant leaves the best so far
(never a half-written file). The submission's SHA-256 is recorded with it, so that
the copy graded in the end can be checked against what was published (a solution
outside the namespace sandbox can write anywhere its user may).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal, NamedTuple

from filelock import FileLock
from pydantic import BaseModel, ValidationError

from gome_agent import jsonl
from gome_agent.config import RunConfig
from gome_agent.records.events import now_iso

Source = Literal["step", "fallback", "final_selection", "refit"]


class BestInfo(BaseModel):
    trace: int | None
    step: int | None
    score: float | None
    higher_is_better: bool
    source: Source
    code_dir: str | None
    ts: str
    sha256: str | None = None  # of the published submission (None in records written before it was kept)


_CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def copy_atomic(src: Path, dst: Path, *, read_only: bool = False) -> str:
    """Copy `src` to `dst` by atomic rename; returns the SHA-256 of the bytes copied. `read_only`
    leaves `dst` unwritable even for its owner (a rename over it still works)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    try:
        with open(src, "rb") as source, open(tmp, "wb") as target:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                target.write(chunk)
        if read_only:
            os.chmod(tmp, 0o444)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)  # the old file stays whole; no half copy is left to fill the disk
        raise
    return digest.hexdigest()


class RecordedBest(NamedTuple):
    path: Path
    verified: bool  # its content is the one published; False: no copy left matches the recorded hash


def recorded_best(workdir: Path) -> RecordedBest | None:
    """The run's published best submission, by content: the run's copy, else the copy in the attempt
    folder it came from, whichever still has the SHA-256 recorded at publication. None when nothing
    was published."""
    try:
        info = BestInfo.model_validate_json((workdir / "code" / "best.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, ValidationError):
        return None
    own = workdir / "submission" / "submission.csv"
    copies = [own] + ([workdir / info.code_dir / "submission.csv"] if info.code_dir else [])
    for path in copies:
        if path.is_file() and not path.is_symlink() and (info.sha256 is None or sha256_of(path) == info.sha256):
            return RecordedBest(path, verified=info.sha256 is not None)
    return RecordedBest(own, verified=False) if own.is_file() else None


class BestKeeper:
    """The run-wide best: `OUT/submission/submission.csv`, `OUT/code/main.py`, `OUT/code/best.json`."""

    def __init__(
        self,
        workdir: Path,
        *,
        higher_is_better: bool,
        mirror_submission_dir: Path | None = None,
        mirror_code_dir: Path | None = None,
    ) -> None:
        self.workdir = workdir
        self.higher_is_better = higher_is_better
        self.submission_path = workdir / "submission" / "submission.csv"
        self.code_dir = workdir / "code"
        self.info_path = self.code_dir / "best.json"
        # Extra places that must hold the best at every moment (MLE-bench extracts /home/submission).
        self.mirror_submission = mirror_submission_dir / "submission.csv" if mirror_submission_dir else None
        self.mirror_code_dir = mirror_code_dir
        self._lock = FileLock(str(workdir / ".best.lock"))

    @classmethod
    def for_run(cls, config: RunConfig, *, higher_is_better: bool) -> BestKeeper:
        return cls(config.workdir, higher_is_better=higher_is_better,
                   mirror_submission_dir=config.mirror_submission_dir, mirror_code_dir=config.mirror_code_dir)

    def current(self) -> BestInfo | None:
        try:
            return BestInfo.model_validate_json(self.info_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValidationError):
            return None

    def _better(self, score: float, info: BestInfo | None) -> bool:
        if info is None or info.score is None:
            return True
        return score > info.score if self.higher_is_better else score < info.score

    def offer(self, *, score: float, trace: int, step: int, attempt_dir: Path, force: bool = False,
              source: Source = "step") -> bool:
        """Publish this solution if it beats the run's best (or `force`: the final selection's choice,
        its refit); True when published."""
        with self._lock:
            if not force and not self._better(score, self.current()):
                return False
            self._publish(attempt_dir, BestInfo(
                trace=trace,
                step=step,
                score=score,
                higher_is_better=self.higher_is_better,
                source=source,
                code_dir=str(attempt_dir.relative_to(self.workdir)) if attempt_dir.is_relative_to(self.workdir) else str(attempt_dir),
                ts=now_iso(),
            ))
            return True

    def _publish(self, attempt_dir: Path, info: BestInfo) -> None:
        info.sha256 = self._put_submission(attempt_dir / "submission.csv")
        for code_dir in filter(None, (self.code_dir, self.mirror_code_dir)):
            copy_atomic(attempt_dir / "main.py", code_dir / "main.py")
            if (attempt_dir / "scores.json").exists():
                copy_atomic(attempt_dir / "scores.json", code_dir / "scores.json")
        jsonl.write_json(self.info_path, info)
        if self.mirror_code_dir is not None:
            jsonl.write_json(self.mirror_code_dir / "best.json", info)

    def _put_submission(self, source: Path) -> str:
        """Copy `source` into place (the run's copy first, then the mirror from it); its SHA-256."""
        digest = copy_atomic(source, self.submission_path)
        if self.mirror_submission is not None:
            # The graded file is read-only: a solution running as the same user cannot rewrite it in place.
            copy_atomic(self.submission_path, self.mirror_submission, read_only=True)
        return digest

    def publish_fallback(self, submission: Path) -> None:
        """Put a fallback submission in place, only when no real one exists."""
        with self._lock:
            if self.current() is not None and self.submission_path.exists():
                return
            digest = self._put_submission(submission)
            jsonl.write_json(self.info_path, BestInfo(
                trace=None, step=None, score=None, higher_is_better=self.higher_is_better,
                source="fallback", code_dir=None, ts=now_iso(), sha256=digest,
            ))
