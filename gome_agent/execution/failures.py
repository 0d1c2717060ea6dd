"""Why a solution failed, in one line: the exception, its message, and the line of main.py it came from.

A step's lesson is all that later diagnoses and drafts see of a failure, so it must carry the cause
(`ModuleNotFoundError: No module named 'lightgbm'`, not only "exited with code 1").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)(?:, in (?P<func>.+))?$')
# The last line of a traceback: `Name: message`, `pkg.mod.Name: message`, or a bare `Name`.
_EXCEPTION = re.compile(r"^(?P<name>[A-Za-z_][\w.]*)(?::\s?(?P<message>.*))?$")
MESSAGE_CHARS = 300
CODE_CHARS = 160


@dataclass(frozen=True)
class Cause:
    """The exception that ended a run, and where in the solution it was raised."""

    exception: str
    message: str
    line: int | None = None
    code: str | None = None

    def __str__(self) -> str:
        text = f"{self.exception}: {self.message}" if self.message else self.exception
        if self.line is not None:
            text += f" (main.py line {self.line}" + (f": `{self.code}`)" if self.code else ")")
        return text


def failure_cause(stderr: str, script: str = "main.py") -> Cause | None:
    """The cause of the last Python traceback in `stderr`, or None when there is none."""
    lines = stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if not starts:
        return None
    block = lines[starts[-1] + 1:]
    frames = [i for i, text in enumerate(block) if _FRAME.match(text)]
    if not frames:
        return None
    line_no: int | None = None
    code: str | None = None
    for i in frames:
        frame = _FRAME.match(block[i])
        assert frame is not None
        if frame.group("file").endswith(script):  # the deepest frame in the solution's own code
            line_no = int(frame.group("line"))
            following = block[i + 1] if i + 1 < len(block) else ""
            is_source = following.strip() and not _FRAME.match(following)
            code = following.strip()[:CODE_CHARS] if is_source else None
    # The exception is the first unindented line after the last frame (its source line is indented).
    after = [t for t in block[frames[-1] + 1:] if t.strip() and not t[:1].isspace()]
    found = _EXCEPTION.match(after[0].strip()) if after else None
    if found is None:
        return None
    message = (found.group("message") or "").strip()
    if len(message) > MESSAGE_CHARS:
        message = message[:MESSAGE_CHARS] + " ..."
    return Cause(exception=found.group("name"), message=message, line=line_no, code=code)


def last_traceback(stderr: str, limit: int) -> str | None:
    """The last Python traceback in `stderr` whole, to its end (its start cut if over `limit` characters);
    None when there is none."""
    start = stderr.rfind("Traceback (most recent call last)")
    if start < 0:
        return None
    text = stderr[start:].rstrip()
    return text if len(text) <= limit else "..." + text[-limit:]


def code_excerpt(code: str, line: int, around: int = 4) -> str:
    """The lines of `code` around `line`, numbered, the failing one marked with `>>`."""
    lines = code.splitlines()
    if not 1 <= line <= len(lines):
        return ""
    first, last = max(1, line - around), min(len(lines), line + around)
    return "\n".join(f"{'>>' if n == line else '  '} {n:4d} | {lines[n - 1]}" for n in range(first, last + 1))
