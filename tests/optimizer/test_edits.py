import re

import pytest

from gome_agent.optimizer.edits import (
    EditError,
    apply_edits,
    diff_size,
    function_lines,
    function_source,
    line_reply,
    new_code,
    parse_reply,
)

CODE = '''import pandas as pd

def load():
    return pd.read_csv("input/train.csv")

model = "logreg"
print(model)
'''


def test_search_replace_applies_in_order():
    reply = '''Change: use lightgbm and print more
<<<<<<< SEARCH
model = "logreg"
=======
model = "lightgbm"
>>>>>>> REPLACE
<<<<<<< SEARCH
print(model)
=======
print("model:", model)
>>>>>>> REPLACE
'''
    code, summary = new_code(reply, CODE)
    assert summary == "use lightgbm and print more"
    assert 'model = "lightgbm"' in code and 'print("model:", model)' in code
    assert code.startswith("import pandas as pd\n")


def test_full_file_replaces_everything():
    reply = "Approach: gradient boosting\n```python\nprint('hi')\n```\nand also\n```\nls\n```"
    code, summary = new_code(reply, None)
    assert code == "print('hi')\n" and summary == "gradient boosting"


def test_trailing_whitespace_differences_still_match():
    code = apply_edits("a = 1   \nb = 2\n", parse_reply("<<<<<<< SEARCH\na = 1\n=======\na = 3\n>>>>>>> REPLACE").edits)
    assert code == "a = 3\nb = 2\n"


def test_unmatched_block_is_named():
    reply = "<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE\n<<<<<<< SEARCH\nnot in code\n=======\ny\n>>>>>>> REPLACE"
    with pytest.raises(EditError, match="edit block 1.*does not match"):
        new_code(reply, CODE)


def test_ambiguous_block_is_named():
    code = "x = 1\nx = 1\n"
    with pytest.raises(EditError, match="occurs 2 times"):
        apply_edits(code, parse_reply("<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE").edits)


def test_no_code_and_syntax_errors():
    with pytest.raises(EditError, match="neither"):
        parse_reply("I think you should use LightGBM.")
    with pytest.raises(EditError, match="not valid Python"):
        new_code("```python\ndef broken(:\n```", None)
    with pytest.raises(EditError, match="no current main.py"):
        new_code("<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE", None)


def test_search_inside_one_line():
    code = "model = Model(depth=3).fit(X)\n"
    edits = parse_reply("<<<<<<< SEARCH\nModel(depth=3)\n=======\nModel(depth=5)\n>>>>>>> REPLACE").edits
    assert apply_edits(code, edits) == "model = Model(depth=5).fit(X)\n"


def test_search_does_not_match_inside_a_longer_identifier():
    code = "n_max = 100\nprint(n_max)\n"
    edits = parse_reply("<<<<<<< SEARCH\nmax = 100\n=======\nmax = 200\n>>>>>>> REPLACE").edits
    with pytest.raises(EditError, match="edit block 1.*does not match main.py exactly, as whole lines"):
        apply_edits(code, edits)


def test_search_of_a_whole_line_does_not_match_the_tail_of_another_line():
    code = "limit = n_max = 100\nmax = 100\n"
    edits = parse_reply("<<<<<<< SEARCH\nmax = 100\n=======\nmax = 200\n>>>>>>> REPLACE").edits
    assert apply_edits(code, edits) == "limit = n_max = 100\nmax = 200\n"


def test_indentation_differences_match_and_the_replacement_is_reindented():
    code = "def fit():\n    model = A()\n    model.fit(X)\n    return model\n"
    reply = "<<<<<<< SEARCH\nmodel = A()\nmodel.fit(X)\n=======\nmodel = B()\nmodel.fit(X, y)\n>>>>>>> REPLACE"
    assert apply_edits(code, parse_reply(reply).edits) == (
        "def fit():\n    model = B()\n    model.fit(X, y)\n    return model\n"
    )


def test_a_reply_with_an_incomplete_block_applies_nothing():
    reply = ("Change: two things\n<<<<<<< SEARCH\nmodel = \"logreg\"\n=======\nmodel = \"lightgbm\"\n>>>>>>> REPLACE\n"
             "<<<<<<< SEARCH\nprint(model)\n=======\nprint(\"model:\"")
    with pytest.raises(EditError, match="1 of the reply's 2 edit blocks are incomplete.*nothing was applied"):
        new_code(reply, CODE)


def test_diff_size_counts_lines_and_names_the_region():
    old = "a\nb\nc\nd\n"
    size = diff_size(old, "a\nB\nB2\nc\nd\n")
    assert (size.added, size.removed, size.first, size.last) == (2, 1, 2, 3)
    assert str(size) == "+2/-1 lines at lines 2-3"
    assert str(diff_size(old, old)) == "+0/-0 lines"
    assert str(diff_size(old, "a\nb\nc\n")) == "+0/-1 lines at line 4"


SKELETON = '''import os


def fit_predict(X, y, X_new):
    """Train on X, y; predict X_new."""
    raise NotImplementedError


def main():
    print(fit_predict(1, 2, 3))


if __name__ == "__main__":
    main()
'''


def test_a_reply_that_only_defines_names_is_refused_with_what_to_write():
    # The 0.5B model's telco-churn draft: imports and a lambda, which replace no function of the scaffold
    # and, taken as the whole main.py, ran, wrote nothing and cost a smoke run and a debug round.
    reply = ("Approach: logistic regression\n```python\nimport numpy as np\nfrom sklearn.linear_model import "
             "LogisticRegression\n\nfit_predict = lambda X, y, X_new: LogisticRegression().fit(X, y).predict(X_new)\n```\n")
    with pytest.raises(EditError, match=r"only defines names and does nothing when run.*`fit_predict = \.\.\.` is no "
                                        r"function definition: write `def fit_predict\(\.\.\.\):`"):
        new_code(reply, SKELETON)
    with pytest.raises(EditError, match="only defines names"):
        new_code(reply, None)
    # The same model as a def is spliced in, and a whole program is taken as it is.
    code, _ = new_code(reply.replace("fit_predict = lambda X, y, X_new:", "def fit_predict(X, y, X_new):\n    return"),
                       SKELETON)
    assert "LogisticRegression().fit(X, y).predict(X_new)" in code and code.rstrip().endswith("main()")
    program = "```python\nimport sys\nprint(sys.argv)\n```\n"
    assert new_code(program, SKELETON)[0] == "import sys\nprint(sys.argv)\n"


def test_function_source_is_the_whole_function():
    assert function_source(SKELETON, "fit_predict") == (
        'def fit_predict(X, y, X_new):\n    """Train on X, y; predict X_new."""\n    raise NotImplementedError')
    assert function_source(SKELETON, "make_features") is None


def test_a_body_without_its_def_line_becomes_the_asked_function():
    from gome_agent.optimizer.edits import as_function, function_reply

    current = ("import numpy as np\n\n\n@cache\ndef fit_predict(X, y,\n                X_new):\n    \"\"\"Doc.\"\"\"\n"
               "    return 0\n\n\nprint(fit_predict(1, 2, 3))\n")
    body = "    model = make(X)\n    return model.predict(X_new)\n"
    assert as_function(body, current, "fit_predict") == (
        "@cache\ndef fit_predict(X, y,\n                X_new):\n    model = make(X)\n    return model.predict(X_new)\n")
    # A whole program (no top-level return), the function itself, or a function current lacks: not a body.
    assert as_function("x = 1\nprint(x)\n", current, "fit_predict") is None
    assert as_function("def fit_predict(X, y, X_new):\n    return 1\n", current, "fit_predict") is None
    assert as_function(body, current, "make_features") is None
    reply = f"Change: forest\n```python\n{body}```\n"
    code, summary = function_reply(reply, current, "fit_predict")
    assert summary == "forest" and code.startswith("import numpy") and code.endswith("print(fit_predict(1, 2, 3))\n")
    assert "                X_new):\n    model = make(X)\n    return model.predict(X_new)\n" in code


SCAFFOLD = ("import pandas as pd\n\n\ndef fit_predict(X, y, X_new):\n    \"\"\"Doc.\"\"\"\n    raise NotImplementedError\n\n\n"
            "train = pd.read_csv('input/train.csv')\nprint(fit_predict(train, train.y, train))\n")


def test_a_reply_asked_for_one_function_gives_only_its_definitions_and_imports():
    from gome_agent.optimizer.edits import function_reply

    script = ("Approach: forest\n```python\nimport numpy as np\nfrom sklearn.ensemble import RandomForestClassifier\n\n"
              "X = pd.read_csv('train.csv')\n\n\ndef helper(a):\n    return np.asarray(a)\n\n\n"
              "def fit_predict(X, y, X_new):\n    return RandomForestClassifier().fit(helper(X), y).predict(X_new)\n\n\n"
              "print(fit_predict(X, X.y, X))\n```\n")
    code, summary = function_reply(script, SCAFFOLD, "fit_predict")
    assert summary == "forest" and "read_csv('train.csv')" not in code and code.count("print(") == 1
    assert "import numpy as np\nfrom sklearn.ensemble import RandomForestClassifier\n" in code
    assert "def helper(a):" in code and "RandomForestClassifier().fit(helper(X), y)" in code
    assert code.endswith("train = pd.read_csv('input/train.csv')\nprint(fit_predict(train, train.y, train))\n")


@pytest.mark.parametrize(("reply", "problem"), [
    ("Approach: x\n```python\nimport numpy as np\nX = np.zeros(3)\nprint(X)\n```\n",
     "defines no function fit_predict: reply with the whole function, its def line `def fit_predict(X, y, X_new):`"),
    ("Approach: a forest", "holds no ```python block"),
    ("Approach: x\n```python\ndef fit_predict(X, y, X_new:\n    return 1\n```\n", "is not valid Python: line 1"),
])
def test_a_reply_asked_for_one_function_without_it_is_refused_with_the_cause(reply, problem):
    from gome_agent.optimizer.edits import function_reply

    with pytest.raises(EditError, match=re.escape(problem)):
        function_reply(reply, SCAFFOLD, "fit_predict")


def test_a_function_reply_without_its_opening_fence_is_still_taken():
    from gome_agent.optimizer.edits import function_reply

    reply = ("Change: boosting\ndef fit_predict(X, y, X_new):\n    return GradientBoostingRegressor().fit(X, y)"
             ".predict(X_new)\n```\nThis uses boosting.")
    code, summary = function_reply(reply, SCAFFOLD, "fit_predict")
    assert summary == "boosting" and "GradientBoostingRegressor().fit(X, y)" in code and "This uses" not in code


def test_a_function_reply_whose_block_begins_with_its_change_comment():
    # The one-function prompts ask for the code first, its change as the block's first line (a comment).
    from gome_agent.optimizer.edits import function_reply

    reply = ("```python\n# Change: more trees\nfrom sklearn.ensemble import RandomForestRegressor\n\n\n"
             "def fit_predict(X, y, X_new):\n    return RandomForestRegressor(n_estimators=500).fit(X, y)"
             ".predict(X_new)\n```")
    code, summary = function_reply(reply, SCAFFOLD, "fit_predict")
    assert summary == "more trees"
    assert "RandomForestRegressor(n_estimators=500)" in code and "# Change" not in code
    assert code.count("def fit_predict(") == 1


def test_a_line_reply_in_words_replaces_the_named_text_on_that_line():
    code = "def f(X):\n    m = SVC(kernel='linear', threads=4)\n    return m\n"
    said = "Change: Replace `, threads=4` with `` in line 2."
    assert line_reply(said, code, 2) == "def f(X):\n    m = SVC(kernel='linear')\n    return m\n"
    # The named text is not on the failing line: nothing is applied.
    with pytest.raises(EditError, match="is not \\(once\\) on line 2"):
        line_reply("Replace `return m` with `return None`", code, 2)
    with pytest.raises(EditError, match="no ```python block with the new line 2"):
        line_reply("Change: make sure the model takes that argument.", code, 2)


@pytest.mark.parametrize(("reply", "expected"), [
    ("```python\nm = SVC()\n```", "    m = SVC()\n"),  # indented as the failing line was
    ("```python\n        m = SVC()\n        m.probability = True\n```", "    m = SVC()\n    m.probability = True\n"),
    ("m = SVC(random_state=0)", "    m = SVC(random_state=0)\n"),  # unfenced code
    ("```python\n```", ""),  # an empty block deletes the line
])
def test_a_line_reply_replaces_the_failing_line_alone(reply, expected):
    code = "def f(X):\n    m = SVC(threads=4)\n    return m\n"
    assert line_reply(reply, code, 2) == f"def f(X):\n{expected}    return m\n"
    assert function_lines("import os\n\n@dec\n" + code, "f") == (3, 6)


def test_a_line_reply_that_breaks_the_code_is_refused():
    code = "def f(X):\n    m = SVC(threads=4)\n    return m\n"
    with pytest.raises(EditError, match="in place of line 2, main.py is not valid Python"):
        line_reply("```python\nif m:\n```", code, 2)
    with pytest.raises(EditError, match="main.py has no line 9"):
        line_reply("```python\nx = 1\n```", code, 9)


# The 0.5B model's script in reply to "write fit_predict" (real-LLM tier, 2026-12-06): it loads, splits, fits and
# prints by itself, with an import that does not exist (accuracy_score is in sklearn.metrics).
SCRIPT = ("```python\n# Approach: Random Forest with 300 trees\nimport pandas as pd\n"
          "from sklearn.model_selection import train_test_split, accuracy_score\n"
          "from sklearn.ensemble import RandomForestClassifier\n\nX = pd.read_csv('train.csv')\n"
          "X_train, X_test, y_train, y_test = train_test_split(X, X.y, test_size=0.2, random_state=SEED)\n"
          "model = RandomForestClassifier(n_estimators=300, random_state=SEED, n_jobs=THREADS)\n"
          "model.fit(X_train, y_train)\nprint(model.predict_proba(X_test)[:, 1])\n```\n")
PROBABILITY = "model.predict_proba(X_new)[:, 1]"


def test_a_script_instead_of_the_draft_function_gives_it_its_model():
    from gome_agent.optimizer.edits import script_model

    taken = script_model(SCRIPT, SCAFFOLD, "fit_predict", PROBABILITY)
    assert taken is not None
    assert taken.estimator == "RandomForestClassifier(n_estimators=300, random_state=SEED, n_jobs=THREADS)"
    assert function_source(taken.code, "fit_predict") == (
        'def fit_predict(X, y, X_new):\n    """Doc."""\n'
        "    model = RandomForestClassifier(n_estimators=300, random_state=SEED, n_jobs=THREADS)\n"
        "    model.fit(X, y)\n    return model.predict_proba(X_new)[:, 1]")
    # Only the estimator's import comes along; the script's loading, splitting and printing stay out.
    assert taken.code.startswith("import pandas as pd\nfrom sklearn.ensemble import RandomForestClassifier\n")
    assert "train_test_split" not in taken.code and "accuracy_score" not in taken.code
    assert taken.code.endswith("train = pd.read_csv('input/train.csv')\nprint(fit_predict(train, train.y, train))\n")
    # Without a return expression for the task (several label columns), a draft gets nothing from a script.
    assert script_model(SCRIPT, SCAFFOLD, "fit_predict", None) is None


def test_a_script_instead_of_a_changed_function_changes_only_its_estimator():
    from gome_agent.optimizer.edits import script_model

    best = ("import numpy as np\nfrom sklearn.linear_model import LogisticRegression\n\n\n"
            "def fit_predict(X, y, X_new):\n    clf = LogisticRegression(\n        C=1.0,\n    )\n"
            "    clf.fit(np.log1p(X), y)\n    return clf.predict_proba(np.log1p(X_new))[:, 1]\n\n\nprint(1)\n")
    chained = ("Change: boosting\n```python\nfrom sklearn.ensemble import GradientBoostingClassifier as GBC\n"
               "gbm = GBC(learning_rate=0.05, random_state=SEED).fit(X_train, y_train)\nprint(gbm.score(X_test, y_test))\n```")
    taken = script_model(chained, best, "fit_predict", PROBABILITY)
    assert taken is not None and taken.estimator == "GBC(learning_rate=0.05, random_state=SEED)"
    # The function's own variable, fit and predictions stay; the estimator over three lines became one line.
    assert function_source(taken.code, "fit_predict") == (
        "def fit_predict(X, y, X_new):\n    clf = GBC(learning_rate=0.05, random_state=SEED)\n"
        "    clf.fit(np.log1p(X), y)\n    return clf.predict_proba(np.log1p(X_new))[:, 1]")
    assert "from sklearn.ensemble import GradientBoostingClassifier as GBC\n" in taken.code
    assert taken.code.endswith("\n\n\nprint(1)\n")


@pytest.mark.parametrize("reply", [
    # The estimator's argument is computed by the script: taken alone, it would be an undefined name.
    SCRIPT.replace("n_estimators=300", "n_estimators=n_trees"),
    # A model that is never fitted, and no code at all.
    SCRIPT.replace("model.fit(X_train, y_train)\n", ""),
    "Approach: a random forest",
    "```python\nmodel = RandomForestClassifier(\n```",
])
def test_a_script_without_a_usable_model_gives_nothing(reply):
    from gome_agent.optimizer.edits import script_model

    assert script_model(reply, SCAFFOLD, "fit_predict", PROBABILITY) is None
