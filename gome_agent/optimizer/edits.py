"""Turning a model's code reply into a new main.py.

An update is a minimal change to the current best code, written as
SEARCH/REPLACE blocks; a draft (or a change that touches most of the file) is a
whole file in a ```python block. A block matches whole lines (see `_locate`); a
block that does not, or a reply with an incomplete block, is reported precisely
so the model can correct it, and nothing of it is applied.
"""

from __future__ import annotations

import ast
import builtins
import difflib
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

from gome_agent.errors import GomeError


class EditError(GomeError):
    """The reply holds no usable code, or an edit does not apply."""


_BLOCK = re.compile(
    r"^<{5,9} ?SEARCH[^\n]*\n(?P<search>.*?)^={5,9}[ \t]*\n(?P<replace>.*?)^>{5,9} ?REPLACE[^\n]*$",
    re.DOTALL | re.MULTILINE,
)
_OPENING = re.compile(r"^<{5,9} ?SEARCH", re.MULTILINE)
_FENCE_OPENING = r"```(?:python|py)?[ \t]*\n"
_FENCE = re.compile(_FENCE_OPENING + r"(?P<code>.*?)^```", re.DOTALL | re.MULTILINE)
_REPLACE_WITH = re.compile(r"\breplace\s+`(?P<old>[^`\n]+)`\s+with\s+`(?P<new>[^`\n]*)`", re.IGNORECASE)
# Also as a comment: the one-function prompts ask for `# Change: ...` as their block's first line.
_SUMMARY = re.compile(r"^\s*(?:#\s*)?(?:\*\*)?(Change|Approach)(?:\*\*)?\s*:\s*(?P<text>.+)$",
                      re.MULTILINE | re.IGNORECASE)


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


def summary_line(text: str) -> str:
    """The reply's `Approach:` or `Change:` line, or such a comment ("" when it has none)."""
    found = _SUMMARY.search(text)
    return found.group("text").strip() if found else ""


def parse_reply(text: str) -> CodeReply:
    summary = summary_line(text)
    edits = [Edit(m.group("search"), m.group("replace")) for m in _BLOCK.finditer(text)]
    opened = len(_OPENING.findall(text))
    if opened > len(edits):
        # A block without its divider or end (a reply cut short): applying the others would half-apply the change.
        raise EditError(
            f"{opened - len(edits)} of the reply's {opened} edit blocks are incomplete (a SEARCH without its "
            "======= or >>>>>>> REPLACE line); nothing was applied; reply with every block complete"
        )
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


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _whole_line_hits(code_lines: list[str], wanted: list[str], norm: Callable[[str], str]) -> list[int]:
    want = [norm(w) for w in wanted]
    have = [norm(ln.rstrip("\r\n")) for ln in code_lines]
    n = len(want)
    return [i for i in range(len(have) - n + 1) if have[i : i + n] == want]


def _reindent(replacement: str, search_first: str, code_first: str) -> str:
    """The replacement with the search's indentation swapped for the matched code's."""
    old = search_first[: len(search_first) - len(search_first.lstrip())]
    new = code_first[: len(code_first) - len(code_first.lstrip())]
    out = []
    for line in _lines(replacement):
        out.append(new + line[len(old):] if line.startswith(old) and line.strip() else line)
    return "".join(out)


def _locate(code: str, edit: Edit, number: int) -> tuple[int, int, str]:
    """Where the SEARCH part of `edit` is in `code`, and the text that replaces it.

    A SEARCH part matches whole lines: exactly, else ignoring trailing whitespace, else ignoring
    all indentation (the replacement is then re-indented to the code's). Only a one-line SEARCH
    may match a piece of a line, once in the code and between word boundaries (so `max = 100`
    never edits `n_max = 100`).
    """
    code_lines = _lines(code)
    wanted = edit.search.splitlines()
    while wanted and not wanted[-1].strip():
        wanted.pop()
    replacement = edit.replace
    for norm in (lambda x: x, str.rstrip, str.strip):
        hits = _whole_line_hits(code_lines, wanted, norm)
        if len(hits) > 1:
            raise EditError(
                f"edit block {number}: its SEARCH part occurs {len(hits)} times in main.py; "
                "include more surrounding lines so it is unique"
            )
        if hits:
            first = hits[0]
            start = sum(len(ln) for ln in code_lines[:first])
            end = start + sum(len(ln) for ln in code_lines[first : first + len(wanted)])
            if norm is str.strip:
                replacement = _reindent(replacement, wanted[0], code_lines[first])
            if code[start:end].endswith("\n") and replacement and not replacement.endswith("\n"):
                replacement += "\n"
            return start, end, replacement
    if len(wanted) == 1 and wanted[0].strip():
        piece = wanted[0].strip()
        spots = [m.start() for m in re.finditer(rf"(?<!\w){re.escape(piece)}(?!\w)", code)]
        if len(spots) == 1:
            return spots[0], spots[0] + len(piece), replacement.strip("\n").strip()
        if len(spots) > 1:
            raise EditError(
                f"edit block {number}: its SEARCH part occurs {len(spots)} times in main.py; "
                "copy whole lines, with enough of them to be unique"
            )
    first_line = edit.search.strip().splitlines()[0][:120]
    raise EditError(
        f"edit block {number}: its SEARCH part does not match main.py exactly, as whole lines "
        f"(it starts with {first_line!r}); copy the lines exactly as they are in the current code"
    )


def apply_edits(code: str, edits: list[Edit]) -> str:
    """Apply the blocks in order; raises EditError naming the first block that does not apply."""
    for number, edit in enumerate(edits, 1):
        if not edit.search.strip():
            raise EditError(f"edit block {number} has an empty SEARCH part; copy the lines to replace")
        start, end, replacement = _locate(code, edit, number)
        code = code[:start] + replacement + code[end:]
    return code


def _definitions(tree: ast.Module) -> bool:
    """Whether a module only defines things (imports, functions, classes, constants): it does nothing when run."""
    allowed = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign,
               ast.AnnAssign)
    docstring = (ast.Expr,)
    return all(isinstance(node, allowed) or (isinstance(node, docstring) and isinstance(node.value, ast.Constant))
               for node in tree.body)


def _segment(lines: list[str], node: ast.stmt) -> str:
    start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    return "".join(lines[start - 1 : node.end_lineno])


def splice(current: str, block: str) -> str | None:
    """`current` with the functions and classes that `block` defines replaced by `block`'s versions.

    A block that only defines things (a weak model's usual reply to "write these two functions")
    and redefines at least one function of `current` is spliced in: its functions replace the
    same-named ones, its other definitions go before the first replaced one, its imports go to the
    top. None when `block` is not such a reply (a whole program, or nothing in common).
    """
    try:
        tree, base = ast.parse(block), ast.parse(current)
    except SyntaxError:
        return None
    if not _definitions(tree):
        return None
    defined = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    targets = {node.name: node for node in base.body if isinstance(node, defined)}
    replaced = [node for node in tree.body if isinstance(node, defined) and node.name in targets]
    if not replaced:
        return None
    block_lines, lines = _lines(block), _lines(current)
    present = {ast.unparse(node) for node in base.body if isinstance(node, ast.Import | ast.ImportFrom)}
    imports = [_segment(block_lines, n) for n in tree.body
               if isinstance(n, ast.Import | ast.ImportFrom) and ast.unparse(n) not in present]
    extra = [_segment(block_lines, n) for n in tree.body
             if not isinstance(n, ast.Import | ast.ImportFrom | ast.Expr) and n not in replaced]
    new_text = {node.name: _segment(block_lines, node) for node in replaced}
    first = min(targets[name].lineno for name in new_text)
    # Bottom-up, so that earlier line numbers stay valid.
    for name in sorted(new_text, key=lambda n: targets[n].lineno, reverse=True):
        node = targets[name]
        start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        text = new_text[name]
        if node.lineno == first and extra:
            text = "\n".join(e.rstrip("\n") + "\n" for e in extra) + "\n\n" + text
        lines[start - 1 : node.end_lineno] = _lines(text if text.endswith("\n") else text + "\n")
    if imports:
        anchor = max((n.end_lineno or n.lineno for n in base.body if isinstance(n, ast.Import | ast.ImportFrom)),
                     default=0)
        lines[anchor:anchor] = [i if i.endswith("\n") else i + "\n" for i in imports]
    return "".join(lines)


def function_head(code: str, name: str) -> str | None:
    """The signature and docstring of the top-level function `name` of `code` (what a model completes)."""
    for node in ast.parse(code).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            first = node.body[0]
            has_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            end = first.end_lineno if has_doc else node.lineno
            return "".join(_lines(code)[node.lineno - 1 : end]).rstrip("\n")
    return None


def _function_names(code: str) -> list[str]:
    try:
        return [n.name for n in ast.parse(code).body if isinstance(n, ast.FunctionDef)]
    except SyntaxError:
        return []


def function_lines(code: str, name: str) -> tuple[int, int] | None:
    """The first and last line (1-based, decorators included) of the top-level function `name`, or None."""
    for node in ast.parse(code).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return min([node.lineno, *(d.lineno for d in node.decorator_list)]), node.end_lineno or node.lineno
    return None


def function_source(code: str, name: str) -> str | None:
    """The whole source of the top-level function `name` of `code` (decorators included), or None."""
    for node in ast.parse(code).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return _segment(_lines(code), node).rstrip("\n")
    return None


def _empty(body: list[ast.stmt]) -> bool:
    """A body that does nothing: a docstring, `pass`, `...` or a bare `raise NotImplementedError`."""
    for node in body:
        if isinstance(node, ast.Pass) or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            continue
        if isinstance(node, ast.Raise) and "NotImplementedError" in ast.unparse(node.exc or node):
            continue
        return False
    return True


def unwritten(code: str, names: tuple[str, ...]) -> list[str]:
    """Which of the top-level functions `names` of `code` have no body yet (see `_empty`)."""
    return [node.name for node in ast.parse(code).body
            if isinstance(node, ast.FunctionDef) and node.name in names and _empty(node.body)]


_TOP_LEVEL = re.compile(r"^(?:def |class |async def |@)", re.MULTILINE)


def salvage_cut(reply: str, current: str) -> str | None:
    """From a reply cut off at the output limit, `current` with the functions the reply finished spliced
    in (see `splice`); None when it finished none of `current`'s functions.

    Only whole top-level definitions before the cut are taken, never a piece of one, so nothing is
    half-applied: a small model often copies the whole scaffold around the one function it writes and
    runs out of tokens after it."""
    opening = re.search(_FENCE_OPENING, reply)  # a cut reply has no closing fence
    if opening is None:
        return None
    code = reply[opening.end():]
    # The longest prefix that parses and ends where a top-level definition starts.
    for cut in sorted((m.start() for m in _TOP_LEVEL.finditer(code)), reverse=True):
        prefix = code[:cut]
        try:
            ast.parse(prefix)
        except SyntaxError:
            continue
        return splice(current, prefix)
    return None


def as_function(block: str, current: str, name: str) -> str | None:
    """`block` as the whole function `name` under `current`'s def line for it, when `block` is that
    function's body without its def line (statements with a top-level `return`); None otherwise.

    Asked for "the whole function fit_predict", the 0.5B model often replies with its body alone: as a
    whole main.py that is a `return` outside any function, which costs a static check and a debug round.
    """
    block = textwrap.dedent(block)  # a body copied with its indentation
    try:
        tree, base = ast.parse(block), ast.parse(current)
    except SyntaxError:
        return None
    if not any(isinstance(n, ast.Return) for n in tree.body) or \
            any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name for n in tree.body):
        return None
    node = next((n for n in base.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    if node is None or node.body[0].lineno == node.lineno:  # a one-line def has no def line of its own
        return None
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    head = "".join(_lines(current)[start - 1 : node.body[0].lineno - 1])  # decorators and the def line(s)
    return head + textwrap.indent(block.rstrip("\n") + "\n", "    ")


def function_reply(reply: str, current: str, name: str) -> tuple[str, str]:
    """`current` with its function `name` replaced by the one a reply asked for that function alone holds,
    and the reply's summary line; raises EditError when the reply holds no such function.

    Taken from the reply's code: its imports, function and class definitions (`name` among them, or a
    body of `name` without its def line, see `as_function`); anything else, such as the script around
    them that loads the files, is dropped, since `current` does that. A small model asked for one
    function often writes a whole script: as main.py it ignored the scaffold's folds and outputs.
    """
    blocks = [m.group("code") for m in _FENCE.finditer(reply)]
    if not blocks and (start := re.search(rf"^(?:(?:import|from) \S|def {name}\()", reply, re.MULTILINE)):
        # The function without its opening fence (the 0.5B model sometimes drops it): up to a fence line.
        blocks = [re.split(r"^```", reply[start.start():], maxsplit=1, flags=re.MULTILINE)[0]]
    if not blocks:
        raise EditError(f"the reply holds no ```python block with the function {name}")
    code = "\n\n".join(blocks)
    code = as_function(code, current, name) or code
    try:
        tree = ast.parse(textwrap.dedent(code))
    except SyntaxError as exc:
        raise EditError(f"the reply's code is not valid Python: line {exc.lineno}: {exc.msg}") from exc
    kept = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    if not any(isinstance(n, ast.FunctionDef) and n.name == name for n in tree.body):
        raise EditError(f"the reply's code defines no function {name}: reply with the whole function, its def line "
                        f"`{def_line(current, name)}`, its body and the imports it needs, not a script that loads "
                        "the files (main.py already does that)")
    lines = _lines(textwrap.dedent(code))
    spliced = splice(current, "\n".join(_segment(lines, n) for n in tree.body if isinstance(n, kept)))
    if spliced is None:  # unreachable while `current` defines `name`
        raise EditError(f"main.py has no function {name} to replace")
    return spliced, summary_line(reply)


@dataclass(frozen=True)
class ScriptModel:
    """What `script_model` made of a script: the new main.py and the estimator it took from the script."""

    code: str
    estimator: str


def _fitted_estimator(nodes: list[ast.AST]) -> tuple[str, ast.Call] | None:
    """The last `name = Estimator(...)` among `nodes` (at any depth) whose `name.fit(...)` is called there
    too (or `name = Estimator(...).fit(...)`): the variable and the estimator's call."""
    walked = [n for node in nodes for n in ast.walk(node)]
    fitted = {n.func.value.id for n in walked if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
              and n.func.attr == "fit" and isinstance(n.func.value, ast.Name)}
    found = None
    for node in walked:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Call)):
            continue
        call, chained = node.value, False
        if isinstance(call.func, ast.Attribute) and call.func.attr == "fit" and isinstance(call.func.value, ast.Call):
            call, chained = call.func.value, True
        if chained or node.targets[0].id in fitted:
            found = (node.targets[0].id, call)
    return found


def _bound(node: ast.Import | ast.ImportFrom) -> dict[str, ast.alias]:
    return {(a.asname or a.name.split(".")[0]): a for a in node.names}


def script_model(reply: str, current: str, name: str, prediction: str | None) -> ScriptModel | None:
    """`current` with the estimator of a script taken into its function `name`, when a reply asked for
    that function holds a script instead: code that builds a model (`model = Estimator(...)`) and fits
    it. None when the reply holds no such model, or the estimator's arguments use names the script
    itself computes.

    Where `name` already fits a model, only that model's estimator is replaced (the change the script
    makes to the model); where `name` has no body yet (a draft), its body becomes the estimator, its fit
    on X and y, and `return <prediction>`. Of the script's imports, only the names the estimator uses
    come along; the rest of it (loading the files, splitting, scoring) is dropped, since main.py does
    that. Asked for fit_predict, the 0.5B model wrote such a script in 2 of 5 draft replies of one run of
    the real-LLM tier, and asked again, copied it back unchanged (8 of 9 re-asks about a missing function).
    """
    blocks = [m.group("code") for m in _FENCE.finditer(reply)]
    try:
        tree, base = ast.parse(textwrap.dedent("\n\n".join(blocks))), ast.parse(current)
    except SyntaxError:
        return None
    model = _fitted_estimator(tree.body) if blocks else None
    target = next((n for n in base.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    if model is None or target is None:
        return None
    call = model[1]
    estimator = ast.unparse(call)
    imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    known = {bound for n in [*imports, *(n for n in base.body if isinstance(n, ast.Import | ast.ImportFrom))]
             for bound in _bound(n)}
    used = {n.id for n in ast.walk(call) if isinstance(n, ast.Name)}
    root = call.func
    while isinstance(root, ast.Attribute):
        root = root.value
    # The estimator's own name may lack its import (the static check adds a known one); its arguments'
    # names must come from imports, the scaffold's SEED and THREADS, or the builtins.
    free = used - known - {"SEED", "THREADS", getattr(root, "id", "")} - set(dir(builtins))
    if free:
        return None
    needed = []
    for node in imports:
        aliases = [a for bound, a in _bound(node).items() if bound in used]
        if aliases:
            kept = ast.ImportFrom(module=node.module, names=aliases, level=node.level) \
                if isinstance(node, ast.ImportFrom) else ast.Import(names=aliases)
            needed.append(ast.unparse(kept))
    lines = _lines(current)
    if _empty(target.body):
        if prediction is None or [a.arg for a in target.args.args] != ["X", "y", "X_new"]:
            return None
        head = function_head(current, name) or def_line(current, name)
        function = f"{head}\n    model = {estimator}\n    model.fit(X, y)\n    return {prediction}\n"
    else:
        mine = _fitted_estimator(target.body)
        if mine is None:
            return None
        old = mine[1]
        if old.lineno == old.end_lineno:
            line = lines[old.lineno - 1]
            lines[old.lineno - 1] = line[:old.col_offset] + estimator + line[old.end_col_offset:]
        else:  # an estimator over several lines: its first line takes the new one, the rest go
            first, last = lines[old.lineno - 1], lines[old.end_lineno - 1]
            lines[old.lineno - 1 : old.end_lineno] = [first[:old.col_offset] + estimator + last[old.end_col_offset:]]
        function = function_source("".join(lines), name) or ""
    block = "\n".join(needed) + "\n\n" + function if needed else function
    spliced = splice("".join(lines), block)
    return None if spliced is None else ScriptModel(spliced, estimator)


def line_reply(reply: str, current: str, line: int) -> str:
    """`current` with its line `line` (1-based) replaced by the code of a reply asked for that line alone,
    indented as that line was; an empty block deletes the line; a reply without code that says "Replace
    `a` with `b`" has `a` replaced on that line. A reply that holds the whole function instead is not
    taken here (`function_reply` takes it). Raises EditError when the reply holds no code, or its code
    does not fit there.

    Asked again for a whole function it failed to fix, the 0.5B model copied it back unchanged (73 of
    the fixes of one benchmark sweep); asked for one line and its error, it rewrites the line.
    """
    lines = _lines(current)
    if not 1 <= line <= len(lines):
        raise EditError(f"main.py has no line {line}")
    old = lines[line - 1]
    blocks = [m.group("code") for m in _FENCE.finditer(reply)]
    swap = _REPLACE_WITH.search(reply) if not blocks else None
    if swap is not None:
        # The 0.5B model often says the fix in words ("Replace `a` with `b`") instead of a code block.
        if old.count(swap.group("old")) != 1:
            raise EditError(f"`{swap.group('old')}` is not (once) on line {line}; reply with the new line {line} "
                            "in one ```python block")
        blocks = [old.replace(swap.group("old"), swap.group("new"))]
    if not blocks:
        # An unfenced reply is code only if all of it parses (prose does not).
        text = "\n".join(ln for ln in reply.strip().splitlines() if not ln.strip().startswith("```"))
        try:
            ast.parse(textwrap.dedent(text))
        except SyntaxError:
            raise EditError(f"the reply holds no ```python block with the new line {line}") from None
        blocks = [text + "\n"]
    new = textwrap.dedent(blocks[0]).strip("\n")
    indent = old[: len(old) - len(old.lstrip())]
    replacement = textwrap.indent(new + "\n", indent) if new.strip() else ""
    code = "".join([*lines[: line - 1], replacement, *lines[line:]])
    try:
        ast.parse(code)
    except SyntaxError as exc:
        raise EditError(f"with the reply's code in place of line {line}, main.py is not valid Python: "
                        f"line {exc.lineno}: {exc.msg}") from exc
    return code


def def_line(code: str, name: str) -> str:
    """The first line of function `name`'s definition in `code` ("def fit_predict(X, y, X_new):")."""
    try:
        head = function_head(code, name)
    except SyntaxError:
        head = None
    return head.splitlines()[0] if head else f"def {name}(...):"


def new_code(reply: str, current: str | None) -> tuple[str, str]:
    """The new main.py and the reply's summary line; raises EditError when it cannot be built.

    A whole-file reply that only defines functions of `current` (see `splice`) is spliced into it."""
    parsed = parse_reply(reply)
    if parsed.full_code is not None:
        code = parsed.full_code
        if current is not None:
            blocks = [m.group("code") for m in _FENCE.finditer(reply)]
            code = splice(current, "\n\n".join(blocks)) or splice(current, code) or code
    elif current is None:
        raise EditError("there is no current main.py to edit; reply with the whole file in one ```python block")
    else:
        code = apply_edits(current, parsed.edits)
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise EditError(f"the resulting main.py is not valid Python: line {exc.lineno}: {exc.msg}") from exc
    if _definitions(tree):
        # A small model answered "write fit_predict" with imports and `fit_predict = lambda ...`: no `def` to
        # splice in, and as a whole main.py it ran, wrote nothing and cost a smoke run and a debug round.
        assigned = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        named = [n for n in (_function_names(current) if current else []) if n in assigned]
        hint = f" (`{named[0]} = ...` is no function definition: write `def {named[0]}(...):` with a body)" if named \
            else ""
        raise EditError("the reply's code only defines names and does nothing when run: it replaces no function of "
                        f"main.py by name{hint}, and it is no whole program either")
    return code, parsed.summary


@dataclass(frozen=True)
class DiffSize:
    """How much a change touched: lines added and removed, and where in the new code."""

    added: int
    removed: int
    first: int | None  # first and last changed line of the new code (1-based)
    last: int | None

    @property
    def region(self) -> str | None:
        if self.first is None:
            return None
        return f"line {self.first}" if self.first == self.last else f"lines {self.first}-{self.last}"

    def __str__(self) -> str:
        return describe_diff(self.added, self.removed, self.region)


def program_key(code: str) -> str | None:
    """What the code does, for telling one program from another: its syntax tree without docstrings, so
    that comments, layout and docstrings do not count; None when it does not parse."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.body \
                and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant) \
                and isinstance(node.body[0].value.value, str):
            node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree)


def describe_diff(added: int, removed: int, region: str | None) -> str:
    """A change's size as prompts and records say it: "+5/-2 lines at lines 12-18"."""
    return f"+{added}/-{removed} lines" + (f" at {region}" if region else "")


def diff_size(old: str, new: str) -> DiffSize:
    a, b = old.splitlines(), new.splitlines()
    added = removed = 0
    first = last = None
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        removed += i2 - i1
        added += j2 - j1
        lo, hi = j1 + 1, max(j1 + 1, j2)
        first = lo if first is None else min(first, lo)
        last = hi if last is None else max(last, hi)
    return DiffSize(added=added, removed=removed, first=first, last=last)
