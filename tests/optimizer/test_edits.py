import pytest

from gome_agent.optimizer.edits import EditError, apply_edits, new_code, parse_reply

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
