"""Lenient extraction of a JSON object from an LLM reply, and validation against a pydantic schema.

Models wrap JSON in code fences, add prose around it, put raw newlines inside strings and
leave trailing commas; all of that is accepted. What is still wrong is reported in words
the model can act on, because the message goes back to it in the repair re-ask.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

T = TypeVar("T", bound=BaseModel)

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\r?\n(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder(strict=False)


class JSONExtractError(ValueError):
    """No usable JSON object in the reply."""


def _drop_trailing_commas(text: str) -> str:
    """Remove commas that directly precede a closing bracket, outside of strings."""
    out: list[str] = []
    in_string = escaped = False
    for i, ch in enumerate(text):
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch == ",":
            j = i + 1
            while j < len(text) and text[j] in " \t\r\n":
                j += 1
            if j < len(text) and text[j] in "}]":
                continue
        out.append(ch)
    return "".join(out)


def _scan(text: str) -> tuple[dict[str, Any] | None, json.JSONDecodeError | None]:
    """The first `{...}` in the text that decodes (prose around it is ignored), else the error of
    the attempt that got furthest, which is most likely the intended object.

    After a failed attempt the scan resumes behind the failure point: the braces before it
    belong to the broken object, and returning one of its inner objects would mislead.
    """
    best: json.JSONDecodeError | None = None
    best_reach = -1
    start = text.find("{")
    while start != -1:
        try:
            value, _ = _DECODER.raw_decode(text, start)
            return value, None
        except json.JSONDecodeError as exc:
            if exc.pos - start > best_reach:
                best, best_reach = exc, exc.pos - start
            start = text.find("{", max(exc.pos, start + 1))
    return None, best


def _first_object(text: str) -> tuple[dict[str, Any] | None, json.JSONDecodeError | None]:
    value, error = _scan(text)
    if value is None:
        value, _ = _scan(_drop_trailing_commas(text))
    return value, error


def extract_json_object(text: str) -> dict[str, Any]:
    """The JSON object in an LLM reply: a fenced block first, then the first object in the whole text."""
    fenced = [body for lang, body in _FENCE.findall(text) if lang.lower() in ("", "json", "json5", "jsonc")]
    for candidate in fenced:
        value, _ = _first_object(candidate)
        if value is not None:
            return value
    value, error = _first_object(text)
    if value is not None:
        return value
    if error is None:
        raise JSONExtractError("the reply contains no JSON object (no '{' found)")
    if error.pos >= len(text.rstrip()) or error.msg.startswith("Unterminated string"):
        raise JSONExtractError(f"the JSON object in the reply is incomplete, probably cut off ({error.msg} at the end)")
    raise JSONExtractError(f"the JSON object in the reply is not valid JSON: {error}")


def describe_validation_error(exc: ValidationError, schema: type[BaseModel]) -> str:
    """One line per problem, e.g. "steps.0.score: Input should be a valid number"."""
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        problems.append(f"{where}: {error['msg']}")
    return f"the JSON object does not match the schema {schema.__name__}: " + "; ".join(problems)


def parse_json_as(text: str, schema: type[T]) -> T:
    """The reply parsed into `schema`; ValueError (JSONExtractError or a validation message) otherwise."""
    data = extract_json_object(text)
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc, schema)) from None
