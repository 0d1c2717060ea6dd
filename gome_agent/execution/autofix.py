"""Fixes gome makes to a solution itself, without asking the model, where the right change is certain.

Four kinds, all common in a small model's code and cheap to get wrong when it is asked to fix them
(the 0.5B model copied its code back unchanged, or "fixed" `n_jobs=THREADS` into `n_jobs=None`):

- imports the static check knows (`np`, `os`, `StandardScaler`: `static_check.import_for`), added at
  the top before the code is checked;
- a common scikit-learn name imported from the wrong module (`from sklearn.linear_model import
  RandomForestRegressor`: 2 failed runs of one 8-minute run of the 0.5B model), imported from its own
  module instead (`static_check.sklearn_home`), before the code is checked;
- a name that an import on the failing line cannot import and that the code never uses (`ImportError:
  cannot import name 'kappa' from 'sklearn.metrics'`: every draft of one 0.5B run failed on it, its
  fixes copied back unchanged), removed from that import after the run;
- a keyword argument that the called function does not take (`TypeError: ... got an unexpected keyword
  argument 'threads'`), removed from the one call on the failing line that passes it, after the run.

Each fix is recorded in the step (`auto_fixes`); `execution.auto_fixes` turns them off.
"""

from __future__ import annotations

import ast
import re

from pyflakes import checker as pyflakes_checker
from pyflakes import messages as pyflakes_messages

from gome_agent.execution.failures import Cause
from gome_agent.execution.static_check import import_for, sklearn_home

_UNEXPECTED = re.compile(r"(?:(?P<func>[\w.]+)\(\) )?got an unexpected keyword argument '(?P<keyword>\w+)'")


def add_missing_imports(code: str) -> tuple[str, list[str]]:
    """`code` with the imports it clearly lacks added at its top (after a docstring and `from
    __future__` imports), and those import lines. A small model often uses `StandardScaler` or `os`
    without importing it and then, asked to fix that, copies its code back unchanged; gome adds what
    it knows instead of spending an LLM call. Code that does not parse is returned as it is."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return code, []
    names = {str(m.message_args[0]) for m in pyflakes_checker.Checker(tree, filename="main.py").messages
             if isinstance(m, pyflakes_messages.UndefinedName)}
    added = sorted({line for name in names if (line := import_for(name)) is not None})
    if not added:
        return code, []
    body = tree.body
    skip = 1 if ast.get_docstring(tree, clean=False) is not None else 0
    while skip < len(body) and isinstance(body[skip], ast.ImportFrom) and body[skip].module == "__future__":
        skip += 1
    lines = code.splitlines(keepends=True)
    at = body[skip].lineno - 1 if skip < len(body) else len(lines)
    if at and not lines[at - 1].endswith("\n"):
        lines[at - 1] += "\n"
    # Before a decorated first statement, insert above its decorators.
    if skip < len(body) and getattr(body[skip], "decorator_list", None):
        at = min(d.lineno for d in body[skip].decorator_list) - 1
    return "".join([*lines[:at], *(f"{line}\n" for line in added), *lines[at:]]), added


def move_misplaced_imports(code: str) -> tuple[str, list[str]]:
    """`code` with each common scikit-learn name that a `from sklearn.X import ...` line takes from the
    wrong module imported from its own one, and what was done. Only a statement alone on its lines is
    rewritten; code that does not parse is returned as it is."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return code, []
    lines, done = code.splitlines(keepends=True), []
    statements = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0
                  and (n.module or "").startswith("sklearn.")]
    for node in sorted(statements, key=lambda n: -n.lineno):  # bottom up: earlier line numbers stay valid
        moved = [(a, home) for a in node.names if (home := sklearn_home(a.name)) not in (None, node.module)]
        end = node.end_lineno or node.lineno
        first, last = lines[node.lineno - 1], lines[end - 1]
        after = last.encode("utf-8")[node.end_col_offset or 0:].decode("utf-8", "ignore").strip()
        if not moved or first[:node.col_offset].strip() or (after and not after.startswith("#")):
            continue
        indent = first[:node.col_offset]
        kept = [a for a in node.names if all(a is not m for m, _ in moved)]
        text = [f"{indent}from {node.module} import {', '.join(map(_alias, kept))}\n"] if kept else []
        text += [f"{indent}from {home} import {_alias(a)}\n" for a, home in moved]
        lines[node.lineno - 1:end] = text
        done += [f"line {node.lineno}: imported `{a.name}` from {home}, not {node.module}" for a, home in moved]
    return "".join(lines), sorted(done)


def _alias(alias: ast.alias) -> str:
    return f"{alias.name} as {alias.asname}" if alias.asname else alias.name


_CANNOT_IMPORT = re.compile(r"cannot import name '(?P<name>\w+)'")


def drop_unused_failed_import(code: str, cause: Cause) -> tuple[str, str] | None:
    """`code` without the name that `cause` (a run's ImportError) says the import on the failing line
    cannot import, and what was done; None unless that name is imported there and used nowhere else."""
    found = _CANNOT_IMPORT.search(cause.message)
    if cause.exception != "ImportError" or found is None or cause.line is None:
        return None
    name = found.group("name")
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    statements = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.lineno == cause.line
                  and any(a.name == name and a.asname is None for a in n.names)]
    used = any(isinstance(n, ast.Name) and n.id == name or isinstance(n, ast.Attribute) and n.attr == name
               for n in ast.walk(tree))
    if len(statements) != 1 or used:
        return None
    node = statements[0]
    lines = code.splitlines(keepends=True)
    first = lines[node.lineno - 1]
    indent = first[:len(first) - len(first.lstrip())]
    kept = [a for a in node.names if a.name != name]
    text = [f"{indent}from {'.' * node.level}{node.module or ''} import {', '.join(map(_alias, kept))}\n"] if kept \
        else ([f"{indent}pass\n"] if indent else [])  # an import alone in a block leaves the block a statement
    lines[node.lineno - 1:node.end_lineno] = text
    fixed = "".join(lines)
    try:
        ast.parse(fixed)
    except SyntaxError:
        return None
    return fixed, f"line {cause.line}: removed the unused import of `{name}`, which {node.module} does not have"


def drop_unexpected_keyword(code: str, cause: Cause) -> tuple[str, str] | None:
    """`code` without the keyword argument that `cause` (a run's TypeError) says its call does not take,
    and what was done; None unless exactly one call on the failing line passes that keyword (and, when
    the error names the function, calls it)."""
    found = _UNEXPECTED.search(cause.message)
    if cause.exception != "TypeError" or found is None or cause.line is None:
        return None
    keyword, func = found.group("keyword"), found.group("func")
    callee = func.removesuffix(".__init__").rsplit(".", 1)[-1] if func else None
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    hits = [(call, arg) for call in ast.walk(tree) if isinstance(call, ast.Call)
            and call.lineno <= cause.line <= (call.end_lineno or call.lineno)
            and (callee is None or _name(call.func) == callee)
            for arg in call.keywords if arg.arg == keyword]
    if len(hits) != 1:
        return None
    call, arg = hits[0]
    lines = code.splitlines(keepends=True)
    start, end = _offset(lines, arg.lineno, arg.col_offset), _offset(lines, arg.end_lineno, arg.end_col_offset)
    # With the comma that joins it to the argument before it (or, if it is the first, after it).
    before = re.search(r",\s*$", code[:start])
    after = re.match(r"\s*,\s*", code[end:])
    if before:
        start = before.start()
    elif after:
        end += after.end()
    fixed = code[:start] + code[end:]
    try:
        ast.parse(fixed)
    except SyntaxError:
        return None
    name = _name(call.func) or "the call"
    return fixed, f"line {cause.line}: removed `{keyword}=` from {name}(), which does not take it ({cause.exception})"


def _name(func: ast.expr) -> str | None:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def _offset(lines: list[str], line: int | None, column: int | None) -> int:
    """The character offset in the code of an AST position (its column counts UTF-8 bytes)."""
    assert line is not None and column is not None
    text = lines[line - 1]
    return sum(len(ln) for ln in lines[: line - 1]) + len(text.encode("utf-8")[:column].decode("utf-8", "ignore"))
