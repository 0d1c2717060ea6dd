"""A small model after its first working solution, in real runs against the fake server: its gradient is
the compact form (the problem and directions as plain lines, for the fit_predict it wrote); a reply that
lists no direction still gives the step a change, straight from the feedback (the w/o-structured-reasoning
prompt), and after two such steps the trace stops asking for a gradient until a step is accepted; a change
of a scaffolded best is asked for as its fit_predict rewritten, in a short prompt (the 0.5B model answered
SEARCH/REPLACE requests with a `Change:` line and no edit, and looped on the long prompt's reply format)."""

from __future__ import annotations

import pytest

from gome_agent.bench.competitions import build_breast_cancer
from tests.scripted_agent import ALL_FEATURES, DRAFT, Script, analysis_reply, edit, full, gradient
from tests.strategies.test_drafts import FUNCTIONS
from tests.strategies.test_trace import make_config, start, steps_of

SMALL = "qwen2.5-coder-0.5b"
# A better fit_predict, as a small model replies to a change request: the function alone.
SCALED = '''Change: a stronger regularised logistic regression
```python
def fit_predict(X, y, X_new):
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=3000, random_state=SEED))
    return model.fit(X, y).predict_proba(X_new)[:, 1]
```
'''
NOT_JSON = "The model is limited by its features. I would add more features."
# A compact gradient as a small model writes one: a problem line, then numbered directions, one repeated and
# one copied from the changes already accepted.
COMPACT = """Problem: the logistic regression is not regularised for these features
1. [model] Tune the regularisation
2. [data] scale the features with StandardScaler
2. [data] scale the features with StandardScaler
3. [features] use every column
"""


@pytest.fixture(scope="module")
def competition(tmp_path_factory):
    return build_breast_cancer(tmp_path_factory.mktemp("comp"))


def small(config):
    return config.model_copy(update={"llm": config.llm.model_copy(update={"model": SMALL})})


def test_an_unusable_gradient_falls_back_to_a_direct_change(tmp_path, competition, fake_llm, monkeypatch):
    script = (Script().add("task_analysis", analysis_reply()).add("function", FUNCTIONS)
              .add("function_gradient", NOT_JSON)
              .add("function_change", SCALED, *(SCALED.replace("C=0.5", f"C={c}") for c in (0.25, 0.1))))
    fake_llm.set_responder(script)
    config = small(make_config(tmp_path, competition, fake_llm, max_steps=4))
    start(config, monkeypatch)
    draft, *improves = steps_of(config)
    assert draft.status == "accepted" and draft.scaffolded
    assert [s.kind for s in improves] == ["improve"] * 3
    # Steps 2 and 3 asked for a compact gradient, could not use it, and changed the code directly.
    for step in improves[:2]:
        assert step.gradient is None and "lists no direction" in step.gradient_error
        assert step.hypothesis == "a stronger regularised logistic regression" and step.status != "failed"
    # Step 4 asked again: a compact gradient costs seconds, so two unusable ones do not stop the asking.
    assert "lists no direction" in improves[2].gradient_error
    # Each compact gradient was asked for once more, with what its reply lacked.
    compact = script.prompts("function_gradient")
    assert len(compact) == 6 and not script.prompts("gradient")
    assert "That reply could not be used: the reply lists no direction" in compact[1]
    # The direct changes were asked as fit_predict alone, with no direction (no gradient chose one).
    changes = script.prompts("function_change")
    assert len(changes) == 3 and not script.prompts("direct")
    assert "Make one change that should raise the score" in changes[0] and "def fit_predict(X, y, X_new)" in changes[0]
    # The change was spliced into the scaffolded best and ran.
    code = (config.workdir / improves[0].code_dir / "main.py").read_text()
    assert "LogisticRegression(C=0.5, max_iter=3000" in code and code.startswith("# gome scaffold")


def columns(n: str, change: str = "first solution") -> str:
    """A scaffold reply whose model sees the first `n` feature columns (a Python slice bound)."""
    return FUNCTIONS.replace("Approach: logistic regression on every numeric column", f"Change: {change}").replace(
        "model.fit(X, y).predict_proba(X_new)", f"model.fit(X.iloc[:, :{n}], y).predict_proba(X_new.iloc[:, :{n}])")


def test_a_compact_gradient_follows_a_direct_change_and_sees_what_was_tried(tmp_path, competition, fake_llm,
                                                                            monkeypatch):
    script = (Script().add("task_analysis", analysis_reply()).add("function", columns("2"))
              .add("function_gradient", *[NOT_JSON] * 6, COMPACT)  # three steps of a request and its re-ask
              .add("function_change", columns("1", "one column"),
                   columns("1", "one column").replace("max_iter=2000", "max_iter=3000"),
                   columns("None", "every column"), SCALED))
    fake_llm.set_responder(script)
    config = small(make_config(tmp_path, competition, fake_llm, max_steps=5, acceptance="plain"))
    start(config, monkeypatch)
    steps = steps_of(config)
    assert [(s.hypothesis, s.status) for s in steps[1:4]] == [
        ("one column", "rejected"), ("one column", "rejected"), ("every column", "accepted")]
    assert all("lists no direction" in s.gradient_error for s in steps[1:4])
    # Step 5's compact gradient is usable: its direction, ranked by the order of the list.
    assert steps[4].gradient is not None and steps[4].gradient_error is None
    assert steps[4].hypothesis == "Tune the regularisation" and steps[4].component == "model"
    assert steps[4].limiting_problem == "the logistic regression is not regularised for these features"
    # The repeated line is dropped, and so is the change step 4 made ("every column"): the code has it.
    assert [(r.hypothesis, r.base) for r in steps[4].ranking] == [
        ("Tune the regularisation", 6.0), ("scale the features with StandardScaler", 5.5)]
    # The compact prompt showed the small model its own fit_predict and the changes tried before.
    compact = script.prompts("function_gradient")[-1]
    assert "def fit_predict(X, y, X_new)" in compact and "# gome scaffold" not in compact and len(compact) < 4000
    assert "- one column: rejected" in compact and "- every column: accepted" in compact
    # The gradient's direction reaches the small model's function request; the changes tried before went to
    # the gradient, not to the request that applies its direction.
    last = script.prompts("function_change")[-1]
    assert "Make this change: Tune the regularisation" in last and "Changes tried before" not in last
    assert "- one column: rejected" in script.prompts("function_change")[-2]  # a direct change sees them


TUNE = "tune the regularisation strength (C or alpha) of the linear model"
BOOSTED = """Change: gradient boosting
```python
def fit_predict(X, y, X_new):
    from sklearn.ensemble import HistGradientBoostingClassifier
    model = HistGradientBoostingClassifier(max_iter=50, random_state=SEED)
    return model.fit(X, y).predict_proba(X_new)[:, 1]
```
"""


def test_a_compact_gradient_that_only_repeats_what_failed_gets_the_untried_common_changes_first(
        tmp_path, competition, fake_llm, monkeypatch):
    # Step 3's reply copies step 2's rejected change back, outcome and all, as the 0.5B model did on
    # osu-leaf-outlines; without the common changes its step would have been that change again.
    echoed = f"Problem: the score does not improve\n1. [model] {TUNE}: rejected (0.9)\n2. [model] {TUNE} - rejected\n"
    script = (Script().add("task_analysis", analysis_reply()).add("function", FUNCTIONS)
              .add("function_gradient", f"Problem: the model is not regularised\n1. [model] {TUNE}\n", echoed)
              .add("function_change", columns("1", "C=0.5 on one column"), BOOSTED))
    fake_llm.set_responder(script)
    config = small(make_config(tmp_path, competition, fake_llm, max_steps=3, acceptance="plain"))
    start(config, monkeypatch)
    draft, tuned, third = steps_of(config)
    assert (tuned.hypothesis, tuned.status) == (TUNE, "rejected")
    # The echoed outcome is not part of a direction, so both listed lines are step 2's change: the fitting
    # changes of the list that were not tried come first (the code has its scaler already), then the reply's.
    assert [r.hypothesis for r in third.ranking] == [
        "use a gradient-boosted model, HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05)",
        'use class_weight="balanced" (for rare classes)', "average the predictions of two different models", TUNE]
    assert third.gradient.candidates[0].reasoning.startswith("from the list of common changes")
    assert third.ranking[-1].repeat == 3.0 and "repeats step 2" in third.ranking[-1].notes[0]
    assert third.hypothesis.startswith("use a gradient-boosted model") and third.status != "failed"
    assert "Make this change: use a gradient-boosted model" in script.prompts("function_change")[-1]
    # The prompt's list holds only the changes that fit the code: its regularised logistic regression, not
    # the scaler it already has or a forest it does not have.
    listed = script.prompts("function_gradient")[0]
    assert "- [model] tune the regularisation strength" in listed and "- [ensemble] average the predictions" in listed
    assert "- [data] scale the features" not in listed and "deeper trees in the forest" not in listed


def test_a_full_gradient_is_asked_for_again_once_a_step_is_accepted(tmp_path, competition, fake_llm, monkeypatch):
    # A model that cannot write the full gradient's JSON: after two such steps the trace stops asking for it
    # until a step is accepted (each failed one cost a weak model 30-110 s of its 8 minutes).
    script = (Script().add("task_analysis", analysis_reply()).add("draft", full(DRAFT))
              .add("gradient", *[NOT_JSON] * 4, gradient("Tune the regularisation"))
              .add("direct", edit("max_iter=2000", "max_iter=3000", "more iterations"),
                   edit("max_iter=2000", "max_iter=2500", "fewer iterations"),
                   edit('FEATURES = ["mean_texture"]', ALL_FEATURES, "every column"))
              .add("update", edit("LogisticRegression(max_iter=2000)", "LogisticRegression(C=0.5, max_iter=2000)",
                                  "tune the regularisation")))
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=5, acceptance="plain")
    start(config, monkeypatch)
    steps = steps_of(config)
    assert [(s.hypothesis, s.status) for s in steps[1:4]] == [
        ("more iterations", "rejected"), ("fewer iterations", "rejected"), ("every column", "accepted")]
    assert [s.gradient_error is not None for s in steps[1:4]] == [True, True, True]
    assert steps[3].gradient_error.startswith("the last 2 gradients")
    assert len(script.prompts("gradient")) == 5  # steps 2 and 3 (each with its repair re-ask), then step 5
    # Step 4's direct change was accepted, so step 5 diagnoses again, and this gradient is usable.
    assert steps[4].gradient is not None and steps[4].gradient_error is None
    assert steps[4].hypothesis == "Tune the regularisation"


@pytest.mark.parametrize("model", [SMALL, "fake-model"])
def test_a_small_model_changes_scaffolded_code_by_rewriting_fit_predict_in_a_short_prompt(
        tmp_path, competition, fake_llm, monkeypatch, model):
    script = (Script().add("task_analysis", analysis_reply()).add("function", FUNCTIONS).add("draft", FUNCTIONS)
              .add("gradient", gradient("Tune the regularisation")).add("function_gradient", COMPACT)
              .add("update", SCALED)
              .add("function_change", SCALED))
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=2, scaffold="on")
    config = config.model_copy(update={"llm": config.llm.model_copy(update={"model": model})})
    start(config, monkeypatch)
    update = steps_of(config)[1]
    assert update.status != "failed" and update.gradient is not None
    if model == SMALL:
        # fit_predict alone, with the gradient's direction, instead of the whole main.py and its history.
        (prompt,) = script.prompts("function_change")
        assert not script.prompts("update") and "Make this change: Tune the regularisation" in prompt
        assert len(script.prompts("function_gradient")) == 1 and not script.prompts("gradient")
        assert "def fit_predict(X, y, X_new)" in prompt and "# gome scaffold" not in prompt and len(prompt) < 4000
        code = (config.workdir / update.code_dir / "main.py").read_text()
        assert "LogisticRegression(C=0.5, max_iter=3000" in code and code.startswith("# gome scaffold")
    else:
        (prompt,) = script.prompts("update")
        assert not script.prompts("function_change") and "<<<<<<< SEARCH" in prompt
        assert len(script.prompts("gradient")) == 1 and not script.prompts("function_gradient")


@pytest.mark.parametrize(("model", "names_absent"), [(SMALL, False), ("fake-model", True)])
def test_a_small_model_is_told_only_what_is_installed(tmp_path, competition, fake_llm, monkeypatch, model,
                                                      names_absent):
    script = Script().add("task_analysis", analysis_reply()).add("function", FUNCTIONS).add("draft", FUNCTIONS)
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=1, scaffold="on")
    config = config.model_copy(update={"llm": config.llm.model_copy(update={"model": model})})
    start(config, monkeypatch)
    (prompt,) = script.prompts("function" if model == SMALL else "draft")
    assert "scikit-learn" in prompt and ("Not installed (do not import)" in prompt) is names_absent


# fit_predict reads a column that X does not have: the run fails with a KeyError inside the function.
BROKEN = FUNCTIONS.replace("return model.fit(X, y)", 'X = X.drop(columns=["no_such_column"])\n    return model.fit(X, y)')


def test_a_failing_fit_predict_is_fixed_alone_in_a_short_prompt(tmp_path, competition, fake_llm, monkeypatch):
    fixed = FUNCTIONS.replace("Approach: logistic regression on every numeric column", "Change: drop no column")
    script = (Script().add("task_analysis", analysis_reply()).add("function", BROKEN)
              .add("function_fix", fixed))
    fake_llm.set_responder(script)
    config = small(make_config(tmp_path, competition, fake_llm, max_steps=1))
    start(config, monkeypatch)
    (draft,) = steps_of(config)
    assert draft.status == "accepted" and draft.scaffolded and draft.llm_calls == 2  # the function, its fix
    # The fix request held the failing function and the error, not the whole main.py with SEARCH/REPLACE.
    (prompt,) = script.prompts("function_fix")
    assert not script.prompts("debug") and len(prompt) < 5000
    assert 'X.drop(columns=["no_such_column"])' in prompt and "no_such_column" in prompt.split("What went wrong")[1]
    assert "# gome scaffold" not in prompt and "<<<<<<< SEARCH" not in prompt
    code = (config.workdir / draft.code_dir / "main.py").read_text()
    assert "no_such_column" not in code and code.startswith("# gome scaffold")


def test_a_reply_with_fit_predicts_body_alone_is_taken_as_the_function(tmp_path, competition, fake_llm,
                                                                       monkeypatch):
    body_only = ("Change: a random forest\n```python\nfrom sklearn.ensemble import RandomForestClassifier\n\n"
                 "model = RandomForestClassifier(n_estimators=50, random_state=SEED)\n"
                 "model.fit(X, y)\nreturn model.predict_proba(X_new)[:, 1]\n```\n")
    script = (Script().add("task_analysis", analysis_reply()).add("function", FUNCTIONS)
              .add("function_gradient", "1. Use a random forest").add("function_change", body_only))
    fake_llm.set_responder(script)
    config = small(make_config(tmp_path, competition, fake_llm, max_steps=2, acceptance="plain"))
    start(config, monkeypatch)
    draft, update = steps_of(config)
    assert update.status in ("accepted", "rejected") and update.llm_calls == 2  # gradient, function
    code = (config.workdir / update.code_dir / "main.py").read_text()
    assert "def fit_predict(X, y, X_new):\n    from sklearn.ensemble import RandomForestClassifier" in code
    assert "\n    return model.predict_proba(X_new)[:, 1]\n" in code and code.startswith("# gome scaffold")


def test_a_change_without_code_is_re_asked_with_the_functions_first_line(tmp_path, competition, fake_llm,
                                                                         monkeypatch):
    script = (Script().add("task_analysis", analysis_reply()).add("function", FUNCTIONS)
              .add("function_gradient", COMPACT)
              .add("function_change", "Change: tune the regularisation strength.", SCALED))
    fake_llm.set_responder(script)
    config = small(make_config(tmp_path, competition, fake_llm, max_steps=2, acceptance="plain"))
    start(config, monkeypatch)
    update = steps_of(config)[1]
    assert update.status in ("accepted", "rejected") and update.llm_calls == 3  # gradient, no code, the code
    reask = script.prompts("function_change")[1]
    assert "That reply held no code" in reask and "begins with the line `def fit_predict(X, y, X_new):`" in reask
    assert "fit_predict, with this change made: tune the regularisation strength. (and the imports" in reask


def test_a_script_in_reply_to_the_function_request_gives_only_its_fit_predict(tmp_path, competition, fake_llm,
                                                                              monkeypatch):
    # The 0.5B model's usual answer: a script that loads the files itself, around the asked function.
    script_reply = ("Approach: logistic regression\n```python\nimport pandas as pd\n"
                    "from sklearn.linear_model import LogisticRegression\n\n"
                    "train = pd.read_csv('train.csv')\n\n\ndef fit_predict(X, y, X_new):\n"
                    "    return LogisticRegression(max_iter=3000).fit(X, y).predict_proba(X_new)[:, 1]\n\n\n"
                    "print(fit_predict(train, train['target'], train))\n```\n")
    _, config, draft = drafted(tmp_path, competition, fake_llm, monkeypatch, (script_reply,))
    assert draft.status == "accepted" and draft.scaffolded and draft.llm_calls == 1
    code = (config.workdir / draft.code_dir / "main.py").read_text()
    assert code.startswith("# gome scaffold") and "LogisticRegression(max_iter=3000)" in code
    assert "read_csv('train.csv')" not in code and "print(fit_predict(" not in code


def saying(reply: str, summary: str) -> str:
    """A scaffold reply with its `Approach:` line replaced by a fix's `Change:` line."""
    return reply.replace("Approach: logistic regression on every numeric column", f"Change: {summary}")


def drafted(tmp_path, competition, fake_llm, monkeypatch, functions: tuple[str, ...], fixes: tuple[str, ...] = ()):
    """A small model's one-step run whose draft requests get `functions` in turn, and its fix requests `fixes`."""
    script = Script().add("task_analysis", analysis_reply()).add("function", *functions)
    if fixes:
        script.add("function_fix", *fixes)
    fake_llm.set_responder(script)
    config = small(make_config(tmp_path, competition, fake_llm, max_steps=1))
    start(config, monkeypatch)
    (draft,) = steps_of(config)
    return script, config, draft


def fixed_draft(tmp_path, competition, fake_llm, monkeypatch, function: str, *fixes: str):
    """A small model's one-step run whose draft is `function`, and whose fix requests get `fixes` in turn."""
    return drafted(tmp_path, competition, fake_llm, monkeypatch, (function,), fixes)


def test_a_fix_that_copies_the_failing_function_back_is_re_asked(tmp_path, competition, fake_llm, monkeypatch):
    script, config, draft = fixed_draft(tmp_path, competition, fake_llm, monkeypatch, BROKEN,
                                        saying(BROKEN, "nothing"), saying(FUNCTIONS, "drop no column"))
    assert draft.status == "accepted" and draft.llm_calls == 3  # the function, the unchanged copy, the fix
    # The re-ask named the failing line; a reply with the whole function fixed is taken as such.
    reask = script.prompts("function_fix")[1]
    assert "That reply's code is the failing code unchanged. Fix only line " in reask
    assert '```python\nX = X.drop(columns=["no_such_column"])\n```\nThe error: KeyError: ' in reask
    code = (config.workdir / draft.code_dir / "main.py").read_text()
    assert "no_such_column" not in code and "def fit_predict(X, y, X_new):" in code


def test_a_fix_copied_back_unchanged_is_asked_for_its_failing_line_alone(tmp_path, competition, fake_llm,
                                                                        monkeypatch):
    line = '```python\nX = X.drop(columns=["no_such_column"], errors="ignore")\n```\n'
    _, config, draft = fixed_draft(tmp_path, competition, fake_llm, monkeypatch, BROKEN,
                                   "Change: drop the column only if it is there", saying(BROKEN, "nothing"), line)
    # The function; the code-less fix, its re-ask (copied back unchanged) and the line.
    assert draft.status == "accepted" and draft.llm_calls == 4 and draft.runs == 1
    code = (config.workdir / draft.code_dir / "main.py").read_text()
    # The line went in at the failing line's place and indentation; the rest of main.py is as it was.
    assert '\n    X = X.drop(columns=["no_such_column"], errors="ignore")\n    return model.fit(X, y)' in code
    failed = (config.workdir / "traces" / "t0" / "s0001" / "a0-smoke" / "main.py").read_text()
    assert code == failed.replace('columns=["no_such_column"])', 'columns=["no_such_column"], errors="ignore")')
    assert draft.change.endswith("; then fixed: drop the column only if it is there")


def test_a_failure_in_the_scaffold_s_own_lines_is_not_asked_for_as_a_line(tmp_path, competition, fake_llm,
                                                                          monkeypatch):
    # fit_predict returns (predictions, score): the scaffold's check raises, on a line of gome's, not the model's.
    pair = FUNCTIONS.replace("return model.fit(X, y).predict_proba(X_new)[:, 1]",
                             "return model.fit(X, y).predict_proba(X_new)[:, 1], 0.9")
    script, _, draft = fixed_draft(tmp_path, competition, fake_llm, monkeypatch, pair,
                                   saying(pair, "nothing"), saying(FUNCTIONS, "return one array"))
    assert draft.status == "accepted" and draft.llm_calls == 3
    reask = script.prompts("function_fix")[1]
    assert "the reply's code is the failing code unchanged" in reask and "Fix only line" not in reask


def test_a_change_that_copies_the_best_back_unchanged_is_re_asked(tmp_path, competition, fake_llm, monkeypatch):
    same = FUNCTIONS.replace("Approach: logistic regression on every numeric column", "Change: a better model")
    script = (Script().add("task_analysis", analysis_reply()).add("function", FUNCTIONS)
              .add("function_gradient", COMPACT).add("function_change", same, SCALED))
    fake_llm.set_responder(script)
    config = small(make_config(tmp_path, competition, fake_llm, max_steps=2, acceptance="plain"))
    start(config, monkeypatch)
    update = steps_of(config)[1]
    assert update.llm_calls == 3 and "C=0.5" in (config.workdir / update.code_dir / "main.py").read_text()
    reask = script.prompts("function_change")[1]
    assert "the reply's code is the current code unchanged; make the change it names" in reask


def test_a_change_to_code_an_earlier_step_already_ran_is_re_asked(tmp_path, competition, fake_llm, monkeypatch):
    # The second reply is step 2's program again, with another comment and summary: it is not run again.
    again = columns("1", "use the first column").replace("    model = make_pipeline", "    # only the first column\n"
                                                            "    model = make_pipeline")
    script = (Script().add("task_analysis", analysis_reply()).add("function", FUNCTIONS)
              .add("function_gradient", NOT_JSON).add("function_change", columns("1", "one column"), again, SCALED))
    fake_llm.set_responder(script)
    config = small(make_config(tmp_path, competition, fake_llm, max_steps=3, acceptance="plain"))
    start(config, monkeypatch)
    steps = steps_of(config)
    assert [(s.hypothesis, s.status) for s in steps[1:]] == [
        ("one column", "rejected"), ("a stronger regularised logistic regression", "accepted")]
    assert steps[2].llm_calls == 4  # the compact gradient and its re-ask, the repeated program, the change that ran
    reask = script.prompts("function_change")[2]
    assert f"the reply's code is the code step 2 already ran (rejected, {steps[1].score:.6f}); make a different change" \
        in reask


# The 0.5B model's usual unusable draft (real-LLM tier): a script that loads, splits, fits and prints itself.
SCRIPT_WITH_A_MODEL = ("```python\n# Approach: a random forest\nimport pandas as pd\n"
                       "from sklearn.ensemble import RandomForestClassifier\n"
                       "from sklearn.model_selection import train_test_split\n\nX = pd.read_csv('train.csv')\n"
                       "X_train, X_test, y_train, y_test = train_test_split(X, X.target, random_state=SEED)\n"
                       "model = RandomForestClassifier(n_estimators=20, random_state=SEED, n_jobs=THREADS)\n"
                       "model.fit(X_train, y_train)\nprint(model.predict_proba(X_test)[:, 1])\n```\n")


def test_a_script_instead_of_the_draft_function_runs_with_its_model(tmp_path, competition, fake_llm, monkeypatch):
    _, config, draft = drafted(tmp_path, competition, fake_llm, monkeypatch, (SCRIPT_WITH_A_MODEL,))
    # Not asked again: the script's model went into the scaffold's fit_predict, and it ran.
    assert draft.status == "accepted" and draft.scaffolded and draft.llm_calls == 1
    assert draft.hypothesis == "a random forest"
    assert draft.auto_fixes == ["took the model `RandomForestClassifier(n_estimators=20, random_state=SEED, "
                                "n_jobs=THREADS)` of the reply's script into fit_predict"]
    code = (config.workdir / draft.code_dir / "main.py").read_text()
    assert code.startswith("# gome scaffold") and "read_csv('train.csv')" not in code
    assert ("    model = RandomForestClassifier(n_estimators=20, random_state=SEED, n_jobs=THREADS)\n"
            "    model.fit(X, y)\n    return model.predict_proba(X_new)[:, 1]\n") in code


def test_a_small_model_is_re_asked_afresh_without_its_unusable_reply(tmp_path, competition, fake_llm, monkeypatch):
    unusable = "```python\n# Approach: print the data\nprint('no model here')\n```\n"
    script, _, draft = drafted(tmp_path, competition, fake_llm, monkeypatch, (unusable, FUNCTIONS))
    assert draft.status == "accepted" and draft.llm_calls == 2
    first, again = [r for name, r in script.seen if name == "function"]
    # The same request once more, the reason added to it; the reply it would copy is not shown.
    assert [m["role"] for m in again.body["messages"]] == [m["role"] for m in first.body["messages"]]
    assert "no model here" not in again.text and again.text.startswith(first.text)
    assert again.text.endswith("\n\nAn earlier reply to this request could not be applied: the reply's code defines no "
                               "function fit_predict: reply with the whole function, its def line `def fit_predict(X, "
                               "y, X_new):`, its body and the imports it needs, not a script that loads the files "
                               "(main.py already does that). Do not repeat it.")
