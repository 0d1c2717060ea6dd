"""Shared pytest fixtures."""

from collections.abc import Iterator

import pytest

from tests.fake_llm import FakeLLMServer


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    """A started fake LLM server (OpenAI Chat/Responses and Anthropic Messages), closed after the test."""
    with FakeLLMServer() as server:
        yield server
