"""`gome export-submissions` and its `--grade`, with MLE-bench's own `mlebench grade` reading the file."""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from gome_agent.cli import main
from gome_agent.errors import ConfigError
from gome_agent.mlebench.export import LFS_POINTER, check_leaderboards, submission_lines
from tests.mlebench.real import SPOOKY, package_with_leaderboard, prepare_private, require_mlebench, spooky_answers

ROOT = Path(__file__).resolve().parents[2]
IDS = ["id01", "id02", "id03", "id04"]
# 40 teams, best first (log loss: lower is better): gold <= 0.13, silver <= 0.17, bronze <= 0.25.
BOARD = [round(0.1 + 0.01 * i, 5) for i in range(40)]
POINTER = (LFS_POINTER + b"v1\noid sha256:cdb280161eca63c9ab1f937dcfb715b710fd222afe4c65f13a763d64e4c48318\n"
           b"size 63555\n")


def _run_group(tmp_path):
    group = tmp_path / "2026-11-27T10-00-00-GMT_run-group_gome"
    with_sub = group / "spooky-author-identification_6c1f9d8e-1111-4a2b-9c3d-0123456789ab"
    (with_sub / "submission").mkdir(parents=True)
    (with_sub / "submission" / "submission.csv").write_text("id,EAP,HPL,MWS\n")
    without = group / "leaf-classification_0f1e2d3c-2222-4b5a-8c7d-abcdefabcdef"
    (without / "logs").mkdir(parents=True)
    (group / "metadata.json").write_text(json.dumps({"run_group": group.name, "created_at": "x",
                                                     "runs": {with_sub.name: {"success": True}, without.name: {"success": True}}}))
    return group, with_sub, without


def test_export_writes_what_mlebench_grade_reads(tmp_path, capsys):
    group, with_sub, without = _run_group(tmp_path)
    out = group / "submission.jsonl"
    assert main(["export-submissions", str(group), "-o", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    by_id = {line["competition_id"]: line for line in lines}
    assert by_id["spooky-author-identification"]["submission_path"] == str(with_sub / "submission" / "submission.csv")
    assert by_id["leaf-classification"]["submission_path"] is None
    assert by_id["leaf-classification"]["logs_path"] == str(without / "logs")
    assert "1 with a submission" in capsys.readouterr().out


def test_export_without_metadata_uses_the_run_folders(tmp_path):
    group, _, _ = _run_group(tmp_path)
    (group / "metadata.json").unlink()
    (group / "not-a-run").mkdir()
    assert sorted(line["competition_id"] for line in submission_lines(group)) == ["leaf-classification",
                                                                                 "spooky-author-identification"]


def test_export_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        submission_lines(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no runs"):
        submission_lines(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metadata.json").write_text("{}")
    with pytest.raises(ConfigError, match="metadata"):
        submission_lines(tmp_path / "bad")


def test_grade_without_mlebench_is_a_clear_error(tmp_path, monkeypatch, capsys):
    group, _, _ = _run_group(tmp_path)
    monkeypatch.setitem(sys.modules, "mlebench", None)
    monkeypatch.setitem(sys.modules, "mlebench.registry", None)  # in case another test imported it
    assert main(["export-submissions", str(group), "-o", str(tmp_path / "s.jsonl"), "--grade"]) == 2
    err = capsys.readouterr().err
    assert "--grade needs the mlebench package" in err
    assert "git lfs pull" in err and "scripts/install_mlebench.sh" in err


# ---------------------------------------------------------------------------------------------
# Against MLE-bench's own grader.


def _spooky_group(tmp_path: Path) -> tuple[Path, Path]:
    """Three runs of spooky-author-identification: the answers as submission, no submission, a short one."""
    group = tmp_path / "runs" / "2026-01-01T00-00-00-GMT_run-group_gome"
    runs = {f"{SPOOKY}_{n}0000000-0000-4000-8000-00000000000{n}": n for n in (1, 2, 3)}
    answers = spooky_answers(IDS)
    for run_id, n in runs.items():
        (group / run_id / "logs").mkdir(parents=True)
        if n != 2:
            (group / run_id / "submission").mkdir()
            rows = answers if n == 1 else answers.iloc[:2]
            rows.astype({c: float for c in answers.columns[1:]}).to_csv(
                group / run_id / "submission" / "submission.csv", index=False)
    (group / "metadata.json").write_text(json.dumps({"run_group": group.name, "created_at": "x",
                                                     "runs": {r: {"success": True} for r in runs}}))
    data = tmp_path / "data"
    prepare_private(data, SPOOKY, answers)
    return group, data


def _mlebench_env(site: Path) -> dict[str, str]:
    """The copy of mlebench with a real leaderboard first on the path, then this checkout."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}


def _check_report(report_dir: Path, group: Path) -> None:
    [path] = report_dir.glob("*_grading_report.json")
    report = json.loads(path.read_text())
    assert report["total_runs"] == 3
    assert report["total_runs_with_submissions"] == 2
    assert report["total_valid_submissions"] == 1
    assert report["total_medals"] == report["total_gold_medals"] == 1
    perfect, missing, short = report["competition_reports"]
    assert perfect["score"] == 0.0 and perfect["gold_medal"] and perfect["is_lower_better"]
    assert perfect["gold_threshold"] == BOARD[3] and perfect["bronze_threshold"] == BOARD[15]
    assert perfect["submission_path"].startswith(str(group.resolve())) and perfect["submission_path"].endswith(
        "submission/submission.csv")
    assert missing["submission_path"] == "None" and not missing["submission_exists"]
    assert short["submission_exists"] and not short["valid_submission"] and short["score"] is None


def test_mlebench_grade_reads_the_exported_file(tmp_path):
    require_mlebench()
    group, data = _spooky_group(tmp_path)
    jsonl = group / "submission.jsonl"
    assert main(["export-submissions", str(group), "-o", str(jsonl)]) == 0
    site = package_with_leaderboard(tmp_path, SPOOKY, BOARD)
    grade = "import sys; from mlebench.cli import main; sys.exit(main())"
    result = subprocess.run([sys.executable, "-c", grade, "grade", "--submission", str(jsonl), "--output-dir",
                             str(group / "reports"), "--data-dir", str(data)],
                            cwd=tmp_path, env=_mlebench_env(site), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    _check_report(group / "reports", group)


def test_export_grade_runs_mlebench_grader(tmp_path):
    require_mlebench()
    group, data = _spooky_group(tmp_path)
    site = package_with_leaderboard(tmp_path, SPOOKY, BOARD)
    gome = "import sys; from gome_agent.cli import main; sys.exit(main())"
    result = subprocess.run([sys.executable, "-c", gome, "export-submissions", str(group), "-o",
                             str(group / "submission.jsonl"), "--grade", "--output-dir", str(group / "graded" / "x"),
                             "--data-dir", str(data)],
                            cwd=tmp_path, env=_mlebench_env(site), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    _check_report(group / "graded" / "x", group)


def test_grade_on_git_lfs_pointers_names_the_cause_and_the_fix(tmp_path):
    """Defect 9: an mlebench installed without Git LFS has pointer files for leaderboards."""
    require_mlebench()
    group, data = _spooky_group(tmp_path)
    site = package_with_leaderboard(tmp_path, SPOOKY, BOARD)
    (site / "mlebench" / "competitions" / SPOOKY / "leaderboard.csv").write_bytes(POINTER)
    gome = "import sys; from gome_agent.cli import main; sys.exit(main())"
    result = subprocess.run([sys.executable, "-c", gome, "export-submissions", str(group), "-o",
                             str(group / "submission.jsonl"), "--grade", "--data-dir", str(data)],
                            cwd=tmp_path, env=_mlebench_env(site), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert f"Git LFS pointer files instead of the leaderboards of {SPOOKY}" in result.stderr
    assert "git lfs install && git lfs pull" in result.stderr and "scripts/install_mlebench.sh" in result.stderr
    assert not list(group.glob("*_grading_report.json"))


def test_leaderboard_checks_name_each_problem(tmp_path):
    competitions = tmp_path / "competitions"
    for cid in ("real", "pointer", "absent"):
        (competitions / cid).mkdir(parents=True)
        (competitions / cid / "config.yaml").write_text(f"id: {cid}\n")
    pd.DataFrame({"score": [0.9, 0.5]}).to_csv(competitions / "real" / "leaderboard.csv", index=False)
    (competitions / "pointer" / "leaderboard.csv").write_bytes(POINTER)
    check_leaderboards(competitions, ["real"])
    with pytest.raises(ConfigError, match="pointer files instead of the leaderboards of pointer "):
        check_leaderboards(competitions, ["real", "pointer"])
    with pytest.raises(ConfigError, match="no leaderboard.csv for absent"):
        check_leaderboards(competitions, ["real", "absent"])
    with pytest.raises(ConfigError, match="not MLE-bench competitions.*: nope"):
        check_leaderboards(competitions, ["real", "nope"])


def test_no_extra_installs_mlebench_from_git_or_tensorflow():
    """Defect 9: a git install of MLE-bench has no Git LFS leaderboards and pulls TensorFlow."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    requirements = [req.lower() for reqs in extras.values() for req in reqs]
    assert not [r for r in requirements if "git+" in r or r.startswith(("mlebench", "tensorflow"))]
    # What MLE-bench's registry, grader and grading server import beyond gome's own dependencies.
    assert {r.split(">")[0] for r in extras["mlebench"]} == {"appdirs", "diskcache", "tenacity", "py7zr", "tqdm",
                                                              "flask"}
    assert any("mlebench" in r for r in extras["dev"])
