"""Turning a model's code reply into a new main.py.

An update is a minimal change to the current best code, written as
SEARCH/REPLACE blocks; a draft (or a change that touches most of the file) is a
whole file in a ```python block. Blocks must match exactly; a block that does
not is reported precisely so the model can correct it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from gome_agent.errors import GomeError


class EditError(GomeError):
    """The reply holds no usable code, or an edit does not apply."""


_BLOCK = re.compile(
    r"^<{5,9} ?SEARCH[^\n]*\n(?P<search>.*?)^={5,9}[ \t]*\n(?P<replace>.*?)^>{5,9} ?REPLACE[^\n]*$",
    re.DOTALL | re.MULTILINE,
)
_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(?P<code>.*?)^```", re.DOTALL | re.MULTILINE)
_SUMMARY = re.compile(r"^\s*(?:\*\*)?(Change|Approach)(?:\*\*)?\s*:\s*(?P<text>.+)$", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True)
class Edit:
    search: str
    replace: str


@dataclass(frozen=True)
class CodeReply:
    """What a reply says: a summary line and either edits or a whole file."""

    summary: str
    edits: list[Edit]
    full_code: str | None


def parse_reply(text: str) -> CodeReply:
    summary_match = _SUMMARY.search(text)
    summary = summary_match.group("text").strip() if summary_match else ""
    edits = [Edit(m.group("search"), m.group("replace")) for m in _BLOCK.finditer(text)]
    if edits:
        return CodeReply(summary, edits, None)
    blocks = [m.group("code") for m in _FENCE.finditer(text)]
    if blocks:
        # The longest fenced block is the program; short ones are usually shell or examples.
        return CodeReply(summary, [], max(blocks, key=len))
    raise EditError(
        "the reply contains neither SEARCH/REPLACE blocks nor a ```python code block; "
        "reply with the code in one of those two forms"
    )


def _locate(code: str, search: str) -> tuple[int, int] | None:
    """Span of `search` in `code`: exact, else ignoring trailing whitespace on each line."""
    count = code.count(search)
    if count == 1:
        start = code.index(search)
        return start, start + len(search)
    if count > 1:
        return None
    lines = code.splitlines(keepends=True)
    wanted = [ln.rstrip() for ln in search.splitlines()]
    while wanted and not wanted[-1]:
        wanted.pop()
    if not wanted:
        return None
    stripped = [ln.rstrip() for ln in lines]
    hits = [i for i in range(len(lines) - len(wanted) + 1) if stripped[i : i + len(wanted)] == wanted]
    if len(hits) != 1:
        return None
    start = sum(len(ln) for ln in lines[: hits[0]])
    end = start + sum(len(ln) for ln in lines[hits[0] : hits[0] + len(wanted)])
    return start, end


def apply_edits(code: str, edits: list[Edit]) -> str:
    """Apply the blocks in order; raises EditError naming the first block that does not apply."""
    for number, edit in enumerate(edits, 1):
        if not edit.search.strip():
            raise EditError(f"edit block {number} has an empty SEARCH part; copy the lines to replace")
        if code.count(edit.search) > 1:
            raise EditError(
                f"edit block {number}: its SEARCH part occurs {code.count(edit.search)} times in main.py; "
                "include more surrounding lines so it is unique"
            )
        search, replacement = edit.search, edit.replace
        span = _locate(code, search)
        if span is None and code.count(search.rstrip("\n")) == 1:
            # A SEARCH part that is a piece of one line: its block's final newline is not in the code.
            search, replacement = search.rstrip("\n"), replacement.rstrip("\n")
            start = code.index(search)
            span = (start, start + len(search))
        if span is None:
            first = edit.search.strip().splitlines()[0][:120]
            raise EditError(
                f"edit block {number}: its SEARCH part does not match main.py exactly "
                f"(it starts with {first!r}); copy the lines exactly as they are in the current code"
            )
        start, end = span
        if code[start:end].endswith("\n") and replacement and not replacement.endswith("\n"):
            replacement += "\n"
        code = code[:start] + replacement + code[end:]
    return code


def new_code(reply: str, current: str | None) -> tuple[str, str]:
    """The new main.py and the reply's summary line; raises EditError when it cannot be built."""
    parsed = parse_reply(reply)
    if parsed.full_code is not None:
        code = parsed.full_code
    elif current is None:
        raise EditError("there is no current main.py to edit; reply with the whole file in one ```python block")
    else:
        code = apply_edits(current, parsed.edits)
    try:
        ast.parse(code)
    except SyntaxError as exc:
        raise EditError(f"the resulting main.py is not valid Python: line {exc.lineno}: {exc.msg}") from exc
    return code, parsed.summary
