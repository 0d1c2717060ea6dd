"""A step's meter books all the time of its LLM calls as LLM time: waits, retries and failed calls."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gome_agent.errors import LLMError
from gome_agent.llm import LLMClient, LLMConfig, Message, build_provider
from gome_agent.llm.types import Completion, Usage
from gome_agent.strategies.step import Meter
from tests.fake_llm import FakeLLMServer, Reply

ASK = [Message(role="user", content="Say hi")]


def test_a_call_that_failed_after_its_retries_is_llm_time(tmp_path: Path) -> None:
    with FakeLLMServer() as fake:
        fake.queue(Reply(status=500), Reply(status=500), "hello")
        config = LLMConfig(provider="openai-compatible", base_url=fake.base_url_openai, model="m", max_attempts=2,
                           backoff_base_s=0.4, backoff_max_s=0.4)
        client = LLMClient(config, tmp_path / "llm_calls.jsonl", provider=build_provider(config, strict=True))
        meter = Meter()
        with pytest.raises(LLMError):
            client.complete(ASK, role="update")  # no Completion comes back to meter.add
        failed_s = meter.llm_s
        assert failed_s >= 0.2  # the backoff between the two attempts, at least half of 0.4 s
        meter.add(client.complete(ASK, role="update"))
        assert meter.calls == 1
        assert meter.llm_s > failed_s and meter.llm_s >= meter.replies_s


def test_completions_from_another_thread_still_count() -> None:
    meter = Meter()
    done = Completion(text="x", model="m", usage=Usage(), cost_usd=None, latency_s=2.5, attempts=1,
                      finish_reason="stop")
    worker = threading.Thread(target=meter.add, args=(done,))
    worker.start()
    worker.join()
    assert meter.llm_s == 2.5
