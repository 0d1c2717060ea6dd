"""Checks of a solution's code before it runs: no LLM call, no run time.

Four kinds of problem, each with its line of main.py:

- the code does not parse (checked again in the solutions' own interpreter before it counts,
  since that interpreter may be a newer Python than gome's);
- undefined names, missing imports among them (pyflakes), with the import to add when it is clear;
- imports of modules that the solutions' interpreter does not have (asked once per module name and
  interpreter, through `importlib.util.find_spec` in a subprocess); imports guarded by
  `try: ... except ImportError` are optional and never reported;
- column names written as string literals (`df["col"]`, `df.loc[:, ["a", "b"]]`, `usecols=[...]`,
  `drop(columns=[...])`, `groupby("col")`) that no input table has.

The column check is deliberately conservative, since a false alarm costs a fix round: it looks only
at frames it can follow from `read_csv` through frame-preserving methods, only when every table's
columns are known, and never at a literal that the code could have made itself (one that appears
anywhere else in the code, that extends a known column with a separator, or that holds a piece of
a column name the code builds with an f-string or `+`). A missed error is still caught by the
smoke run, in seconds.
"""

from __future__ import annotations

import ast
import difflib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pyflakes import checker as pyflakes_checker
from pyflakes import messages as pyflakes_messages

from gome_agent.secrets import scrubbed_env

log = logging.getLogger(__name__)

ProblemKind = Literal["syntax", "undefined", "module", "column"]

PROBE_TIMEOUT_S = 60.0
_PROBE = (
    "import importlib.util, json, sys\n"
    "found = {}\n"
    "for name in sys.argv[1:]:\n"
    "    try:\n"
    "        found[name] = importlib.util.find_spec(name) is not None\n"
    "    except Exception:\n"
    "        found[name] = False\n"
    "print(json.dumps(found))\n"
)
_SYNTAX = "import sys\ncompile(sys.stdin.read(), 'main.py', 'exec')\n"
# Exceptions whose handler makes the imports of its `try` optional.
_IMPORT_GUARDS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
# The usual aliases, so an undefined `np` says which import is missing.
_ALIASES = {
    "np": "import numpy as np", "pd": "import pandas as pd", "plt": "import matplotlib.pyplot as plt",
    "sns": "import seaborn as sns", "tf": "import tensorflow as tf", "lgb": "import lightgbm as lgb",
    "xgb": "import xgboost as xgb", "cb": "import catboost as cb", "nn": "import torch.nn as nn",
    "F": "import torch.nn.functional as F",
}
_SKLEARN = {
    "model_selection": ["train_test_split", "KFold", "StratifiedKFold", "GroupKFold", "cross_val_score",
                        "cross_val_predict", "GridSearchCV", "RandomizedSearchCV"],
    "metrics": ["roc_auc_score", "accuracy_score", "f1_score", "log_loss", "mean_squared_error",
                "mean_absolute_error", "r2_score", "cohen_kappa_score", "mean_squared_log_error"],
    "linear_model": ["LogisticRegression", "LinearRegression", "Ridge", "Lasso", "ElasticNet"],
    "ensemble": ["RandomForestClassifier", "RandomForestRegressor", "GradientBoostingClassifier",
                 "GradientBoostingRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor",
                 "HistGradientBoostingClassifier", "HistGradientBoostingRegressor"],
    "preprocessing": ["StandardScaler", "MinMaxScaler", "LabelEncoder", "OneHotEncoder", "OrdinalEncoder"],
    "impute": ["SimpleImputer"],
    "pipeline": ["Pipeline", "make_pipeline"],
    "compose": ["ColumnTransformer"],
    "feature_extraction.text": ["TfidfVectorizer", "CountVectorizer"],
}
_KNOWN_IMPORTS = {
    **_ALIASES,
    **{name: f"from sklearn.{module} import {name}" for module, names in _SKLEARN.items() for name in names},
    "Path": "from pathlib import Path",
}

# Frames: what `read_csv` returns, and what these methods of a frame return (same columns or fewer).
_READERS = {"read_csv", "read_table"}
_FRAME_METHODS = {
    "copy", "drop", "dropna", "fillna", "reset_index", "sort_values", "sort_index", "sample", "head", "tail",
    "astype", "query", "assign", "drop_duplicates", "replace", "clip", "where", "set_index", "select_dtypes",
    "ffill", "bfill", "interpolate", "infer_objects", "convert_dtypes", "round", "abs", "nlargest", "nsmallest",
}
_JOINS = {"merge", "join"}
_LOCATORS = {"loc", "at"}
_SEPARATORS = ("_", "-", " ", ".")
# Columns pandas names itself (reset_index, melt, value_counts, to_frame of an unnamed series).
_PANDAS_NAMES = frozenset({"index", "level_0", "level_1", "variable", "value", "count", "proportion", "size", "0"})
# Calls a path may be built with (anything else, such as StringIO, is not a file of the input).
_PATH_CALLS = {"join", "Path", "get", "getenv", "str", "format", "joinpath", "resolve", "expanduser", "abspath"}
# Placeholders that split a format string into the pieces of the names it builds.
_PLACEHOLDER = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?[sdifr]|\{[^{}]*\}")


@dataclass(frozen=True)
class StaticProblem:
    """One problem found in the code before it ran."""

    kind: ProblemKind
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


def check_code(code: str, *, python: str | None = None,
               tables: Mapping[str, Sequence[str]] | None = None) -> list[StaticProblem]:
    """The problems of `code`, by line. `python`: the solutions' interpreter (None: imports are not
    checked); `tables`: the columns of every table the solution can read, by path (None: some
    table's columns are unknown, so column names are not checked)."""
    try:
        tree = ast.parse(code, filename="main.py")
        compile(tree, "main.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        problem = _syntax_problem(exc, code)
        if python is not None and python_compiles(python, code):
            return []  # newer syntax than gome's own Python knows; the other checks need gome's parser
        return [problem]
    problems = undefined_names(tree)
    if python is not None and not _installs_packages(tree):
        problems += missing_modules(tree, python)
    if tables is not None:
        problems += ColumnCheck(tree, tables).problems()
    return sorted(problems, key=lambda p: (p.line or 0, p.kind))


def _syntax_problem(exc: SyntaxError | ValueError, code: str) -> StaticProblem:
    if not isinstance(exc, SyntaxError):
        return StaticProblem("syntax", None, f"the code cannot be parsed: {exc}")
    text = ""
    if exc.lineno is not None and 0 < exc.lineno <= len(code.splitlines()):
        text = f": `{code.splitlines()[exc.lineno - 1].strip()[:120]}`"
    return StaticProblem("syntax", exc.lineno, f"{type(exc).__name__}: {exc.msg}{text}")


# Undefined names ---------------------------------------------------------------------


def undefined_names(tree: ast.Module) -> list[StaticProblem]:
    """Names used but never defined or imported (a star import silences pyflakes here, rightly)."""
    found = sorted(pyflakes_checker.Checker(tree, filename="main.py").messages, key=lambda m: m.lineno)
    problems = []
    lines: dict[str, list[int]] = {}
    for message in found:
        if isinstance(message, pyflakes_messages.UndefinedName):
            lines.setdefault(str(message.message_args[0]), []).append(message.lineno)
        elif isinstance(message, pyflakes_messages.UndefinedLocal):
            name = str(message.message_args[0])
            problems.append(StaticProblem("undefined", message.lineno,
                                          f"local variable {name!r} is used before it is assigned"))
    for name, where in lines.items():
        hint = import_for(name)
        others = ", ".join(map(str, where[1:]))
        also = f", also on line{'s' if len(where) > 2 else ''} {others}" if others else ""
        problems.append(StaticProblem("undefined", where[0], f"undefined name {name!r}{also}"
                                      + (f" (missing `{hint}`?)" if hint else "")))
    return problems


def sklearn_home(name: str) -> str | None:
    """The scikit-learn module that defines `name`, for the common names gome knows ("sklearn.ensemble")."""
    return next((f"sklearn.{module}" for module, names in _SKLEARN.items() if name in names), None)


def import_for(name: str) -> str | None:
    """The import that defines `name` when it is clear: a usual alias (`np`), a common scikit-learn
    name, or a standard-library module."""
    return _KNOWN_IMPORTS.get(name) or (f"import {name}" if name in sys.stdlib_module_names else None)


# Modules -----------------------------------------------------------------------------

_probe_lock = threading.Lock()
_probed: dict[str, dict[str, bool]] = {}  # interpreter -> module name -> whether it can be imported


def modules_found(python: str, names: Iterable[str]) -> dict[str, bool] | None:
    """Whether each top-level module can be imported by `python`, asked once per interpreter and
    name; None when the interpreter cannot be asked (then nothing is reported)."""
    with _probe_lock:
        known = _probed.setdefault(python, {})
        missing = sorted({n for n in names if n not in known})
        if missing:
            answer = _probe(python, missing)
            if answer is None:
                return None
            known.update(answer)
        return {n: known.get(n, True) for n in names}


def _probe(python: str, names: list[str]) -> dict[str, bool] | None:
    # From an empty folder with the solutions' scrubbed environment, as a solution would import.
    with tempfile.TemporaryDirectory(prefix="gome-probe-") as folder:
        try:
            done = subprocess.run([python, "-c", _PROBE, *names], cwd=folder, env=scrubbed_env(),
                                  capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False)
            answer = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as exc:
            log.warning("cannot ask %s which modules it has: %s", python, exc)
            return None
    if not isinstance(answer, dict):
        log.warning("cannot ask %s which modules it has: %s", python, done.stderr.strip()[-300:])
        return None
    return {str(k): bool(v) for k, v in answer.items()}


def python_compiles(python: str, code: str) -> bool:
    """Whether `python` itself compiles the code (so a syntax error of gome's parser is not one)."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        return False
    try:
        done = subprocess.run([python, "-c", _SYNTAX], input=code, env=scrubbed_env(), capture_output=True,
                              text=True, timeout=PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _installs_packages(tree: ast.Module) -> bool:
    """Whether the code runs pip itself (then its imports may be there by the time they run)."""
    texts = [t for n in ast.walk(tree) if (t := _text(n)) is not None]
    return any(re.search(r"\bpip3?\b", t) for t in texts) and any(re.search(r"\binstall\b", t) for t in texts)


def _guarded(tree: ast.Module) -> set[int]:
    """The ids of import statements inside a `try` whose handlers catch a failed import."""
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try | ast.TryStar) and any(_catches_import(h) for h in node.handlers):
            guarded.update(id(n) for stmt in node.body for n in ast.walk(stmt)
                           if isinstance(n, ast.Import | ast.ImportFrom))
    return guarded


def _catches_import(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(n, ast.Name | ast.Attribute) and (n.id if isinstance(n, ast.Name) else n.attr)
               in _IMPORT_GUARDS for n in names)


def _imports(tree: ast.Module) -> Iterator[tuple[str, int]]:
    guarded = _guarded(tree)
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            yield from ((alias.name.split(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0], node.lineno


def missing_modules(tree: ast.Module, python: str) -> list[StaticProblem]:
    """Imports of top-level modules that `python` cannot import (the standard library is taken as there)."""
    imports = [(name, line) for name, line in _imports(tree)
               if name not in sys.stdlib_module_names and name != "__future__"]
    if not imports:
        return []
    found = modules_found(python, [name for name, _ in imports])
    if found is None:
        return []
    problems, seen = [], set()
    for name, line in imports:
        if not found[name] and name not in seen:
            seen.add(name)
            problems.append(StaticProblem(
                "module", line, f"module {name!r} is not installed in the solutions' Python ({python}); "
                "use an installed package (see the machine's description) instead of installing one"))
    return problems


# Columns -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """A DataFrame the code reads: the columns it can have (None: those of any input table), and
    the tables they come from."""

    columns: frozenset[str] | None
    tables: frozenset[str] = frozenset()


def _union(a: Frame, b: Frame) -> Frame:
    columns = None if a.columns is None or b.columns is None else a.columns | b.columns
    return Frame(columns, a.tables | b.tables)


def _text(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _literals(node: ast.AST | None) -> list[ast.Constant]:
    """The string constants of a column argument: one string, or a list or tuple of them."""
    if _text(node) is not None:
        assert isinstance(node, ast.Constant)
        return [node]
    if isinstance(node, ast.List | ast.Tuple):
        return [e for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


class ColumnCheck:
    """Finds column names used as literals on frames read from the input tables that none of them has."""

    def __init__(self, tree: ast.Module, tables: Mapping[str, Sequence[str]]) -> None:
        self.tree = tree
        self.tables = {path.replace(os.sep, "/"): frozenset(columns) for path, columns in tables.items()}
        self.all_columns = frozenset(c for columns in self.tables.values() for c in columns) | _PANDAS_NAMES
        self.bindings = self._bindings()
        self.frames = self._frames()

    # Which names hold frames ----------------------------------------------------------
    def _bindings(self) -> dict[str, list[ast.expr | None]]:
        """Every value bound to each name anywhere in the code (None: a binding that is not a plain
        assignment: a loop variable, a parameter, an import, tuple unpacking)."""
        bound: dict[str, list[ast.expr | None]] = {}

        def add(target: ast.AST, value: ast.expr | None) -> None:
            if isinstance(target, ast.Name):
                bound.setdefault(target.id, []).append(value)
            elif isinstance(target, ast.Tuple | ast.List):
                for element in target.elts:
                    add(element, None)
            elif isinstance(target, ast.Starred):
                add(target.value, None)

        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    add(target, node.value)
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                add(node.target, node.value)
            elif isinstance(node, ast.NamedExpr):
                add(node.target, node.value)
            elif isinstance(node, ast.AugAssign | ast.For | ast.AsyncFor | ast.comprehension):
                add(node.target, None)
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                add(node.optional_vars, None)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                bound.setdefault(node.name, []).append(None)
            elif isinstance(node, ast.arg):
                bound.setdefault(node.arg, []).append(None)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                for alias in node.names:
                    bound.setdefault(alias.asname or alias.name.split(".")[0], []).append(None)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                bound.setdefault(node.name, []).append(None)
            elif isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
                bound.setdefault(node.name, []).append(None)
        return bound

    def _frames(self) -> dict[str, Frame]:
        """The names that hold a frame wherever they are bound: assume every candidate does, drop
        those with a binding that is not a frame and widen the columns until nothing changes (`frame_of`
        reads the current guess from `self.frames`)."""
        frames = {name: Frame(frozenset()) for name, values in self.bindings.items()
                  if all(v is not None for v in values)}
        for _ in range(len(frames) + 2):
            self.frames = frames
            updated: dict[str, Frame] = {}
            for name in frames:
                result: Frame | None = Frame(frozenset())
                for value in self.bindings[name]:
                    frame = self.frame_of(value)
                    result = None if frame is None or result is None else _union(result, frame)
                if result is not None:
                    updated[name] = result
            if updated == frames:
                break
            frames = updated
        # A name bound only through itself never met a table (it is undefined; pyflakes says so).
        return {name: frame for name, frame in frames.items() if frame.columns != frozenset()}

    def frame_of(self, node: ast.AST | None) -> Frame | None:
        """The frame an expression evaluates to, when it surely is one read from the input tables."""
        if isinstance(node, ast.Name):
            return self.frames.get(node.id)
        if isinstance(node, ast.Call):
            return self._call_frame(node)
        if isinstance(node, ast.Subscript):
            if isinstance(node.value, ast.Attribute) and node.value.attr in ("loc", "iloc"):
                base = self.frame_of(node.value.value)
                index = node.slice
                if isinstance(index, ast.Tuple) and len(index.elts) == 2:
                    return base if isinstance(index.elts[1], ast.List | ast.Slice) else None
                return base if isinstance(index, ast.Slice | ast.Compare | ast.BoolOp | ast.UnaryOp | ast.BinOp) \
                    else None
            base = self.frame_of(node.value)
            if base is not None and isinstance(node.slice, ast.List | ast.Compare | ast.BoolOp | ast.UnaryOp
                                                          | ast.BinOp):
                return base  # columns or rows of the frame; a single column is a series
        return None

    def _call_frame(self, call: ast.Call) -> Frame | None:
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if name in _READERS:
            return self.read_frame(call)
        if name == "concat" and call.args and isinstance(call.args[0], ast.List | ast.Tuple):
            return self._all_frames([self.frame_of(e) for e in call.args[0].elts])
        if not isinstance(func, ast.Attribute):
            return None
        receiver = self.frame_of(func.value)
        if name in _JOINS:
            # Both sides must be input frames: a frame the code built has columns of its own.
            other = call.args[0] if call.args else _keyword(call, "right")
            sides = [receiver, self.frame_of(other)] if receiver is not None else \
                [self.frame_of(a) for a in call.args[:2]]
            return self._all_frames(sides) if len(sides) == 2 else None
        if receiver is None:
            return None
        if name == "rename":
            # Renamed by a literal mapping: its new names are strings of the code, known below.
            return receiver if isinstance(_keyword(call, "columns"), ast.Dict) else None
        return receiver if name in _FRAME_METHODS else None

    @staticmethod
    def _all_frames(parts: list[Frame | None]) -> Frame | None:
        """The frame of a concatenation or join: of input frames only, else no frame known."""
        if not parts or any(p is None for p in parts):
            return None
        result = parts[0]
        for part in parts[1:]:
            assert result is not None and part is not None
            result = _union(result, part)
        return result

    def read_frame(self, call: ast.Call) -> Frame | None:
        """The frame of a `read_csv`: the columns of the table its path names, of any table when
        the path names none (an environment variable), nothing known when it names another file."""
        path = call.args[0] if call.args else _keyword(call, "filepath_or_buffer")
        if path is None or not self._path_like(path):
            return None
        names = [s for s in self._strings(path, depth=3) if re.search(r"\.[A-Za-z]\w*$", s)]
        if not names:
            return Frame(None)
        matched: set[str] = set()
        for name in names:
            tail = name.replace("\\", "/").lstrip("./")
            hits = [p for p in self.tables if p == tail or p.endswith("/" + tail) or tail.endswith("/" + p)
                    or p.rsplit("/", 1)[-1] == tail.rsplit("/", 1)[-1]]
            if not hits:
                return None
            matched.update(hits)
        return Frame(frozenset(c for p in matched for c in self.tables[p]), frozenset(matched))

    @staticmethod
    def _path_like(node: ast.expr) -> bool:
        """Whether an expression can only be a path (not, say, a StringIO of text the code made)."""
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call):
                func = sub.func
                name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
                if name not in _PATH_CALLS:
                    return False
        return True

    def _strings(self, node: ast.AST | None, depth: int) -> list[str]:
        """The string constants an expression is built from, following plain names a few levels."""
        if node is None or depth < 0:
            return []
        found = []
        for sub in ast.walk(node):
            text = _text(sub)
            if text is not None:
                found.append(text)
            elif isinstance(sub, ast.Name):
                for value in self.bindings.get(sub.id, []):
                    found += self._strings(value, depth - 1)
        return found

    # Which literals are column lookups -----------------------------------------------------
    def lookups(self) -> Iterator[tuple[ast.Constant, Frame]]:
        """Each string literal used to look a column up on a frame, with that frame."""
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Subscript) and not isinstance(node.ctx, ast.Store):
                yield from self._subscript_lookups(node)
            elif isinstance(node, ast.Call):
                yield from self._call_lookups(node)

    def _subscript_lookups(self, node: ast.Subscript) -> Iterator[tuple[ast.Constant, Frame]]:
        value = node.value
        if isinstance(value, ast.Attribute) and value.attr in _LOCATORS:
            frame = self.frame_of(value.value)
            if frame is not None and isinstance(node.slice, ast.Tuple) and len(node.slice.elts) == 2:
                yield from ((c, frame) for c in _literals(node.slice.elts[1]))
            return
        frame = self.frame_of(value)
        if frame is not None:
            yield from ((c, frame) for c in _literals(node.slice))

    def _call_lookups(self, call: ast.Call) -> Iterator[tuple[ast.Constant, Frame]]:
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if name in _READERS:
            frame = self.read_frame(call)
            if frame is not None:
                yield from ((c, frame) for c in _literals(_keyword(call, "usecols")))
            return
        if not isinstance(func, ast.Attribute):
            return
        frame = self.frame_of(func.value)
        if frame is None:
            return
        first = call.args[0] if call.args else None
        if name == "drop" and _text(_keyword(call, "errors")) != "ignore":
            axis = _keyword(call, "axis")
            by_columns = isinstance(axis, ast.Constant) and axis.value in (1, "columns")
            columns = _keyword(call, "columns") or ((first or _keyword(call, "labels")) if by_columns else None)
            yield from ((c, frame) for c in _literals(columns))
        elif name in ("groupby", "sort_values"):
            yield from ((c, frame) for c in _literals(first or _keyword(call, "by")))
        elif name == "set_index":
            yield from ((c, frame) for c in _literals(first or _keyword(call, "keys")))
        elif name == "dropna":
            yield from ((c, frame) for c in _literals(_keyword(call, "subset")))

    # What the code may have named itself -----------------------------------------------------
    def _own_names(self, lookups: set[int]) -> tuple[set[str], set[str]]:
        """Strings of the code outside column lookups (keyword names too), and the pieces of names it
        builds (f-string parts, `+` operands, prefixes and suffixes)."""
        own: set[str] = set()
        pieces: set[str] = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.keyword) and node.arg:
                own.add(node.arg)
            text = _text(node)
            if text is not None and id(node) not in lookups:
                own.add(text)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in ("eval", "query"):
                # `df.eval("c = a + b")` makes the column c.
                own.update(w for a in node.args if (t := _text(a)) is not None for w in re.findall(r"\w+", t))
            if isinstance(node, ast.JoinedStr):
                pieces.update(t for v in node.values if (t := _text(v)) is not None)
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
                pieces.update(t for side in (node.left, node.right) if (t := _text(side)) is not None)
            elif isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Attribute) and func.attr in ("add_prefix", "add_suffix", "format", "join"):
                    pieces.update(t for a in [func.value, *node.args] if (t := _text(a)) is not None)
                for key in ("prefix", "suffix", "suffixes", "prefix_sep", "lsuffix", "rsuffix"):
                    pieces.update(c.value for c in _literals(_keyword(node, key)))
        return own, {part for piece in pieces for part in _PLACEHOLDER.split(piece)}

    def _renames_opaquely(self) -> bool:
        """Whether the code renames columns in a way it does not spell out (then nothing is checked)."""
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == "columns"
                                                    for t in node.targets):
                if not (isinstance(node.value, ast.List | ast.Tuple)
                        and all(_text(e) is not None for e in node.value.elts)):
                    return True
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                attr = node.func.attr
                if attr == "set_axis":
                    return True
                if attr == "rename":
                    mappers = [_keyword(node, "columns"), _keyword(node, "mapper"), *node.args]
                    if any(m is not None and not isinstance(m, ast.Dict | ast.Constant) for m in mappers):
                        return True
        return False

    def problems(self) -> list[StaticProblem]:
        found = list(self.lookups())
        if not found or self._renames_opaquely():
            return []
        own, pieces = self._own_names({id(c) for c, _ in found})
        pieces = {p for p in pieces if len(p) >= 2}
        problems, seen = [], set()
        for constant, frame in found:
            name = constant.value
            columns = self.all_columns if frame.columns is None else frame.columns | _PANDAS_NAMES
            if name in columns or name in own or (name, constant.lineno) in seen:
                continue
            if any(p in name for p in pieces) or self._extends(name, columns | own):
                continue  # a name the code may have made from a column and a suffix
            seen.add((name, constant.lineno))
            problems.append(StaticProblem("column", constant.lineno, self._describe(name, frame)))
        return problems

    @staticmethod
    def _extends(name: str, known: Iterable[str]) -> bool:
        return any(name.startswith(k + s) or name.endswith(s + k) for k in known if k for s in _SEPARATORS)

    def _describe(self, name: str, frame: Frame) -> str:
        if frame.columns is None:
            where, pool = "any input table", self.all_columns - _PANDAS_NAMES
        else:
            where, pool = " or ".join(sorted(frame.tables)[:3]), frame.columns
        close = difflib.get_close_matches(name, sorted(pool), n=1, cutoff=0.6)
        close = close or [c for c in sorted(pool) if c.lower() == name.lower()][:1]
        return f"column {name!r} is not a column of {where}" + (f" (did you mean {close[0]!r}?)" if close else "")


def tables_named(code: str, tables: Mapping[str, Sequence[str]]) -> list[str]:
    """The tables (paths of `tables`) whose file names occur as string literals in `code`, in the order of `tables`."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    names = {node.value.replace("\\", "/").rsplit("/", 1)[-1] for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.search(r"\.[A-Za-z]\w*$", node.value)}
    return [path for path in tables if path.replace(os.sep, "/").rsplit("/", 1)[-1] in names]

