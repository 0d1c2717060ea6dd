"""Export to and import from the released Gome traces layout: round trip, lenient import, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from markupsafe import escape

from gome_agent.errors import ConfigError
from gome_agent.views.report import write_report
from gome_agent.views.runview import RunView, fmt_score
from gome_agent.views.traces_io import export_traces, find_score, import_traces
from tests.views.test_runview import shared_run

SCENARIO_FIELDS = ("background", "submission_specifications", "evaluation", "metric_name", "metric_direction",
                   "raw_description", "runtime_environment")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return shared_run(tmp_path_factory)


@pytest.fixture(scope="module")
def exported(workdir, tmp_path_factory) -> Path:
    return export_traces(workdir, tmp_path_factory.mktemp("export") / "traces.json")


def _key(step) -> tuple:
    return (step.trace, step.step, step.kind, step.hypothesis, step.status, step.score, step.parent_step,
            step.component, step.limiting_problem)


def test_export_layout(exported, workdir):
    view = RunView.load(workdir)
    data = json.loads(exported.read_text())
    assert list(data) == [view.task.competition_id]
    entry = data[view.task.competition_id]
    scenario = entry["scenario"]
    assert all(field in scenario for field in SCENARIO_FIELDS)
    assert scenario["metric_name"] == "area under the ROC curve" and scenario["metric_direction"] is True
    assert "Breast Cancer" in scenario["raw_description"]
    loops = [entry[f"loop_{i}"] for i in range(len(entry) - 1)]
    assert len(loops) == len(view.steps()) == 8
    assert [loop["started_at"] for loop in loops] == sorted(loop["started_at"] for loop in loops)
    assert {loop["trace"] for loop in loops} == {0, 1}
    for loop in loops:
        step = view.find_step(loop["trace"], loop["step"])
        assert loop["hypothesis"]["hypothesis"] == step.hypothesis
        assert loop["execution"]["score"] == step.score
        assert loop["feedback"]["decision"] is step.accepted
        assert loop["code"]["main.py"] == (workdir / step.code_dir / "main.py").read_text()
    improve = next(loop for loop in loops if loop["kind"] == "improve")
    assert improve["hypothesis"]["reason"] and improve["hypothesis"]["problem"]
    assert len(improve["hypothesis"]["ranking"]) == 3
    failed = next(loop for loop in loops if loop["feedback"]["status"] == "failed")
    assert "deliberate failure" in failed["execution"]["stderr_tail"]


def test_round_trip_keeps_steps_scores_and_hypotheses(exported, workdir, tmp_path):
    [folder] = import_traces(exported, tmp_path / "imported")
    original, imported = RunView.load(workdir), RunView.load(folder)
    assert sorted(map(_key, imported.steps())) == sorted(map(_key, original.steps()))
    assert [s.gradient for s in imported.steps()] == [s.gradient for s in original.steps()]
    assert imported.task.metric_name == original.task.metric_name
    assert imported.task.higher_is_better is True
    assert imported.state == "finished"
    assert (imported.best.trace, imported.best.step) == (original.best_overall().trace, original.best_overall().step)
    assert sorted((e.trace, e.step, e.score, e.hypothesis) for e in imported.memory) == sorted(
        (e.trace, e.step, e.score, e.hypothesis) for e in original.memory)
    for a, b in zip(imported.traces, original.traces, strict=True):
        assert (a.best_score, a.accepted, a.failed, a.cost_usd) == pytest.approx(
            (b.best_score, b.accepted, b.failed, b.cost_usd))
    page = write_report(folder, tmp_path / "report.html").read_text()
    for step in original.steps():
        assert str(escape(step.hypothesis)) in page
        if step.score is not None:
            assert f">{fmt_score(step.score)}<" in page
    improved = next(s for s in original.steps() if s.accepted and s.parent_step is not None)
    assert f'<span class="add">+SCORE = {improved.score:.6f}</span>' in page
    # Exporting the import gives the same loops back.
    again = json.loads(export_traces(folder, tmp_path / "again.json").read_text())
    first = json.loads(exported.read_text())
    [(name, entry)] = first.items()
    assert [entry[f"loop_{i}"]["hypothesis"] for i in range(8)] == [again[name][f"loop_{i}"]["hypothesis"]
                                                                   for i in range(8)]


RELEASED_LIKE = {
    "spooky-author": {
        "scenario": {"background": "Guess the author of a sentence.", "metric_name": "multi-class log loss",
                     "evaluation": "Multi-class log loss.", "raw_description": "# Spooky"},
        "loop_0": {
            "hypothesis": {"hypothesis": "TF-IDF with logistic regression", "reason": "strong text baseline",
                           "component": "Model", "problem_desc": "no model yet"},
            "code": {"main.py": "print('draft')\n"},
            "running": {"result": {"multi-class log loss": {"ensemble": 0.52, "lr": 0.53}}, "running_time": 30.5},
            "feedback": {"decision": True, "reason": "first valid submission", "observations": "0.52 on holdout"},
        },
        "loop_1": {
            "hypothesis": "Add character n-grams",
            "code": "print('char ngrams')\n",
            "execution": {"score": "0.47"},
            "feedback": {"Replace Best Result": "yes"},
            "something_new": {"kept": "ignored"},
        },
        "loop_2": {"hypothesis": {"hypothesis": "Blend with naive Bayes"},
                   "code": {"model.py": "raise SystemExit(1)\n"}, "execution": {"stderr": "Traceback: boom"},
                   "feedback": {"decision": False}},
        "loop_3": {"hypothesis": {"hypothesis": "Stack a GBM"}, "execution": {"score": 0.49},
                   "feedback": {"decision": False, "reason": "worse than 0.47"}},
        "loop_4": {"hypothesis": {"hypothesis": "No code came back"}},
    },
    "custom/task": {
        "scenario": {"metric_name": "house points"},
        "loop_0": {"trace": 1, "hypothesis": {"hypothesis": "draft"}, "code": "a = 1\n", "execution": {"score": 10},
                   "feedback": {"decision": True}},
        "loop_1": {"trace": 1, "hypothesis": {"hypothesis": "more"}, "code": "a = 2\n", "execution": {"score": 12},
                   "feedback": {"decision": True}},
    },
}


def test_import_of_a_released_like_file_with_missing_fields(tmp_path):
    source = tmp_path / "gpt5_trace_0.json"
    source.write_text(json.dumps(RELEASED_LIKE))
    spooky, custom = import_traces(source, tmp_path / "runs")
    assert spooky.name == "spooky-author" and custom.name == "custom-task"

    view = RunView.load(spooky)
    assert view.task.higher_is_better is False  # no metric_direction: log loss is a known metric
    steps = view.traces[0].steps
    assert [(s.step, s.kind, s.status, s.score, s.parent_step) for s in steps] == [
        (1, "draft", "accepted", 0.52, None),
        (2, "improve", "accepted", 0.47, 1),
        (3, "improve", "failed", None, 2),
        (4, "improve", "rejected", 0.49, 2),
        (5, "improve", "error", None, 2),
    ]
    assert steps[0].hypothesis == "TF-IDF with logistic regression" and steps[0].component == "Model"
    assert steps[0].limiting_problem == "no model yet" and "strong text baseline" in steps[0].lesson
    assert steps[1].gain == pytest.approx(-0.05)
    assert (spooky / steps[2].code_dir / "main.py").read_text() == "raise SystemExit(1)\n"
    assert (spooky / steps[2].code_dir / "stderr.txt").read_text() == "Traceback: boom"
    assert steps[4].code_dir is None
    assert (view.best.step, view.best.score) == (2, 0.47)
    assert (spooky / "code" / "main.py").read_text() == "print('char ngrams')\n"
    assert [e.step for e in view.memory] == [1, 2]
    page = write_report(spooky, tmp_path / "spooky.html").read_text()
    assert "Add character n-grams" in page and "diff against step 1" in page

    other = RunView.load(custom)
    assert other.task.higher_is_better is True  # unknown metric: accepted scores went up
    assert [t.index for t in other.traces] == [0, 1] and len(other.traces[1].steps) == 2
    assert other.best_overall().score == 12


def test_import_without_any_direction_keeps_it_unknown(tmp_path):
    source = tmp_path / "t.json"
    source.write_text(json.dumps({"c": {"scenario": {"metric_name": "mystery"},
                                        "loop_0": {"hypothesis": "x", "code": "x = 1\n",
                                                   "execution": {"score": 3}}}}))
    [folder] = import_traces(source, tmp_path / "out")
    view = RunView.load(folder)
    assert view.task.higher_is_better is None and view.best is None
    assert view.best_overall().score == 3  # the trace's first valid solution is accepted
    assert "direction unknown" in view.summary_text()


def test_find_score_reads_common_shapes():
    assert find_score(0.5) == 0.5
    assert find_score("0.25") == 0.25
    assert find_score({"auc": {"ensemble": 0.9, "lgbm": 0.8}}, "auc") == 0.9
    assert find_score({"lgbm": 0.8}) == 0.8
    assert find_score(["n/a", 0.7]) == 0.7
    assert find_score(float("nan")) is None
    assert find_score(True) is None


def test_bad_files_are_clear_errors(tmp_path, exported):
    missing = tmp_path / "none.json"
    with pytest.raises(ConfigError, match="none.json does not exist"):
        import_traces(missing, tmp_path / "out")
    broken = tmp_path / "broken.json"
    broken.write_text('{"a": ')
    with pytest.raises(ConfigError, match="broken.json is not valid JSON"):
        import_traces(broken, tmp_path / "out")
    wrong = tmp_path / "wrong.json"
    wrong.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="one entry per competition"):
        import_traces(wrong, tmp_path / "out")
    entry = tmp_path / "entry.json"
    entry.write_text('{"comp": 3}')
    with pytest.raises(ConfigError, match="'comp' is not a JSON object"):
        import_traces(entry, tmp_path / "out")
    import_traces(exported, tmp_path / "twice")
    with pytest.raises(ConfigError, match="already exists and is not empty"):
        import_traces(exported, tmp_path / "twice")


def test_import_tolerates_odd_shapes(tmp_path):
    source = tmp_path / "odd.json"
    source.write_text(json.dumps({"odd": {
        "scenario": "not an object",
        "loop_0": {"hypothesis": 7, "code": 123, "execution": "text", "feedback": [], "ranking": 5},
        "loop_1": {"hypothesis": {"hypothesis": {"hypothesis": "nested"}, "ranking": 5, "diagnosis": {"bad": 1}},
                   "code": {"/etc/passwd": "x", "../up.py": "y", "ok.py": "z = 1\n"}, "trace": "two"},
        "loop_2": "not a loop",
        "notes": {"ignored": True},
    }}))
    [folder] = import_traces(source, tmp_path / "out")
    steps = RunView.load(folder).steps()
    assert [(s.trace, s.step, s.status, s.hypothesis) for s in steps] == [
        (0, 1, "error", "7"), (0, 2, "failed", "nested")]
    written = sorted(p.relative_to(folder).as_posix() for p in (folder / "traces").rglob("*.py"))
    assert written == ["traces/t0/s0002/a0/main.py", "traces/t0/s0002/a0/ok.py"]
    assert not (tmp_path / "up.py").exists()
