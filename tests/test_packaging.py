"""The wheel ships the top-level prompts/ and the report template: an installed copy, away from
the checkout, renders every prompt template and exports them with `gome prompts export`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built and unpacked into a folder of its own (dependencies come from
    this interpreter's environment)."""
    out = tmp_path_factory.mktemp("wheel")
    # Built from a clean copy of what the wheel is made of: an in-tree build/ could hold stale files.
    source = out / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("gome_agent", "prompts"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = out.glob("gome_agent-*.whl")
    target = out / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # -I: ignore the checkout (no cwd on sys.path, no editable install's PYTHONPATH); the installed
    # copy comes first and the dependencies from this environment's site-packages.
    import pydantic

    deps = str(Path(pydantic.__file__).resolve().parents[1])
    code = f"import sys; sys.path[:0] = [{str(site)!r}, {deps!r}]; " + args[0]
    return subprocess.run([sys.executable, "-I", "-c", code, *args[1:]], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})


def test_the_wheel_holds_the_prompts_and_the_report_template(installed: Path) -> None:
    shipped = {p.name for p in (installed / "gome_agent" / "prompts").glob("*.j2")}
    assert shipped == {p.name for p in (ROOT / "prompts").glob("*.j2")}
    assert (installed / "gome_agent" / "views" / "templates" / "report.html.j2").is_file()


def test_an_installed_wheel_renders_every_template(installed: Path, tmp_path: Path) -> None:
    result = run_installed(
        installed, tmp_path,
        "import gome_agent, gome_agent.strategies.prompts as p; "
        "checked, problems = p.check_prompts(p.DEFAULT_DIR); "
        "print(gome_agent.__file__); print(p.DEFAULT_DIR); print(len(checked), len(problems))",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    module, folder, counts = result.stdout.split("\n")[:3]
    assert module.startswith(str(installed)) and folder.startswith(str(installed))
    assert counts == f"{len(list((ROOT / 'prompts').glob('*.j2')))} 0"  # every template checked, no problem


def test_an_installed_wheel_exports_the_prompts_from_any_folder(installed: Path, tmp_path: Path) -> None:
    result = run_installed(installed, tmp_path, "from gome_agent.cli import main; sys.exit(main(sys.argv[1:]))",
                           "prompts", "export", "mine")
    assert result.returncode == 0, result.stderr[-2000:]
    assert {p.name for p in (tmp_path / "mine").glob("*.j2")} == {p.name for p in (ROOT / "prompts").glob("*.j2")}
