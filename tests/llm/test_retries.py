"""Retries, fatal errors and deadlines, through the real SDKs against the fake server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gome_agent.errors import LLMError, LLMFatalError, LLMOutputError
from gome_agent.llm import LLMClient, LLMConfig, Message, build_provider
from gome_agent.llm.retry import RETRY_AFTER_CAP_S, RetryLoop, TransientError, backoff_s, parse_retry_after
from tests.fake_llm import FakeLLMServer, Reply

KEY = "sk-test-SECRET123456"
APIS = [("openai", "chat"), ("openai", "responses"), ("anthropic", "messages")]
ASK = [Message(role="system", content="Be brief."), Message(role="user", content="Say hi")]


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)


def make_client(
    fake: FakeLLMServer, tmp_path: Path, provider: str = "openai", api: str = "chat", **overrides: object
) -> LLMClient:
    settings: dict[str, object] = {
        "provider": provider,
        "api": api,
        "base_url": fake.base_url_anthropic if api == "messages" else fake.base_url_openai,
        "model": "claude-haiku-4-5" if provider == "anthropic" else "gpt-5",
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.02,
        "max_attempts": 4,
        **overrides,
    }
    config = LLMConfig.model_validate(settings)
    return LLMClient(config, tmp_path / "llm_calls.jsonl", provider=build_provider(config, strict=True))


def records(tmp_path: Path) -> list[dict]:
    path = tmp_path / "llm_calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize(("provider", "api"), APIS)
def test_429_with_retry_after_zero_then_success(
    fake_llm: FakeLLMServer, tmp_path: Path, provider: str, api: str
) -> None:
    fake_llm.queue(Reply(status=429, headers={"retry-after": "0"}), "hello")
    completion = make_client(fake_llm, tmp_path, provider, api).complete(ASK, role="code")
    assert completion.text == "hello"
    assert completion.attempts == 2
    assert len(fake_llm.requests) == 2
    (record,) = records(tmp_path)
    assert record["status"] == "ok"
    assert record["attempts"] == 2


def test_retry_after_ms_is_honoured(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.queue(Reply(status=429, headers={"retry-after-ms": "400"}), "hello")
    started = time.monotonic()
    make_client(fake_llm, tmp_path).complete(ASK, role="code")
    assert time.monotonic() - started >= 0.4


@pytest.mark.parametrize(("provider", "api"), APIS)
def test_server_errors_then_success(fake_llm: FakeLLMServer, tmp_path: Path, provider: str, api: str) -> None:
    fake_llm.queue(Reply(status=500), Reply(status=503), "recovered")
    completion = make_client(fake_llm, tmp_path, provider, api).complete(ASK, role="code")
    assert completion.text == "recovered"
    assert completion.attempts == 3


def test_anthropic_overloaded_529_is_retried(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.queue(Reply(status=529), "fine")
    completion = make_client(fake_llm, tmp_path, "anthropic", "messages").complete(ASK, role="code")
    assert (completion.text, completion.attempts) == ("fine", 2)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_read_timeout_then_success(fake_llm: FakeLLMServer, tmp_path: Path, stream: bool) -> None:
    fake_llm.queue(Reply("late", delay_s=2.0), "on time")
    client = make_client(fake_llm, tmp_path, request_timeout_s=0.3, stream=stream)
    started = time.monotonic()
    completion = client.complete(ASK, role="code")
    assert completion.text == "on time"
    assert completion.attempts == 2
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(("provider", "api"), APIS)
def test_dropped_stream_then_success(fake_llm: FakeLLMServer, tmp_path: Path, provider: str, api: str) -> None:
    fake_llm.queue(Reply("partial answer " * 20, drop_stream_after_chunks=3), "whole answer")
    completion = make_client(fake_llm, tmp_path, provider, api).complete(ASK, role="code")
    assert completion.text == "whole answer"
    assert completion.attempts == 2


@pytest.mark.parametrize(("provider", "api"), APIS)
def test_stream_ending_without_completion_event_is_retried(
    fake_llm: FakeLLMServer, tmp_path: Path, provider: str, api: str
) -> None:
    # The body ends cleanly but the final event (finish_reason / response.completed / message_stop) never came.
    fake_llm.queue(Reply("partial answer " * 20, end_stream_after_chunks=4), "whole answer")
    completion = make_client(fake_llm, tmp_path, provider, api).complete(ASK, role="code")
    assert completion.text == "whole answer"
    assert completion.attempts == 2


@pytest.mark.parametrize(("provider", "api"), APIS)
def test_truncated_json_body_then_success(fake_llm: FakeLLMServer, tmp_path: Path, provider: str, api: str) -> None:
    fake_llm.queue(Reply("cut", drop_stream_after_chunks=0), "whole")
    completion = make_client(fake_llm, tmp_path, provider, api, stream=False).complete(ASK, role="code")
    assert (completion.text, completion.attempts) == ("whole", 2)


@pytest.mark.parametrize(("provider", "api"), APIS)
def test_connection_reset_then_success(fake_llm: FakeLLMServer, tmp_path: Path, provider: str, api: str) -> None:
    fake_llm.queue(Reply(close_connection=True), "back")
    completion = make_client(fake_llm, tmp_path, provider, api).complete(ASK, role="code")
    assert (completion.text, completion.attempts) == ("back", 2)


def test_retries_exhausted(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.queue(*[Reply(status=500) for _ in range(3)])
    client = make_client(fake_llm, tmp_path, max_attempts=3)
    with pytest.raises(LLMError, match="after 3 attempts") as caught:
        client.complete(ASK, role="code")
    assert not isinstance(caught.value, LLMFatalError)
    assert "HTTP 500" in str(caught.value)
    assert len(fake_llm.requests) == 3
    (record,) = records(tmp_path)
    assert record["status"] == "error"
    assert record["attempts"] == 3
    assert "after 3 attempts" in record["error"]


@pytest.mark.parametrize(("provider", "api"), APIS)
def test_401_is_fatal_names_the_variable_and_hides_the_key(
    fake_llm: FakeLLMServer, tmp_path: Path, provider: str, api: str
) -> None:
    # The server echoes the key, as some gateways do: it must still not reach the message or the log.
    echo = f"Incorrect API key provided: {KEY}"
    body = (
        {"type": "error", "error": {"type": "authentication_error", "message": echo}}
        if api == "messages"
        else {"error": {"message": echo, "type": "invalid_request_error", "code": "invalid_api_key"}}
    )
    fake_llm.queue(Reply(status=401, error_body=body))
    with pytest.raises(LLMFatalError) as caught:
        make_client(fake_llm, tmp_path, provider, api).complete(ASK, role="code")
    message = str(caught.value)
    assert ("ANTHROPIC_API_KEY" if provider == "anthropic" else "OPENAI_API_KEY") in message
    assert KEY not in message
    assert caught.value.__cause__ is None
    assert len(fake_llm.requests) == 1
    assert KEY not in (tmp_path / "llm_calls.jsonl").read_text()
    assert records(tmp_path)[0]["status"] == "error"


def test_401_names_a_custom_key_variable(fake_llm: FakeLLMServer, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MY_LLM_KEY", KEY)
    fake_llm.queue(Reply(status=401))
    with pytest.raises(LLMFatalError, match="MY_LLM_KEY"):
        make_client(fake_llm, tmp_path, api_key_env="MY_LLM_KEY").complete(ASK, role="code")


@pytest.mark.parametrize(("provider", "api"), APIS)
def test_unknown_model_is_fatal(fake_llm: FakeLLMServer, tmp_path: Path, provider: str, api: str) -> None:
    fake_llm.queue(Reply(status=404))
    with pytest.raises(LLMFatalError, match="unknown model 'no-such-model'"):
        make_client(fake_llm, tmp_path, provider, api, model="no-such-model").complete(ASK, role="code")
    assert len(fake_llm.requests) == 1


def test_model_not_found_code_is_fatal_whatever_the_status(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    body = {"error": {"message": "The model `gpt-9` does not exist", "type": "invalid_request_error", "code": "model_not_found"}}
    fake_llm.queue(Reply(status=400, error_body=body))
    with pytest.raises(LLMFatalError, match="unknown model"):
        make_client(fake_llm, tmp_path, model="gpt-9").complete(ASK, role="code")
    assert len(fake_llm.requests) == 1


def test_insufficient_quota_is_fatal(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    body = {"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}}
    fake_llm.queue(Reply(status=429, error_body=body, headers={"retry-after": "0"}))
    with pytest.raises(LLMFatalError, match="quota"):
        make_client(fake_llm, tmp_path).complete(ASK, role="code")
    assert len(fake_llm.requests) == 1


def test_other_400_is_an_error_with_the_server_message(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    body = {"error": {"message": "max_completion_tokens is too large", "type": "invalid_request_error", "code": None}}
    fake_llm.queue(Reply(status=400, error_body=body))
    with pytest.raises(LLMError, match="max_completion_tokens is too large") as caught:
        make_client(fake_llm, tmp_path).complete(ASK, role="code")
    assert not isinstance(caught.value, LLMFatalError)
    assert len(fake_llm.requests) == 1


def test_deadline_stops_a_retry_wait(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.queue(Reply(status=429, headers={"retry-after": "30"}))
    started = time.monotonic()
    with pytest.raises(LLMError, match="deadline reached"):
        make_client(fake_llm, tmp_path).complete(ASK, role="code", deadline=time.time() + 1.0)
    assert time.monotonic() - started < 0.8
    assert len(fake_llm.requests) == 1


def test_deadline_bounds_a_slow_request(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.queue(Reply("too slow", delay_s=5.0))
    started = time.monotonic()
    with pytest.raises(LLMError, match="deadline reached"):
        make_client(fake_llm, tmp_path).complete(ASK, role="code", deadline=time.time() + 0.5)
    assert time.monotonic() - started < 1.5


def test_deadline_already_passed_sends_nothing(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    with pytest.raises(LLMError, match="deadline reached"):
        make_client(fake_llm, tmp_path).complete(ASK, role="code", deadline=time.time() - 1)
    assert fake_llm.requests == []
    assert records(tmp_path)[0]["attempts"] == 0


def test_empty_reply_is_retried_then_output_error(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.queue("", "  \n", "")
    with pytest.raises(LLMOutputError, match="empty reply"):
        make_client(fake_llm, tmp_path, max_attempts=3).complete(ASK, role="code")
    assert len(fake_llm.requests) == 3


def test_empty_reply_then_text(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.queue(Reply("", output_tokens=50), Reply("finally", output_tokens=2))
    completion = make_client(fake_llm, tmp_path).complete(ASK, role="code")
    assert (completion.text, completion.attempts) == ("finally", 2)
    # The empty attempt was billed too.
    assert completion.usage.output_tokens == 52


def test_parse_retry_after() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "100000"}) == RETRY_AFTER_CAP_S
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    in_ten = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 10))
    assert 8 <= (parse_retry_after({"retry-after": in_ten}) or 0) <= 10


def test_backoff_grows_is_capped_and_jittered() -> None:
    assert backoff_s(0, 2.0, 60.0, rand=lambda: 1.0) == 2.0
    assert backoff_s(3, 2.0, 60.0, rand=lambda: 1.0) == 16.0
    assert backoff_s(10, 2.0, 60.0, rand=lambda: 1.0) == 60.0
    assert backoff_s(3, 2.0, 60.0, rand=lambda: 0.0) == 8.0


def test_retry_loop_never_sleeps_past_the_deadline() -> None:
    now = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    def failing(timeout_s: float) -> str:
        now[0] += timeout_s  # each attempt uses its whole timeout
        raise TransientError("HTTP 503")

    loop = RetryLoop(
        max_attempts=50, backoff_base_s=1.0, backoff_max_s=4.0, deadline=1030.0, what="test", sleep=sleep, clock=lambda: now[0]
    )
    with pytest.raises(LLMError, match="deadline reached"):
        loop.run(failing, request_timeout_s=5.0)
    assert now[0] <= 1030.0
    assert slept and all(s <= 4.0 for s in slept)
