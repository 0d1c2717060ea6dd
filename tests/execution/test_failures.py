from gome_agent.execution.failures import Cause, failure_cause

VALUE_ERROR = '''loading data
Traceback (most recent call last):
  File "/run/traces/t0/s0002/a0/main.py", line 12, in <module>
    X = train.values.astype(float)
  File "/venv/lib/python3.11/site-packages/pandas/core/generic.py", line 6643, in astype
    new_data = self._mgr.astype(dtype=dtype, copy=copy, errors=errors)
ValueError: could not convert string to float: 'w0119'
'''


def test_the_exception_and_the_solution_line_it_came_from():
    cause = failure_cause(VALUE_ERROR)
    assert cause == Cause("ValueError", "could not convert string to float: 'w0119'", 12,
                          "X = train.values.astype(float)")
    assert str(cause) == ("ValueError: could not convert string to float: 'w0119' "
                          "(main.py line 12: `X = train.values.astype(float)`)")


def test_a_missing_module_and_a_dotted_exception_name():
    missing = 'Traceback (most recent call last):\n  File "main.py", line 3, in <module>\n    import lightgbm\n' \
              "ModuleNotFoundError: No module named 'lightgbm'\n"
    assert str(failure_cause(missing)) == "ModuleNotFoundError: No module named 'lightgbm' (main.py line 3: `import lightgbm`)"
    dotted = 'Traceback (most recent call last):\n  File "x/main.py", line 9, in fit\n    bst = lgb.train(p, d)\n' \
             "lightgbm.basic.LightGBMError: Check failed: num_class > 1\n"
    cause = failure_cause(dotted)
    assert cause is not None and cause.exception == "lightgbm.basic.LightGBMError" and cause.line == 9


def test_the_last_traceback_counts_when_one_exception_led_to_another():
    chained = VALUE_ERROR + "\nDuring handling of the above exception, another exception occurred:\n\n" + \
        'Traceback (most recent call last):\n  File "main.py", line 20, in <module>\n    raise SystemExit(2)\nSystemExit: 2\n'
    cause = failure_cause(chained)
    assert cause is not None and (cause.exception, cause.message, cause.line) == ("SystemExit", "2", 20)


def test_no_traceback_means_no_cause_and_long_messages_are_cut():
    assert failure_cause("Killed\n") is None
    assert failure_cause("") is None
    long = 'Traceback (most recent call last):\n  File "main.py", line 1, in <module>\n    f()\n' \
           "KeyError: '" + "x" * 1000 + "'\n"
    cause = failure_cause(long)
    assert cause is not None and cause.line == 1 and len(cause.message) <= 304 and cause.message.endswith("...")
