"""gome's own fixes (execution/autofix.py): only what is certain, and the code around it left as it was."""

from __future__ import annotations

import sys

import pytest

from gome_agent.execution.autofix import (
    add_missing_imports,
    drop_unexpected_keyword,
    drop_unused_failed_import,
    move_misplaced_imports,
)
from gome_agent.execution.failures import Cause, failure_cause
from gome_agent.execution.static_check import check_code
from tests.scripted_agent import DRAFT


def test_the_imports_gome_is_sure_of_are_added_at_the_top_and_the_rest_left_to_the_model():
    code = ('"""A solution."""\nfrom __future__ import annotations\n# the data\nimport pandas as pd\n'
            "scaler = StandardScaler()\nprint(os.getcwd(), np.pi, pd, scaler, undefined_thing)\n")
    fixed, added = add_missing_imports(code)
    assert added == ["from sklearn.preprocessing import StandardScaler", "import numpy as np", "import os"]
    assert fixed == ('"""A solution."""\nfrom __future__ import annotations\n# the data\n'
                     "from sklearn.preprocessing import StandardScaler\nimport numpy as np\nimport os\n"
                     + code.split("# the data\n")[1])
    assert [str(p) for p in check_code(fixed, python=sys.executable)] == ["line 9: undefined name 'undefined_thing'"]
    # Nothing to add, a decorated first statement, code that does not parse.
    assert add_missing_imports(DRAFT) == (DRAFT, [])
    assert add_missing_imports("@cache\ndef f():\n    return time.time()") == (
        "import time\n@cache\ndef f():\n    return time.time()", ["import time"])
    assert add_missing_imports("def f(:\n    os") == ("def f(:\n    os", [])


def type_error(line: int, message: str) -> Cause:
    return Cause(exception="TypeError", message=message, line=line)


@pytest.mark.parametrize(("line", "message", "after"), [
    # The keyword is the last argument, the first, the only one; the function named or not.
    ("    m = SVC(kernel='linear', random_state=42, threads=4)\n", "SVC.__init__() got an unexpected keyword argument "
     "'threads'", "    m = SVC(kernel='linear', random_state=42)\n"),
    ("    a, b = train_test_split(X, n_jobs=THREADS, test_size=0.2)\n", "got an unexpected keyword argument 'n_jobs'",
     "    a, b = train_test_split(X, test_size=0.2)\n"),
    ("    m = SVC(threads=4)\n", "SVC.__init__() got an unexpected keyword argument 'threads'", "    m = SVC()\n"),
])
def test_a_keyword_the_call_does_not_take_is_removed_from_the_failing_line(line, message, after):
    code = f"def f(X):\n{line}    return m\n"
    fixed, done = drop_unexpected_keyword(code, type_error(2, message))
    assert fixed == f"def f(X):\n{after}    return m\n"
    assert done.startswith("line 2: removed `") and done.endswith("(TypeError)")


def test_a_keyword_spread_over_lines_is_removed_with_its_comma():
    code = "m = make(\n    a=1,\n    threads=4,\n    b=2,\n)\n"
    fixed, _ = drop_unexpected_keyword(code, type_error(1, "make() got an unexpected keyword argument 'threads'"))
    assert fixed == "m = make(\n    a=1,\n    b=2,\n)\n"


@pytest.mark.parametrize(("code", "cause"), [
    # Two calls on the line pass the keyword, and the error does not say which.
    ("x = f(a, k=1) + g(b, k=2)\n", type_error(1, "got an unexpected keyword argument 'k'")),
    # The error names another function than the line's call.
    ("x = f(a, k=1)\n", type_error(1, "g() got an unexpected keyword argument 'k'")),
    # The keyword is not on the failing line (passed through **kwargs elsewhere).
    ("opts = dict(k=1)\nx = f(a, **opts)\n", type_error(2, "f() got an unexpected keyword argument 'k'")),
    # Another TypeError, or no line.
    ("x = f(a, k=1)\n", type_error(1, "f() missing 1 required positional argument: 'b'")),
    ("x = f(a, k=1)\n", Cause(exception="TypeError", message="f() got an unexpected keyword argument 'k'")),
])
def test_nothing_is_changed_when_the_keyword_is_not_certain(code, cause):
    assert drop_unexpected_keyword(code, cause) is None


def test_the_cause_of_a_real_traceback_leads_to_the_fix():
    stderr = ('Traceback (most recent call last):\n  File "/w/main.py", line 3, in <module>\n'
              "    model = LogisticRegression(max_iter=2000, threads=4)\n"
              "TypeError: LogisticRegression.__init__() got an unexpected keyword argument 'threads'\n")
    code = "import x\n\nmodel = LogisticRegression(max_iter=2000, threads=4)\n"
    cause = failure_cause(stderr)
    assert cause is not None and cause.line == 3
    assert drop_unexpected_keyword(code, cause)[0] == "import x\n\nmodel = LogisticRegression(max_iter=2000)\n"


def test_a_common_scikit_learn_name_imported_from_the_wrong_module_is_imported_from_its_own():
    # As the 0.5B model wrote it (two failed runs in one 8-minute run), with a name that is right and an alias.
    code = ("import numpy as np\n"
            "from sklearn.linear_model import RandomForestRegressor, Ridge, ExtraTreesRegressor as ETR  # models\n"
            "def fit_predict(X, y, X_new):\n"
            "    from sklearn.preprocessing import train_test_split\n"
            "    return Ridge().fit(X, y).predict(X_new)\n")
    fixed, done = move_misplaced_imports(code)
    assert fixed == ("import numpy as np\n"
                     "from sklearn.linear_model import Ridge\n"
                     "from sklearn.ensemble import RandomForestRegressor\n"
                     "from sklearn.ensemble import ExtraTreesRegressor as ETR\n"
                     "def fit_predict(X, y, X_new):\n"
                     "    from sklearn.model_selection import train_test_split\n"
                     "    return Ridge().fit(X, y).predict(X_new)\n")
    assert done == ["line 2: imported `ExtraTreesRegressor` from sklearn.ensemble, not sklearn.linear_model",
                    "line 2: imported `RandomForestRegressor` from sklearn.ensemble, not sklearn.linear_model",
                    "line 4: imported `train_test_split` from sklearn.model_selection, not sklearn.preprocessing"]
    exec(compile(fixed, "main.py", "exec"), {})  # the imports are real


@pytest.mark.parametrize("code", [
    "from sklearn.ensemble import RandomForestRegressor\n",  # right already
    "from sklearn.ensemble import XGBClassifier\n",  # not a name gome knows: left to the smoke run
    "x = 1; from sklearn.linear_model import RandomForestRegressor\n",  # not alone on its line
    "def broken(:\n",
])
def test_imports_gome_is_not_sure_of_are_left_as_they_are(code):
    assert move_misplaced_imports(code) == (code, [])


KAPPA = ("import numpy as np\n"
         "from sklearn.metrics import kappa, cohen_kappa_score\n"
         "def fit_predict(X, y, X_new):\n"
         "    from sklearn.metrics import kappa\n"
         "    return np.zeros(len(X_new))\n")


def test_a_name_an_import_cannot_import_is_removed_when_the_code_never_uses_it():
    # As a 0.5B run's drafts imported it (unused), each failing before its first line of work.
    stderr = ("Traceback (most recent call last):\n  File \"main.py\", line 2, in <module>\n"
              "    from sklearn.metrics import kappa, cohen_kappa_score\n"
              "ImportError: cannot import name 'kappa' from 'sklearn.metrics' (/x/sklearn/metrics/__init__.py)\n")
    cause = failure_cause(stderr)
    fixed, done = drop_unused_failed_import(KAPPA, cause)
    assert fixed.splitlines()[1] == "from sklearn.metrics import cohen_kappa_score"
    assert done == "line 2: removed the unused import of `kappa`, which sklearn.metrics does not have"
    # The import alone on its line inside the function goes, and the block keeps a statement.
    inner = Cause("ImportError", "cannot import name 'kappa' from 'sklearn.metrics'", line=4)
    fixed, _ = drop_unused_failed_import(KAPPA, inner)
    assert "    from sklearn.metrics import kappa\n" not in fixed and "    pass\n" in fixed
    exec(compile(fixed.replace("from sklearn.metrics import kappa, ", "from sklearn.metrics import "), "main.py",
                 "exec"), {})


@pytest.mark.parametrize("cause", [
    Cause("ImportError", "cannot import name 'kappa' from 'sklearn.metrics'", line=3),  # no import on that line
    Cause("ModuleNotFoundError", "No module named 'kappa'", line=2),
    Cause("ImportError", "cannot import name 'np' from 'numpy'", line=1),
])
def test_an_import_is_kept_unless_the_failing_name_is_imported_there_and_unused(cause):
    assert drop_unused_failed_import(KAPPA, cause) is None
    used = KAPPA.replace("return np.zeros(len(X_new))", "return kappa(X_new)")
    assert drop_unused_failed_import(used, Cause("ImportError", "cannot import name 'kappa' from 'x'", line=2)) is None
