"""Before the full run, in real runs: the static checks send an undefined name, a missing import or an
uninstalled package back to the model without any run; a column error that they cannot see fails in
the smoke run within seconds, and the full run is not started; a correct solution passes both and
runs in full; a problem the model never fixes ends the step with it in the lesson."""

from __future__ import annotations

import pandas as pd
import pytest

from gome_agent.bench.competitions import build_breast_cancer
from gome_agent.records.events import EventLog, Note
from gome_agent.views.report import write_report
from tests.scripted_agent import DRAFT, Script, analysis_reply, edit, full
from tests.strategies.test_trace import make_config, start, steps_of

NO_SPLIT_IMPORT = DRAFT.replace("from sklearn.model_selection import train_test_split\n", "")
NO_OS_IMPORT = DRAFT.replace("import os\n", "")
FEATURES_LINE = 'FEATURES = ["mean_texture"]\n'
ABSENT_PACKAGE = DRAFT.replace("import pandas as pd\n", "import pandas as pd\nimport gome_absent_module\n")
# Built at run time, so only running it finds it.
PLANTED = DRAFT.replace('X, y = train[FEATURES], train["target"]',
                        'train["no_such_" + "column"]\nX, y = train[FEATURES], train["target"]')


def whole(code: str, summary: str) -> str:
    return f"Change: {summary}\n```python\n{code}```\n"


@pytest.fixture(scope="module")
def competition(tmp_path_factory):
    return build_breast_cancer(tmp_path_factory.mktemp("comp"))


@pytest.mark.parametrize(("code", "problem"), [
    (NO_SPLIT_IMPORT, "line 11: undefined name 'train_test_split' (missing `from sklearn.model_selection import "
                      "train_test_split`?)"),
    (NO_OS_IMPORT, "line 16: undefined name 'os', also on lines 17, 19 (missing `import os`?)"),
    (ABSENT_PACKAGE, "line 4: module 'gome_absent_module' is not installed in the solutions' Python"),
], ids=["undefined-name", "missing-import", "uninstalled-package"])
def test_a_static_problem_goes_back_to_the_model_before_any_run(tmp_path, competition, fake_llm, monkeypatch,
                                                                code, problem):
    script = (Script().add("task_analysis", analysis_reply()).add("draft", full(code))
              .add("debug", whole(DRAFT, "add what was missing")))
    fake_llm.set_responder(script)
    # Without gome's own fixes (auto_fixes), so that the model is asked for the missing import too.
    config = make_config(tmp_path, competition, fake_llm, max_steps=1, execution={"auto_fixes": False})
    start(config, monkeypatch)
    (step,) = steps_of(config)
    # The broken code never ran: one fix round, then one smoke run and one full run of the fixed code.
    assert step.status == "accepted" and step.static_fixes == 1
    assert (step.smoke_runs, step.runs, step.smoke) == (1, 1, "passed")
    assert any(p.startswith(problem) for p in step.static_problems), step.static_problems
    step_dir = config.workdir / "traces" / "t0" / "s0001"
    assert sorted(p.name for p in step_dir.iterdir()) == ["a0", "a0-smoke"]
    assert (step_dir / "a0" / "main.py").read_text() == DRAFT
    (debug,) = script.prompts("debug")
    assert "the static check of main.py found problems before any run (no run was made)" in debug
    assert f"- {problem}" in debug and code in debug
    assert "Last lines of stderr" not in debug


def test_a_static_problem_never_fixed_ends_the_step_without_a_run(tmp_path, competition, fake_llm, monkeypatch):
    # Each fix round changes the code (an unchanged copy would be re-asked) but never the problem.
    script = (Script().add("task_analysis", analysis_reply()).add("draft", full(NO_SPLIT_IMPORT))
              .add("debug", whole(NO_SPLIT_IMPORT.replace("import json", "import json  # fixed"), "fixed, honest"),
                   whole(NO_SPLIT_IMPORT.replace("import json", "import json  # fixed again"), "fixed, really")))
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=1, max_debug=2, execution={"auto_fixes": False})
    start(config, monkeypatch)
    (step,) = steps_of(config)
    problem = "line 11: undefined name 'train_test_split' (missing `from sklearn.model_selection import train_test_split`?)"
    assert step.status == "failed" and step.static_fixes == 2 and len(script.prompts("debug")) == 2
    assert (step.runs, step.smoke_runs, step.smoke, step.run_status) == (0, 0, None, None)
    assert step.static_problems == [problem]
    assert step.lesson == f"Failed the static check after 2 fix round(s) and 0 run(s): {problem}"
    assert not list((config.workdir / "traces").rglob("stdout.txt"))
    # The next fix attempt heard of the earlier one.
    assert "static check: 1 problem(s), e.g. line 11" in script.prompts("debug")[1]


def test_gome_adds_the_imports_it_is_sure_of_and_asks_the_model_only_for_the_rest(tmp_path, competition, fake_llm,
                                                                                  monkeypatch):
    # Neither os nor train_test_split is imported; FEATURE_LIST is a name only the model can define.
    broken = NO_OS_IMPORT.replace(FEATURES_LINE, "").replace("from sklearn.model_selection import train_test_split\n", "")
    broken = broken.replace("FEATURES", "FEATURE_LIST")
    # And LogisticRegression is imported from the wrong module.
    broken = broken.replace("from sklearn.linear_model import LogisticRegression", "from sklearn.ensemble import LogisticRegression")
    fixed = broken.replace('X, y = train[FEATURE_LIST]', 'FEATURE_LIST = ["mean_texture"]\nX, y = train[FEATURE_LIST]')
    script = (Script().add("task_analysis", analysis_reply()).add("draft", full(broken))
              .add("debug", whole(fixed, "define FEATURE_LIST")))
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=1)
    start(config, monkeypatch)
    (step,) = steps_of(config)
    assert step.status == "accepted" and step.static_fixes == 1
    assert step.auto_fixes == ["line 3: imported `LogisticRegression` from sklearn.linear_model, not sklearn.ensemble",
                               "added `from sklearn.model_selection import train_test_split`", "added `import os`"]
    # The model heard only of the name gome could not define, and its code came back with gome's imports.
    (debug,) = script.prompts("debug")
    assert "undefined name 'FEATURE_LIST'" in debug and "undefined name 'os'" not in debug
    assert "undefined name 'train_test_split'" not in debug
    code = (config.workdir / "traces" / "t0" / "s0001" / "a0" / "main.py").read_text()
    assert code.startswith("from sklearn.model_selection import train_test_split\nimport os\nimport json\n")
    assert step.static_problems == ["line 10: undefined name 'FEATURE_LIST', also on lines 15, 18"]


def test_gome_removes_a_keyword_argument_the_call_does_not_take_without_asking_the_model(tmp_path, competition,
                                                                                        fake_llm, monkeypatch):
    threads = DRAFT.replace("LogisticRegression(max_iter=2000)", "LogisticRegression(max_iter=2000, threads=4)")
    script = Script().add("task_analysis", analysis_reply()).add("draft", full(threads))
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=1)
    start(config, monkeypatch)
    (step,) = steps_of(config)
    # The smoke run failed on the keyword; gome removed it and the second attempt ran, with no fix request.
    assert step.status == "accepted" and not script.prompts("debug") and step.llm_calls == 1
    assert (step.smoke_runs, step.runs) == (2, 1)
    assert step.auto_fixes == ["line 13: removed `threads=` from LogisticRegression(), which does not take it "
                               "(TypeError)"]
    step_dir = config.workdir / "traces" / "t0" / "s0001"
    assert "unexpected keyword argument 'threads'" in (step_dir / "a0-smoke" / "stderr.txt").read_text()
    assert (step_dir / "a1" / "main.py").read_text() == DRAFT
    # The report says what gome fixed.
    html = write_report(config.workdir).read_text()
    assert "Fixed by gome: line 13: removed `threads=` from LogisticRegression()" in html


def test_a_column_error_fails_in_the_smoke_run_and_the_full_run_is_not_started(tmp_path, competition, fake_llm,
                                                                              monkeypatch):
    script = (Script().add("task_analysis", analysis_reply()).add("draft", full(PLANTED))
              .add("debug", edit('train["no_such_" + "column"]\n', "", "drop the lookup of a column that is not there")))
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=1)
    start(config, monkeypatch)
    (step,) = steps_of(config)
    assert step.status == "accepted" and step.static_problems == [] and step.static_fixes == 0
    assert (step.smoke_runs, step.runs, step.smoke) == (2, 1, "passed")
    step_dir = config.workdir / "traces" / "t0" / "s0001"
    # Attempt a0 stopped at its smoke run, within seconds; its full run never started.
    assert not (step_dir / "a0" / "stdout.txt").exists() and (step_dir / "a0" / "main.py").read_text() == PLANTED
    assert "KeyError: 'no_such_column'" in (step_dir / "a0-smoke" / "stderr.txt").read_text()
    assert step.smoke_s < 30 and (step_dir / "a1" / "stdout.txt").exists()
    (debug,) = script.prompts("debug")
    assert "the smoke run (before the full run: at most 200 rows per table, 60 s limit) exited with code 1" in debug
    assert "KeyError: 'no_such_column'" in debug and "Traceback (most recent call last)" in debug


def test_a_correct_solution_passes_the_checks_and_the_smoke_run_then_runs_in_full(tmp_path, competition, fake_llm,
                                                                                  monkeypatch):
    script = Script().add("task_analysis", analysis_reply()).add("draft", full(DRAFT))
    fake_llm.set_responder(script)
    # The smoke run's sampled input and outputs are looked at below (by default they go once the step is recorded).
    config = make_config(tmp_path, competition, fake_llm, max_steps=1, execution={"keep_outputs": "all"})
    start(config, monkeypatch)
    (step,) = steps_of(config)
    assert step.status == "accepted" and not script.prompts("debug")
    assert (step.static_problems, step.static_fixes, step.smoke, step.smoke_runs, step.runs) == ([], 0, "passed", 1, 1)
    # The smoke run's time is run time of the step.
    assert 0 < step.smoke_s and step.run_s == pytest.approx(step.smoke_s + step.runtime_s, abs=0.01)
    step_dir = config.workdir / "traces" / "t0" / "s0001"
    smoke_input = step_dir / "a0-smoke" / "input"
    train = pd.read_csv(smoke_input / "train.csv")
    assert len(train) == 200 and set(train["target"]) == {0, 1}
    # 426 rows less the 127 gome holds out (30 %: a table this small holds out up to that share).
    assert len(pd.read_csv(config.workdir / "validation" / "input" / "train.csv")) == 299
    assert set(pd.read_csv(step_dir / "a0-smoke" / "submission.csv")["id"]) == set(
        pd.read_csv(smoke_input / "test.csv")["id"])
    assert len(pd.read_csv(step_dir / "a0" / "submission.csv")) == 143
    notes = [e.message for e in EventLog(config.workdir / "events.jsonl").read() if isinstance(e, Note)]
    assert "smoke runs on at most 200 rows of train.csv, 60 s limit" in notes


def test_a_smoke_run_that_reaches_its_limit_lets_the_full_run_go(tmp_path, competition, fake_llm, monkeypatch):
    slow_on_samples = DRAFT.replace('test = pd.read_csv("input/test.csv")\n',
                                    'test = pd.read_csv("input/test.csv")\nimport time\n'
                                    'time.sleep(30 if len(train) <= 200 else 0)\n')
    script = Script().add("task_analysis", analysis_reply()).add("draft", full(slow_on_samples))
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=1, execution={"smoke": {"time_limit_s": 2}})
    start(config, monkeypatch)
    (step,) = steps_of(config)
    assert step.status == "accepted" and (step.smoke, step.smoke_runs, step.runs) == ("timeout", 1, 1)
    assert not script.prompts("debug") and 2 <= step.smoke_s < 20


def test_a_task_with_nothing_to_sample_runs_without_smoke_runs_and_says_so_once(tmp_path, competition, fake_llm,
                                                                                monkeypatch):
    script = Script().add("task_analysis", analysis_reply()).add("draft", full(DRAFT))
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=1,
                         execution={"smoke": {"rows": 1000}}).model_copy(update={"traces": 2})
    start(config, monkeypatch)
    steps = steps_of(config)
    assert [(s.trace, s.status, s.smoke, s.smoke_runs) for s in sorted(steps, key=lambda s: s.trace)] == [
        (0, "accepted", None, 0), (1, "accepted", None, 0)]
    notes = [e.message for e in EventLog(config.workdir / "events.jsonl").read()
             if isinstance(e, Note) and "smoke" in e.message]
    assert notes == ["no smoke runs: every table has at most 1000 rows (or 5,000 for a table without the id column), "
                     "so a smoke run would be the full run"]
    assert not list((config.workdir / "traces").glob("*/*/*-smoke"))
