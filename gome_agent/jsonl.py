"""Append-only JSON Lines files that several processes can write at once.

Every record of a run (events, LLM calls, memory) goes through `append`, which
takes a file lock, writes one whole line in one `write`, and redacts secrets.
A line cut short by a hard kill is skipped on read, never fatal.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from filelock import FileLock
from pydantic import BaseModel, ValidationError

from gome_agent.secrets import default_redactor

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


def _lock_for(path: Path) -> FileLock:
    return FileLock(str(path) + ".lock")


def dumps(record: BaseModel | dict[str, Any]) -> str:
    """One redacted JSON line (no trailing newline)."""
    if isinstance(record, BaseModel):
        text = record.model_dump_json()
    else:
        text = json.dumps(record, ensure_ascii=False, default=str)
    return default_redactor()(text)


def append(path: Path, record: BaseModel | dict[str, Any]) -> None:
    """Append one record as a line; safe across processes and threads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = dumps(record).encode("utf-8") + b"\n"
    with _lock_for(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size:
                # A writer killed mid-line left no newline: start a fresh line so
                # this record is not glued onto the broken one.
                with open(path, "rb") as f:
                    f.seek(size - 1)
                    if f.read(1) != b"\n":
                        line = b"\n" + line
            os.write(fd, line)
        finally:
            os.close(fd)


def iter_raw(path: Path) -> Iterator[dict[str, Any]]:
    """Every well-formed record in the file; broken lines are logged and skipped."""
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s:%d: skipping a broken line (%d chars)", path, number, len(line))
                continue
            if isinstance(value, dict):
                yield value


def read(path: Path, model: type[M]) -> list[M]:
    """All records of a file parsed into `model`; records of another shape are skipped."""
    out: list[M] = []
    for raw in iter_raw(path):
        try:
            out.append(model.model_validate(raw))
        except ValidationError as exc:
            log.warning("%s: skipping a record that does not fit %s: %s", path, model.__name__, exc)
    return out


def write_json(path: Path, data: BaseModel | dict[str, Any]) -> None:
    """Write a JSON document atomically (temp file + rename), redacted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, BaseModel):
        text = data.model_dump_json(indent=2)
    else:
        text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(default_redactor()(text), encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not also keep a half-written copy
        raise
