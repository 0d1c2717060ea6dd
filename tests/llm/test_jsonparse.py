"""Lenient JSON extraction from LLM replies and readable validation errors."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from gome_agent.llm import JSONExtractError, extract_json_object, parse_json_as


class Plan(BaseModel):
    step: str
    budget_s: int


def test_plain_object() -> None:
    assert extract_json_object('{"a": 1}') == {"a": 1}


def test_fenced_object_with_prose() -> None:
    text = 'Sure! Here it is:\n```json\n{"a": {"b": [1, 2]}}\n```\nLet me know.'
    assert extract_json_object(text) == {"a": {"b": [1, 2]}}


def test_unlabelled_fence() -> None:
    assert extract_json_object('```\n{"a": 1}\n```') == {"a": 1}


def test_prose_with_braces_before_the_object() -> None:
    text = 'Use a dict like {this}. Answer: {"a": "x"} done'
    assert extract_json_object(text) == {"a": "x"}


def test_raw_newlines_inside_strings() -> None:
    assert extract_json_object('{"code": "import os\nprint(1)"}') == {"code": "import os\nprint(1)"}


def test_trailing_commas() -> None:
    assert extract_json_object('{"a": [1, 2,], "b": {"c": 3,},}') == {"a": [1, 2], "b": {"c": 3}}


def test_commas_inside_strings_are_kept() -> None:
    assert extract_json_object('{"a": "x,}", "b": [1,],}') == {"a": "x,}", "b": [1]}


def test_fence_inside_a_string_falls_back_to_the_whole_text() -> None:
    text = '```json\n{"code": "```python\\nprint(1)\\n```", "n": 1}\n```'
    assert extract_json_object(text) == {"code": "```python\nprint(1)\n```", "n": 1}


def test_no_object() -> None:
    with pytest.raises(JSONExtractError, match="no JSON object"):
        extract_json_object("I think it is overfitting.")


def test_cut_off_object_is_reported_and_inner_objects_are_not_returned() -> None:
    with pytest.raises(JSONExtractError, match="cut off"):
        extract_json_object('{"outer": {"inner": 1}, "more": "unfinished')


def test_broken_object_error_names_the_problem() -> None:
    with pytest.raises(JSONExtractError, match="not valid JSON"):
        extract_json_object('{"a": 1 "b": 2} trailing prose')


def test_parse_as_schema() -> None:
    assert parse_json_as('{"step": "fit", "budget_s": 60}', Plan) == Plan(step="fit", budget_s=60)


def test_validation_error_lists_each_field() -> None:
    with pytest.raises(ValueError) as caught:
        parse_json_as('{"budget_s": "soon"}', Plan)
    message = str(caught.value)
    assert "schema Plan" in message
    assert "step: Field required" in message
    assert "budget_s: Input should be a valid integer" in message
    assert "errors.pydantic.dev" not in message
