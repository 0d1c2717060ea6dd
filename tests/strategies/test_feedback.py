"""What the model is shown and how its replies are used: the task in every decision prompt, failures
with their cause, replies cut at the token limit, and edits that do not apply. Real SDK clients
against the fake server, real solution code, real runs."""

from __future__ import annotations

import json

import pytest

from gome_agent.bench.competitions import build_breast_cancer
from gome_agent.records.events import EventLog
from tests.fake_llm import Reply
from tests.scripted_agent import ALL_FEATURES, DRAFT, Script, analysis_reply, edit, full, gradient
from tests.strategies.test_trace import make_config, start, steps_of

MISSING_MODULE = "import gome_absent_module\n" + DRAFT
NO_STATIC_CHECKS = {"static_checks": False}  # the import must reach a run, whose failure is what is tested
ID_AS_FLOAT = 'FEATURES = ["mean_texture"]\nfloat("w0119")'


@pytest.fixture(scope="module")
def competition(tmp_path_factory):
    return build_breast_cancer(tmp_path_factory.mktemp("comp"))


def test_failures_carry_their_cause_and_every_decision_prompt_sees_the_task(tmp_path, competition, fake_llm,
                                                                            monkeypatch):
    script = (
        Script()
        .add("task_analysis", analysis_reply())
        .add("draft", full(MISSING_MODULE, "logistic regression"), full(DRAFT, "logistic regression again"))
        .add("gradient", gradient("Use all thirty features instead of one"),
             gradient("Try a numeric id feature"), gradient("Use balanced class weights"))
        .add("update", edit('FEATURES = ["mean_texture"]', ID_AS_FLOAT, "cast the id to float"),
             edit("LogisticRegression(max_iter=2000)", "LogisticRegression(max_iter=2000, C=1.0)", "same model"))
    )
    fake_llm.set_responder(script)
    # No draft repairs: the failed draft is followed by a fresh one, whose prompt must name the failure.
    config = make_config(tmp_path, competition, fake_llm, max_steps=11, max_debug=0, draft_repairs=0,
                         execution=NO_STATIC_CHECKS)
    start(config, monkeypatch)
    steps = steps_of(config)
    assert [s.status for s in steps[:3]] == ["failed", "accepted", "failed"]

    # The planted ModuleNotFoundError: in the failed draft's lesson and in the next draft's prompt.
    missing = "ModuleNotFoundError: No module named 'gome_absent_module'"
    assert missing in steps[0].lesson and steps[0].cause and missing in steps[0].cause
    assert "main.py line 1: `import gome_absent_module`" in steps[0].lesson
    assert missing in script.prompts("draft")[1]
    # The planted ValueError: in the failed update's lesson and in the next diagnosis.
    value_error = "ValueError: could not convert string to float: 'w0119'"
    assert value_error in steps[2].lesson
    assert value_error in script.prompts("gradient")[1]
    # A step records the change actually made and the size of its diff; the history shows both.
    assert steps[2].change == "cast the id to float" and (steps[2].lines_added, steps[2].lines_removed) == (1, 0)
    assert "Change made: cast the id to float (+1/-0 lines at line 11)" in script.prompts("gradient")[1]
    rejected = [s for s in steps if s.status == "rejected"]
    assert rejected and "run time" in rejected[0].lesson

    # After ten steps the diagnosis still sees the description, the file listing, the data profile
    # and the machine, as the draft, the update and the debug prompts do.
    environment = json.loads((config.workdir / "environment.json").read_text())["text"]
    description = (competition / "description.md").read_text().strip().splitlines()[3]
    last_gradient = script.prompts("gradient")[-1]
    assert len(script.prompts("gradient")) >= 9
    for prompt in (last_gradient, script.prompts("draft")[0], script.prompts("update")[-1]):
        assert description in prompt
        assert "Files (paths relative to the competition folder):" in prompt and "train.csv" in prompt
        assert "## Data profile" in prompt and "- target `target`: 2 classes:" in prompt
        assert environment in prompt


def test_a_reply_cut_at_the_token_limit_is_re_asked_and_never_half_applied(tmp_path, competition, fake_llm,
                                                                           monkeypatch):
    complete_block = edit("LogisticRegression(max_iter=2000)", "LogisticRegression(max_iter=7777)", "two changes")
    cut = complete_block + "<<<<<<< SEARCH\nFEATURES = [\"mean_texture\"]\n=======\nFEATURES = [c for c in"
    script = (
        Script()
        .add("task_analysis", analysis_reply())
        .add("draft", Reply(text=full(DRAFT)[:120], truncated=True), full(DRAFT))
        .add("gradient", gradient("Use all thirty features instead of one"))
        .add("update", Reply(text=cut, truncated=True), edit('FEATURES = ["mean_texture"]', ALL_FEATURES))
    )
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=2)
    start(config, monkeypatch)
    steps = steps_of(config)
    assert [s.status for s in steps] == ["accepted", "accepted"]
    drafts, updates = script.prompts("draft"), script.prompts("update")
    assert len(drafts) == 2 and "cut off at the output limit" in drafts[1] and "more compact main.py" in drafts[1]
    assert len(updates) == 2 and "cut off at the output limit" in updates[1]
    assert "only the SEARCH/REPLACE blocks the change needs" in updates[1]
    code = (config.workdir / steps[1].code_dir / "main.py").read_text()
    assert "max_iter=7777" not in code and ALL_FEATURES in code
    calls = [json.loads(line) for line in (config.workdir / "llm_calls.jsonl").read_text().splitlines()]
    assert [c["finish_reason"] for c in calls if c["role"] == "update"] == ["length", "stop"]


def test_edits_that_still_fail_fall_back_to_a_whole_file_and_the_step_is_kept(tmp_path, competition, fake_llm,
                                                                              monkeypatch):
    wrong = edit("FEATURES = ['nothing']", ALL_FEATURES)
    script = (
        Script()
        .add("task_analysis", analysis_reply())
        .add("draft", full(DRAFT))
        .add("gradient", gradient("Use all thirty features instead of one"))
        .add("update", wrong, wrong, full(DRAFT.replace('FEATURES = ["mean_texture"]', ALL_FEATURES), "all features"))
    )
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=2)
    start(config, monkeypatch)
    steps = steps_of(config)
    assert steps[1].status == "accepted" and steps[1].change == "all features"
    updates = script.prompts("update")
    assert len(updates) == 3
    assert "Reply instead with the whole new main.py" in updates[2]
    assert EventLog(config.workdir / "events.jsonl").steps()[1].gradient is not None  # the diagnosis was kept


def test_the_cause_comes_before_a_fix_that_could_not_be_used(tmp_path, competition, fake_llm, monkeypatch):
    script = (
        Script()
        .add("task_analysis", analysis_reply())
        .add("draft", full(MISSING_MODULE, "logistic regression"))
        .add("debug", "Change: I would load the data differently.")  # no code, every time
    )
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=1, max_debug=1, execution=NO_STATIC_CHECKS)
    start(config, monkeypatch)
    (step,) = steps_of(config)
    assert step.status == "failed" and (step.runs, step.smoke_runs, step.smoke) == (0, 1, "failed")
    assert step.lesson.startswith("Failed after 0 full run(s) and 1 smoke run(s): the smoke run (before the full "
                                  "run: at most 200 rows per table, 60 s limit) exited with code 1: "
                                  "ModuleNotFoundError: No module named 'gome_absent_module'")
    # Why the fix could not be used is in the message; the lesson, which later prompts show, keeps to the task.
    assert step.lesson.endswith("No module named 'gome_absent_module' (main.py line 1: `import gome_absent_module`)")
    assert "; the fix could not be applied: the model's code reply could not be used" in step.message


def test_a_draft_that_only_names_its_approach_is_asked_for_the_code_alone(tmp_path, competition, fake_llm,
                                                                          monkeypatch):
    # The local 0.5B model's most common draft reply: the `Approach:` line and nothing else.
    script = (Script().add("task_analysis", analysis_reply())
              .add("draft", "Approach: logistic regression on the texture feature\n", f"```python\n{DRAFT}```\n"))
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=1, max_debug=0)
    start(config, monkeypatch)
    (step,) = steps_of(config)
    assert step.status == "accepted"
    drafts = script.prompts("draft")
    assert len(drafts) == 2
    assert "That reply named the approach but held no code" in drafts[1]
    assert "That reply could not be applied" not in drafts[1]
    # The approach announced in the first reply is the step's, though the code came in the second.
    assert step.hypothesis == "logistic regression on the texture feature"
