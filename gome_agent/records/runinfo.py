"""`run.json`: when the run started and how much of its budget is spent.

The coordinator writes it at start and refreshes its heartbeat while the run
lives; trace processes read it to share one clock, and `--resume` reads it to
continue with the budget that is left (time while nothing ran does not count).
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel, ValidationError

from gome_agent import jsonl
from gome_agent.errors import ConfigError
from gome_agent.optimizer.budget import Budget


class RunInfo(BaseModel):
    time_limit_s: float
    reserve_s: float
    started_at: float          # epoch of this session's start
    spent_before_s: float = 0.0  # budget spent by earlier sessions (resume)
    heartbeat_at: float
    sessions: int = 1

    def budget(self) -> Budget:
        return Budget(self.time_limit_s, started_at=self.started_at, spent_before_s=self.spent_before_s,
                      reserve_s=self.reserve_s)

    def spent_s(self, last_activity: float | None = None) -> float:
        """Budget spent up to the last heartbeat, or to `last_activity` when that is later."""
        until = max(self.heartbeat_at, last_activity or 0.0)
        return self.spent_before_s + max(0.0, until - self.started_at)


def path_of(workdir: Path) -> Path:
    return workdir / "run.json"


def load(workdir: Path) -> RunInfo:
    path = path_of(workdir)
    try:
        return RunInfo.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{workdir} holds no run to resume ({path.name} is missing)") from exc
    except ValidationError as exc:
        raise ConfigError(f"{path} is damaged: {exc}") from exc


def save(workdir: Path, info: RunInfo) -> None:
    jsonl.write_json(path_of(workdir), info)


def start(workdir: Path, time_limit_s: float, reserve_s: float) -> RunInfo:
    now = time.time()
    info = RunInfo(time_limit_s=time_limit_s, reserve_s=reserve_s, started_at=now, heartbeat_at=now)
    save(workdir, info)
    return info


def resume(workdir: Path, time_limit_s: float | None = None) -> RunInfo:
    """A new session that continues from the budget spent so far.

    A hard kill can come between heartbeats; the last write to `events.jsonl` (by any
    trace) also shows the run was alive then.
    """
    old = load(workdir)
    now = time.time()
    try:
        last_activity = (workdir / "events.jsonl").stat().st_mtime
    except OSError:
        last_activity = None
    info = RunInfo(
        time_limit_s=time_limit_s or old.time_limit_s,
        reserve_s=old.reserve_s,
        started_at=now,
        spent_before_s=old.spent_s(last_activity),
        heartbeat_at=now,
        sessions=old.sessions + 1,
    )
    save(workdir, info)
    return info


def heartbeat(workdir: Path, info: RunInfo) -> RunInfo:
    info = info.model_copy(update={"heartbeat_at": time.time()})
    save(workdir, info)
    return info
