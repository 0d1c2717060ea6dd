import json
import sys
import types

import pytest

from gome_agent.cli import main
from gome_agent.errors import ConfigError
from gome_agent.mlebench.export import submission_lines


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


def test_grade_calls_mlebench_when_installed(tmp_path, monkeypatch):
    group, _, _ = _run_group(tmp_path)
    calls = {}
    grade_mod = types.ModuleType("mlebench.grade")
    registry_mod = types.ModuleType("mlebench.registry")

    class Registry:
        def set_data_dir(self, path):
            calls["data_dir"] = path
            return self

    def grade_jsonl(path, output_dir, registry):
        calls["grade"] = (path, output_dir, registry)

    grade_mod.grade_jsonl = grade_jsonl
    registry_mod.registry = Registry()
    monkeypatch.setitem(sys.modules, "mlebench", types.ModuleType("mlebench"))
    monkeypatch.setitem(sys.modules, "mlebench.grade", grade_mod)
    monkeypatch.setitem(sys.modules, "mlebench.registry", registry_mod)
    out = tmp_path / "sub.jsonl"
    assert main(["export-submissions", str(group), "-o", str(out), "--grade", "--data-dir", str(tmp_path / "data")]) == 0
    assert calls["grade"][0] == out and calls["grade"][1] == tmp_path
    assert calls["data_dir"] == tmp_path / "data"


def test_grade_without_mlebench_is_a_clear_error(tmp_path, monkeypatch, capsys):
    group, _, _ = _run_group(tmp_path)
    monkeypatch.setitem(sys.modules, "mlebench", None)
    assert main(["export-submissions", str(group), "-o", str(tmp_path / "s.jsonl"), "--grade"]) == 2
    assert "--grade needs the mlebench package" in capsys.readouterr().err
