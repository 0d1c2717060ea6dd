"""The static checks of a solution's code: each kind of problem, with its line, and no alarm on
realistic correct code."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gome_agent.execution import static_check
from gome_agent.execution.static_check import check_code, modules_found
from tests.scripted_agent import DRAFT

PYTHON = sys.executable
FEATURES = ["id", "mean_radius", "mean_texture", "mean_area"]
TABLES = {
    "train.csv": [*FEATURES, "target"],
    "test.csv": FEATURES,
    "sample_submission.csv": ["id", "target"],
    "holdout.csv": FEATURES,
    "folds.csv": ["id", "fold"],
    "submission.csv": ["id", "target"],
}

# Typical model-written code: sklearn and pandas, f-strings, comprehensions, an optional import,
# a star import, __file__, helper functions taking frames, groupby features, merges, folds.
REALISTIC = '''import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import *
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

try:
    import lightgbm as lgb
except ImportError:
    lgb = None
try:
    import gome_absent_accelerator
    HAVE_ACCEL = True
except (ImportError, OSError):
    HAVE_ACCEL = False

HERE = Path(__file__).resolve().parent
DATA = HERE / "input"
SEED = int(os.environ.get("GOME_SEED", 0))
train = pd.read_csv(DATA / "train.csv")
test = pd.read_csv(os.path.join("input", "test.csv"))
folds = pd.read_csv(os.environ.get("GOME_FOLDS", "folds.csv"))
train = train.merge(folds, on="id")
held = pd.read_csv(os.environ["GOME_HOLDOUT"]) if "GOME_HOLDOUT" in os.environ else None
TARGET = "target"
base = [c for c in test.columns if c != "id"]


def add_features(df):
    df = df.copy()
    df["radius_x_texture"] = df["mean_radius"] * df["mean_texture"]
    for col in ["mean_radius", "mean_area"]:
        df[f"{col}_log"] = np.log1p(df[col])
        df[col + "_sq"] = df[col] ** 2
    df["area_rank"] = df["mean_area"].rank(pct=True)
    return df


train, test = add_features(train), add_features(test)
stats = train.groupby("fold")["mean_radius"].agg(["mean", "std"]).reset_index()
train = train.merge(stats, on="fold", how="left")
features = base + ["radius_x_texture", "area_rank"] + [f"{c}_log" for c in ["mean_radius", "mean_area"]]
train["mean_radius_log"].describe()
dummies = pd.get_dummies(train["fold"], prefix="fold")
scores = []
for k in sorted(train["fold"].unique()):
    fit, val = train[train["fold"] != k], train[train["fold"] == k]
    scaler = StandardScaler().fit(fit[features])
    model = LogisticRegression(max_iter=1000, random_state=SEED).fit(scaler.transform(fit[features]), fit[TARGET])
    scores.append(roc_auc_score(val[TARGET], model.predict_proba(scaler.transform(val[features]))[:, 1]))
    print(f"fold {k}: {scores[-1]:.4f}", file=sys.stderr)
model = LogisticRegression(max_iter=1000).fit(train[features], train[TARGET])
sub = pd.read_csv("input/sample_submission.csv")
sub["target"] = model.predict_proba(test[features])[:, 1]
sub.to_csv("submission.csv", index=False)
if held is not None:
    held = add_features(held)
    pd.DataFrame({"id": held["id"], "target": model.predict_proba(held[features])[:, 1]}).to_csv(
        os.environ["GOME_HOLDOUT_PREDICTIONS"], index=False)
summary = {"score": float(np.mean(scores)), "folds": scores, "models": {"logreg": float(np.mean(scores))}}
json.dump(summary, open("scores.json", "w"))
check = pd.read_csv("submission.csv")
assert check.shape[0] == test.shape[0] and check.loc[:, ["id", "target"]].notna().all().all()
print("done", {k: v for k, v in summary.items() if k != "folds"}, len(dummies.columns))
'''


def problems(code: str, **kwargs) -> list[str]:
    return [str(p) for p in check_code(code, **kwargs)]


def test_realistic_correct_code_raises_no_alarm():
    assert problems(DRAFT, python=PYTHON, tables=TABLES) == []
    assert problems(REALISTIC, python=PYTHON, tables=TABLES) == []


def test_a_syntax_error_is_reported_with_its_line_and_nothing_else():
    code = "import pandas as pd\nx = undefined_name\nfor i in range(3)\n    print(i)\n"
    assert problems(code, python=PYTHON, tables=TABLES) == [
        "line 3: SyntaxError: expected ':': `for i in range(3)`"]
    assert problems("def f():\n    pass\nreturn 1\n") == ["line 3: SyntaxError: 'return' outside function: `return 1`"]


def test_a_syntax_error_of_gomes_parser_that_the_solutions_python_accepts_is_not_reported(tmp_path):
    # Stands for a newer Python than gome's: it compiles what it is given (and knows no modules).
    newer = tmp_path / "python3.99"
    newer.write_text("#!/bin/sh\ncat > /dev/null\nexit 0\n")
    newer.chmod(0o755)
    code = "type Vector = list[float]\nprint(Vector)\n"  # PEP 695: a syntax error before Python 3.12
    if sys.version_info < (3, 12):
        assert problems(code, python=PYTHON) == ["line 1: SyntaxError: invalid syntax: `type Vector = list[float]`"]
    assert problems(code, python=str(newer)) == []


def test_undefined_names_and_missing_imports_say_which_import_is_missing():
    code = DRAFT.replace("import os\n", "").replace("from sklearn.model_selection import train_test_split\n", "")
    code += "total = 0\ndef f():\n    print(total)\n    total = 1\nprint(np.mean([1]), undefined_thing)\n"
    assert problems(code, python=PYTHON, tables=TABLES) == [
        "line 10: undefined name 'train_test_split' (missing `from sklearn.model_selection import train_test_split`?)",
        "line 15: undefined name 'os', also on lines 16, 18 (missing `import os`?)",
        "line 23: local variable 'total' is used before it is assigned",
        "line 25: undefined name 'np' (missing `import numpy as np`?)",
        "line 25: undefined name 'undefined_thing'",
    ]


def test_imports_of_modules_the_solutions_python_lacks_are_reported_once():
    code = "import gome_absent_module\nimport json\nimport pandas as pd\nfrom gome_absent_module.sub import x\n" \
           "from . import sibling\nprint(json, pd, x, sibling)\n"
    assert problems(code, python=PYTHON) == [
        f"line 1: module 'gome_absent_module' is not installed in the solutions' Python ({PYTHON}); use an "
        "installed package (see the machine's description) instead of installing one"]
    # Without the interpreter to ask, nothing is reported about modules.
    assert problems(code) == []


def test_optional_imports_and_code_that_installs_its_packages_are_not_reported():
    guarded = "try:\n    import gome_absent_module\nexcept ImportError:\n    gome_absent_module = None\n"
    bare = "try:\n    from gome_absent_module import thing\nexcept:\n    thing = None\n"
    installs = ("import subprocess, sys\nsubprocess.run([sys.executable, '-m', 'pip', 'install', 'gome-absent'])\n"
                "import gome_absent_module\n")
    for code in (guarded, bare, installs):
        assert problems(code, python=PYTHON) == []


def test_the_interpreter_is_asked_once_per_module_name(monkeypatch):
    # Another spelling of the interpreter's path is another cache entry, so this test starts empty.
    python = os.path.join(os.path.dirname(PYTHON), ".", os.path.basename(PYTHON))
    calls: list[list[str]] = []
    real_run = subprocess.run

    def counting_run(command, *args, **kwargs):
        calls.append(list(command))
        return real_run(command, *args, **kwargs)

    monkeypatch.setattr(static_check.subprocess, "run", counting_run)
    assert modules_found(str(python), ["pandas", "gome_absent_module"]) == {"pandas": True, "gome_absent_module": False}
    assert modules_found(str(python), ["gome_absent_module", "pandas"]) == {"pandas": True, "gome_absent_module": False}
    assert modules_found(str(python), ["numpy"]) == {"numpy": True}
    assert [c[3:] for c in calls] == [["gome_absent_module", "pandas"], ["numpy"]]


def test_an_interpreter_that_cannot_be_asked_reports_nothing(tmp_path):
    assert modules_found(str(tmp_path / "no-python"), ["pandas"]) is None
    assert problems("import gome_absent_module\n", python=str(tmp_path / "no-python")) == []


def test_column_names_no_table_has_are_reported_where_they_are_looked_up():
    code = '''import pandas as pd
train = pd.read_csv("input/train.csv", usecols=["id", "mean_radius", "targte"])
test = pd.read_csv("input/test.csv")
held = pd.read_csv(__import__("os").environ["GOME_HOLDOUT"])
X = train.drop(columns=["target", "Target"])
y = train["label"]
cols = test.loc[:, ["mean_radius", "mean_smoothness"]]
groups = train.groupby("clazz").size()
ordered = test.sort_values(by="mean_radius").dropna(subset=["mean_area", "area"])
print(X, y, cols, groups, ordered, held)
'''
    assert problems(code, tables=TABLES) == [
        "line 2: column 'targte' is not a column of train.csv (did you mean 'target'?)",
        "line 5: column 'Target' is not a column of train.csv (did you mean 'target'?)",
        "line 6: column 'label' is not a column of train.csv",
        "line 7: column 'mean_smoothness' is not a column of test.csv",
        "line 8: column 'clazz' is not a column of train.csv",
        "line 9: column 'area' is not a column of test.csv (did you mean 'mean_area'?)",
    ]
    # A frame read from a path that names no table (an environment variable) is held against all of them.
    assert problems('import os\nimport pandas as pd\nheld = pd.read_csv(os.environ["GOME_HOLDOUT"])\n'
                    'print(held["mean_radius"], held["no_such_column"])\n', tables=TABLES) == [
        "line 4: column 'no_such_column' is not a column of any input table"]


def test_columns_the_code_may_have_made_itself_are_not_reported():
    code = '''import pandas as pd
train = pd.read_csv("input/train.csv")
extra = pd.read_csv("input/extra.txt", sep=" ")
train["ratio"] = train["mean_radius"] / train["mean_area"]
train = train.assign(area_sq=train["mean_area"] ** 2)
train = train.rename(columns={"mean_texture": "texture"})
for c in ["mean_radius", "mean_area"]:
    train[f"{c}_log"] = train[c]
    train["z_" + c] = train[c]
train.eval("combo = mean_radius + mean_area", inplace=True)
merged = train.merge(pd.read_csv("input/test.csv"), on="id")
print(train["ratio"], train["area_sq"], train["texture"], train["mean_area_log"], train["z_mean_radius"],
      train["combo"], merged["mean_radius_x"], train["index"], extra["anything"], train["no_such_" + "column"])
'''
    assert problems(code, tables=TABLES) == []


def test_columns_are_not_checked_when_some_table_is_unknown_or_names_are_renamed_opaquely():
    lookup = 'import pandas as pd\ntrain = pd.read_csv("input/train.csv")\nprint(train["label"])\n'
    assert problems(lookup, tables=TABLES) == ["line 3: column 'label' is not a column of train.csv"]
    assert problems(lookup, tables=None) == []
    renamed = lookup.replace("print(", "train.columns = [c.lower() for c in train.columns]\nprint(")
    assert problems(renamed, tables=TABLES) == []
    # Not a frame of the input: built by the code, a parameter, a series, a dict.
    others = '''import pandas as pd
train = pd.read_csv("input/train.csv")
frame = pd.DataFrame({"a": [1]})
series = train["target"]
params = {"lr": 0.1}
def f(df):
    return df["whatever"]
print(frame["b"], series["row_label"], params["depth"], f(train), train.iloc[0]["x"])
'''
    assert problems(others, tables=TABLES) == []


@pytest.mark.parametrize("code", [
    "import pandas as pd\ntrain = pd.read_csv('input/train.csv')\ntrain = 5\nprint(train['label'])\n",
    "import pandas as pd\nfor train in [pd.read_csv('input/train.csv')]:\n    print(train['label'])\n",
    "import io\nimport pandas as pd\ntrain = pd.read_csv(io.StringIO('a,b'))\nprint(train['label'])\n",
])
def test_a_name_is_a_frame_only_if_every_binding_makes_it_one(code):
    assert problems(code, tables=TABLES) == []
