"""Drafts a weak model can finish, in real runs against the fake server: a draft written into gome's
scaffold (the reply holds only the two functions) runs and is marked scaffolded; `auto` scaffolds
for a model whose name says it is small, and after a failed draft; a failed draft is debugged further
(shown the traceback, the failing lines and the tables' columns) instead of being thrown away."""

from __future__ import annotations

import pytest

from gome_agent.bench.competitions import build_breast_cancer
from tests.fake_llm import Reply
from tests.scripted_agent import DRAFT, Script, analysis_reply, edit, full
from tests.strategies.test_trace import make_config, start, steps_of

FUNCTIONS = '''Approach: logistic regression on every numeric column
```python
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def make_features(frame):
    return frame.select_dtypes("number").fillna(0)


def fit_predict(X, y, X_new):
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=SEED))
    return model.fit(X, y).predict_proba(X_new)[:, 1]
```
'''
# The label's name built at run time, so that only a run finds the error (the static checks would).
BROKEN = DRAFT.replace('X, y = train[FEATURES], train["target"]',
                       'X, y = train[FEATURES], train["diag" + "nosis"]')


@pytest.fixture(scope="module")
def competition(tmp_path_factory):
    return build_breast_cancer(tmp_path_factory.mktemp("comp"))


def test_a_scaffolded_draft_runs_and_is_marked_scaffolded(tmp_path, competition, fake_llm, monkeypatch):
    script = Script().add("task_analysis", analysis_reply()).add("draft", FUNCTIONS)
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=1, scaffold="on")
    start(config, monkeypatch)
    (step,) = steps_of(config)
    assert step.status == "accepted" and step.scaffolded and step.repairs is None
    assert step.hypothesis == "logistic regression on every numeric column"
    # gome measured the score on its held-out rows, and the scaffold's own fold scores agreed.
    assert step.scored_by == "gome" and step.untrusted is None and step.score > 0.95
    code = (config.workdir / step.code_dir / "main.py").read_text()
    assert code.startswith("# gome scaffold") and "def fit_predict(X, y, X_new):\n    model = make_pipeline" in code
    assert "raise NotImplementedError" not in code
    # The diff is what the model wrote into the skeleton.
    assert (step.lines_added, step.lines_removed) == (6, 18)  # imports and bodies in; stub and default out
    # Its reply is capped well below the run's output limit: it needs a function or two.
    (request,) = [r for r in fake_llm.requests if "## The scaffold" in r.text]
    assert request.body["max_tokens"] == 1024 and config.llm.max_output_tokens > 1024
    (prompt,) = script.prompts("draft")
    assert "## The scaffold" in prompt and 'raise NotImplementedError("write fit_predict")' in prompt
    assert "one ```python block with your `fit_predict` function (and your `make_features` if you rewrite it)" in prompt


@pytest.mark.parametrize(("model", "scaffolded"), [("qwen2.5-coder-0.5b", True), ("fake-model", False)])
def test_auto_scaffolds_for_a_model_whose_name_says_it_is_small(tmp_path, competition, fake_llm, monkeypatch,
                                                                 model, scaffolded):
    script = Script().add("task_analysis", analysis_reply()).add("draft", full(DRAFT)).add("function", FUNCTIONS)
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=1)
    config = config.model_copy(update={"llm": config.llm.model_copy(update={"model": model})})
    start(config, monkeypatch)
    (step,) = steps_of(config)
    assert step.status == "accepted" and step.scaffolded is scaffolded
    # The small model is asked for fit_predict alone, in a short prompt (prompts/function.j2).
    (prompt,) = script.prompts("function" if scaffolded else "draft")
    assert ("def fit_predict(X, y, X_new):" in prompt) is scaffolded
    if scaffolded:
        assert "## The scaffold" not in prompt and len(prompt) < 2500
        assert "Goal: Predict the probability that each breast mass is malignant." in prompt


def test_auto_scaffolds_the_draft_after_a_failed_one(tmp_path, competition, fake_llm, monkeypatch):
    script = Script().add("task_analysis", analysis_reply()).add("draft", full(BROKEN), FUNCTIONS)
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=2, max_debug=0, draft_repairs=0)
    start(config, monkeypatch)
    first, second = steps_of(config)
    assert (first.status, first.scaffolded) == ("failed", False)
    assert (second.status, second.scaffolded, second.repairs) == ("accepted", True, None)
    free, scaffolded = script.prompts("draft")
    assert "## The scaffold" not in free and "## The scaffold" in scaffolded
    assert "KeyError: 'diagnosis'" in scaffolded  # the failed draft's lesson


def test_a_failed_draft_is_debugged_further_instead_of_redrafted(tmp_path, competition, fake_llm, monkeypatch):
    script = (Script().add("task_analysis", analysis_reply()).add("draft", full(BROKEN, "one-feature logistic"))
              .add("debug", edit('train["diag" + "nosis"]', 'train["target"]', "use the label column that exists")))
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=2, max_debug=0, draft_repairs=2)
    start(config, monkeypatch)
    first, second = steps_of(config)
    assert first.status == "failed" and "KeyError: 'diagnosis'" in first.lesson
    # The second step went on with the failed draft's code: no new draft was asked for.
    assert len(script.prompts("draft")) == 1
    assert (second.kind, second.status, second.repairs, second.hypothesis) == (
        "draft", "accepted", 1, "one-feature logistic")
    assert second.change == "repair of the draft of step 1: use the label column that exists"
    assert (second.lines_added, second.lines_removed) == (1, 1)
    (debug,) = script.prompts("debug")
    # The repair saw the whole traceback, the failing line in context and the columns of the table it reads.
    assert "The traceback:\n```\nTraceback (most recent call last):" in debug
    assert '>>   11 | X, y = train[FEATURES], train["diag" + "nosis"]' in debug
    assert "The columns of the input tables the code reads:\n- input/" in debug
    train_columns = debug.split("- input/train.csv: ")[1].splitlines()[0].split(", ")
    assert train_columns[:2] == ["id", "mean_radius"] and train_columns[-1] == "target"


def test_repairs_stop_after_the_configured_number_then_a_fresh_draft(tmp_path, competition, fake_llm, monkeypatch):
    script = (Script().add("task_analysis", analysis_reply()).add("draft", full(BROKEN), full(DRAFT))
              .add("debug", edit("LogisticRegression(max_iter=2000)", "LogisticRegression(max_iter=2001)",
                                 "a change that does not help")))
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=3, max_debug=0, draft_repairs=1)
    start(config, monkeypatch)
    steps = steps_of(config)
    assert [(s.status, s.repairs) for s in steps] == [("failed", None), ("failed", 1), ("accepted", None)]
    assert len(script.prompts("debug")) == 1 and len(script.prompts("draft")) == 2


def test_a_scaffolded_reply_that_leaves_the_model_unwritten_is_re_asked_without_a_run(tmp_path, competition, fake_llm,
                                                                                       monkeypatch):
    stub = ("Approach: a model\n```python\ndef fit_predict(X, y, X_new):\n"
            "    raise NotImplementedError(\"write fit_predict\")\n```\n")
    # The 0.5B model's other habit: the function's head and docstring given back, with no body.
    head = '```python\ndef fit_predict(X, y, X_new):\n    """Train a model."""\n```\n'
    script = Script().add("task_analysis", analysis_reply()).add("draft", stub, head, FUNCTIONS)
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=1, scaffold="on")
    start(config, monkeypatch)
    (step,) = steps_of(config)
    assert step.status == "accepted" and step.scaffolded and (step.runs, step.smoke_runs) == (1, 1)
    first, again, third = script.prompts("draft")
    problem = ("fit_predict has no body yet (only a docstring, pass or NotImplementedError): write the code of "
               "fit_predict that does its job")
    assert problem in again and problem in third


def test_a_cut_scaffolded_reply_keeps_the_functions_it_finished(tmp_path, competition, fake_llm, monkeypatch):
    # The 0.5B model's habit: it copies the whole scaffold around fit_predict and runs out of tokens after it.
    code = FUNCTIONS.split("```python\n")[1].split("```")[0]
    cut = ("Approach: logistic regression\n```python\nimport numpy as np\n\nSEED = 0\n\n" + code
           + "\n\ndef target(train):\n    y = (train[LABELS].astype(str) == POS")
    script = Script().add("task_analysis", analysis_reply()).add("draft", Reply(text=cut, truncated=True))
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=1, scaffold="on")
    start(config, monkeypatch)
    (step,) = steps_of(config)
    assert step.status == "accepted" and step.scaffolded and len(script.prompts("draft")) == 1
    main = (config.workdir / step.code_dir / "main.py").read_text()
    assert "model = make_pipeline(StandardScaler()" in main and "def target(train):\n" in main
    assert "== POS\n" not in main  # nothing of the unfinished function


def test_a_cut_reply_that_finished_no_function_is_re_asked_for_the_function_alone(tmp_path, competition, fake_llm,
                                                                                  monkeypatch):
    cut = "Approach: x\n```python\nimport numpy as np\n\ndef fit_predict(X, y, X_new):\n    model = Logis"
    script = Script().add("task_analysis", analysis_reply()).add("draft", Reply(text=cut, truncated=True), FUNCTIONS)
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=1, scaffold="on")
    start(config, monkeypatch)
    (step,) = steps_of(config)
    assert step.status == "accepted"
    again = script.prompts("draft")[1]
    assert "Reply with only the function fit_predict (its def line, its body and the imports it needs)" in again
