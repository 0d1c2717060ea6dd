"""The `gome` command: the main job through the CLI, and every bad input it must name."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gome_agent.bench.competitions import build_breast_cancer
from gome_agent.cli import build_parser, main
from gome_agent.strategies.prompts import DEFAULT_DIR
from tests.scripted_agent import ALL_FEATURES, DRAFT, Script, analysis_reply, edit, full, gradient

ROOT = Path(__file__).resolve().parents[1]


def gome(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "gome_agent", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def competition(tmp_path_factory):
    return build_breast_cancer(tmp_path_factory.mktemp("comp"))


def test_help_lists_the_commands():
    result = gome("--help")
    assert result.returncode == 0
    for command in ("run", "prompts", "bench"):
        assert command in result.stdout
    run_help = gome("run", "--help").stdout
    for flag in ("--data-dir", "--workdir", "--time-limit", "--model", "--provider", "--base-url", "--prompts-dir", "--config"):
        assert flag in run_help


def _subparsers(parser: argparse.ArgumentParser, path: str = "gome"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _subparsers(child, f"{path} {name}")


def test_every_option_of_every_command_is_explained():
    missing = [
        f"{path} {action.dest}"
        for path, parser in _subparsers(build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert missing == []


def test_run_end_to_end_through_the_cli(tmp_path, competition, fake_llm):
    fake_llm.set_responder(
        Script()
        .add("task_analysis", analysis_reply())
        .add("draft", full(DRAFT))
        .add("gradient", gradient("Use all thirty features instead of one"))
        .add("update", edit('FEATURES = ["mean_texture"]', ALL_FEATURES))
    )
    out = tmp_path / "out"
    result = gome("run", "--data-dir", str(competition), "--workdir", str(out), "--time-limit", "10m",
                  "--provider", "openai-compatible", "--base-url", fake_llm.base_url_openai, "--model", "qwen",
                  "--max-steps", "2", "--traces", "1")
    assert result.returncode == 0, result.stderr
    best = float(result.stdout.split("best validation score: ")[1].split()[0])
    assert best > 0.9, result.stdout  # all thirty features, measured by gome on its held-out rows
    for name in ("config.json", "task.json", "events.jsonl", "llm_calls.jsonl", "submission/submission.csv",
                 "code/main.py", "memory/successes.jsonl"):
        assert (out / name).exists(), name
    assert "mean_texture" not in (out / "code" / "main.py").read_text()


def _run_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--data-dir", str(data), "--workdir", str(out), "--provider", "openai-compatible",
            "--base-url", "http://127.0.0.1:9/v1", *extra]


def test_missing_description_is_named(tmp_path, competition):
    data = tmp_path / "data"
    shutil.copytree(competition, data)
    (data / "description.md").unlink()
    result = gome(*_run_args(data, tmp_path / "out"))
    assert result.returncode == 2
    assert "description.md" in result.stderr


def test_missing_sample_submission_is_named(tmp_path, competition):
    data = tmp_path / "data"
    shutil.copytree(competition, data)
    (data / "sample_submission.csv").unlink()
    result = gome(*_run_args(data, tmp_path / "out"))
    assert result.returncode == 2
    assert "no sample submission" in result.stderr


def test_unreadable_sample_submission_is_named(tmp_path, competition):
    data = tmp_path / "data"
    shutil.copytree(competition, data)
    (data / "sample_submission.csv").write_bytes(b'id,target\n1,"unclosed\n2,0.5\n\x00\x00')
    result = gome(*_run_args(data, tmp_path / "out"))
    assert result.returncode == 2
    assert "sample_submission.csv" in result.stderr


def test_missing_api_key_is_named_and_no_run_folder_is_made(tmp_path, competition):
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "gome_agent", "run", "--data-dir", str(competition), "--workdir", str(out)],
        capture_output=True, text=True, env={**env, "PYTHONPATH": str(ROOT)}, cwd=ROOT, timeout=120,
    )
    assert result.returncode == 2
    assert "OPENAI_API_KEY" in result.stderr
    assert not out.exists()


def test_unknown_provider_is_rejected(tmp_path, competition):
    result = gome("run", "--data-dir", str(competition), "--workdir", str(tmp_path / "o"), "--provider", "gemini")
    assert result.returncode == 2 and "invalid choice: 'gemini'" in result.stderr
    cfg = tmp_path / "c.toml"
    cfg.write_text('[llm]\nprovider = "gemini"\n')
    result = gome("run", "--data-dir", str(competition), "--workdir", str(tmp_path / "o"), "--config", str(cfg))
    assert result.returncode == 2 and "llm.provider" in result.stderr


def test_template_with_unknown_variable_stops_before_the_run(tmp_path, competition):
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "gradient.j2").write_text("Diagnose {{ best.code }} with {{ secret_sauce }}")
    out = tmp_path / "out"
    result = gome(*_run_args(competition, out, "--prompts-dir", str(prompts)))
    assert result.returncode == 2
    assert "gradient.j2" in result.stderr and "secret_sauce" in result.stderr
    assert not out.exists()


def test_existing_run_folder_is_not_overwritten(tmp_path, competition):
    out = tmp_path / "out"
    out.mkdir()
    (out / "events.jsonl").write_text('{"type": "note", "message": "old run"}\n')
    result = gome(*_run_args(competition, out))
    assert result.returncode == 2 and "already holds a run" in result.stderr
    assert (out / "events.jsonl").read_text() == '{"type": "note", "message": "old run"}\n'


def test_prompts_check_and_export(tmp_path, capsys):
    assert main(["prompts", "check", str(DEFAULT_DIR)]) == 0
    assert "no problems" in capsys.readouterr().out
    folder = tmp_path / "mine"
    assert main(["prompts", "export", str(folder)]) == 0
    assert sorted(p.name for p in folder.glob("*.j2")) == sorted(p.name for p in DEFAULT_DIR.glob("*.j2"))
    (folder / "update.j2").write_text("{{ direction.hypothesis }} {{ bogus }}")
    capsys.readouterr()
    assert main(["prompts", "check", str(folder)]) == 1
    assert "update.j2: unknown variable(s) bogus" in capsys.readouterr().out
