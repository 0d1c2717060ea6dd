"""The package's architecture: layers whose imports point one way, no import cycles, and a
packaging list that names every subpackage."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gome_agent"

# Lowest first. A module may import from its own layer's package and from lower layers, never
# from a higher layer or from another package of its own layer. The same table is in README.md.
LAYERS: list[set[str]] = [
    {"errors", "prompts"},  # foundation; prompts/ holds only the templates
    {"secrets"},
    {"jsonl"},
    {"execution"},
    {"llm"},
    {"config", "task"},
    {"optimizer"},
    {"records"},
    {"strategies", "views"},
    {"run"},
    {"mlebench", "bench"},
    {"cli"},
    {"__main__"},
]
LAYER_OF = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every gome_agent module `path` imports, at module level or inside a function."""
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("gome_agent"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if not module.startswith("gome_agent"):
                continue
            for alias in node.names:
                # `from gome_agent.x import y` imports module x.y when y is a module.
                candidate = f"{module}.{alias.name}"
                found.add(candidate if module_path(candidate) is not None else module)
    found.discard(own)
    return found


def module_path(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def unit_of(module: str) -> str:
    """The layer unit of a module: its subpackage, or the top-level module itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def all_modules() -> dict[str, Path]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules.update({f"gome_agent.{module_name(p)}": p for p in (ROOT / "prompts").glob("*.py")})
    return modules


def test_every_package_and_module_has_a_layer() -> None:
    units = {unit_of(m) for m in all_modules() if m != "gome_agent"}
    assert units - set(LAYER_OF) == set(), "add new packages to LAYERS (and to README's layout table)"


def test_imports_point_down_the_layers() -> None:
    upward = []
    for module, path in all_modules().items():
        if module == "gome_agent":
            continue
        unit = unit_of(module)
        for target in imported_modules(path):
            if target == "gome_agent":
                continue  # the root package holds only the version
            other = unit_of(target)
            if other == unit:
                continue
            if LAYER_OF[other] >= LAYER_OF[unit]:
                upward.append(f"{module} imports {target} ({other} is not below {unit})")
    assert upward == []


def test_no_import_cycles() -> None:
    graph = {m: {t for t in imported_modules(p) if t in all_modules()} for m, p in all_modules().items()}
    # A package's __init__ that re-exports lazily names its own modules; that is not a cycle.
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                if not all(c.startswith(cycle[0]) or cycle[0].startswith(c) for c in cycle):
                    cycles.append(" -> ".join(cycle))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert cycles == []


def test_no_private_names_are_imported_across_modules() -> None:
    crossing = []
    for module, path in all_modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gome_agent"):
                crossing += [f"{module}: {a.name} from {node.module}" for a in node.names
                             if a.name.startswith("_") and a.name != "__version__"]
    assert crossing == []


def test_the_packaging_list_names_every_subpackage() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    present = {module_name(p) for p in PACKAGE.rglob("__init__.py")} | {"gome_agent.prompts"}
    assert listed == present


@pytest.mark.parametrize("unit", sorted(u for u in LAYER_OF if (PACKAGE / u).is_dir()))
def test_every_package_says_what_it_holds(unit: str) -> None:
    doc = ast.get_docstring(ast.parse((PACKAGE / unit / "__init__.py").read_text(encoding="utf-8")))
    assert doc, f"gome_agent/{unit}/__init__.py needs a docstring naming the concept it holds"


def test_every_strategy_is_registered_and_selectable() -> None:
    from typing import get_args

    from gome_agent.config import RunConfig
    from gome_agent.strategies import STRATEGIES, strategy_class
    from gome_agent.strategies.base import Strategy

    assert set(get_args(RunConfig.model_fields["strategy"].annotation)) == set(STRATEGIES)
    for name in STRATEGIES:
        cls = strategy_class(name)
        assert issubclass(cls, Strategy) and cls.name == name
    with pytest.raises(KeyError, match="unknown strategy 'mcts'"):
        strategy_class("mcts")


def test_static_checks_find_nothing() -> None:
    import io

    from pyflakes.api import checkRecursive
    from pyflakes.reporter import Reporter

    out = io.StringIO()
    count = checkRecursive([str(PACKAGE), str(ROOT / "tests"), str(ROOT / "prompts")], Reporter(out, out))
    assert count == 0, out.getvalue()


def test_readme_layout_table_names_every_package_and_module() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Layout"):]
    missing = [f"{unit}/" for unit in LAYER_OF if (PACKAGE / unit).is_dir() and f"`{unit}/`" not in table]
    for package in ("task", "execution", "optimizer", "records", "strategies", "views", "run"):
        missing += [f"{package}/{p.name}" for p in (PACKAGE / package).glob("*.py")
                    if p.name != "__init__.py" and f"`{p.name}`" not in table]
    missing += [f"{u}.py" for u in LAYER_OF if (PACKAGE / f"{u}.py").is_file() and f"`{u}.py`" not in table]
    assert missing == []
