"""Each wire API, plain and streamed, through the real SDK clients (strict validation) and the fake server."""

from __future__ import annotations

from pathlib import Path

import pytest

from gome_agent.errors import LLMOutputError
from gome_agent.llm import LLMClient, LLMConfig, Message, build_provider
from gome_agent.llm.providers import RepetitionGuard
from tests.fake_llm import FakeLLMServer, Reply

KEY = "sk-test-SECRET123456"
APIS = [("openai", "chat"), ("openai", "responses"), ("anthropic", "messages")]
CONVERSATION = [
    Message(role="system", content="You are a careful ML engineer."),
    Message(role="user", content="Write train.py"),
]


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)


def make_client(fake: FakeLLMServer, tmp_path: Path, provider: str, api: str, **overrides: object) -> LLMClient:
    settings: dict[str, object] = {
        "provider": provider,
        "api": api,
        "base_url": fake.base_url_anthropic if api == "messages" else fake.base_url_openai,
        "model": "claude-haiku-4-5" if provider == "anthropic" else "gpt-5",
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.02,
        **overrides,
    }
    config = LLMConfig.model_validate(settings)
    return LLMClient(config, tmp_path / "llm_calls.jsonl", provider=build_provider(config, strict=True))


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(("provider", "api"), APIS)
def test_text_usage_and_request_shape(
    fake_llm: FakeLLMServer, tmp_path: Path, provider: str, api: str, stream: bool
) -> None:
    client = make_client(fake_llm, tmp_path, provider, api, stream=stream, max_output_tokens=777)
    answer = "import sklearn\n" + "print('accuracy', 0.93)\n" * 5
    fake_llm.queue(Reply(answer, input_tokens=120, output_tokens=45, cached_input_tokens=100, reasoning_tokens=7))

    completion = client.complete(CONVERSATION, role="code")

    assert completion.text == answer
    assert completion.usage.input_tokens == 120
    assert completion.usage.output_tokens == 45
    assert completion.usage.cached_input_tokens == 100
    # Anthropic reports no reasoning token count for plain text replies.
    assert completion.usage.reasoning_tokens == (0 if api == "messages" else 7)
    assert completion.finish_reason == "stop"
    assert completion.attempts == 1

    (request,) = fake_llm.requests
    body = request.body
    assert request.stream is stream
    assert request.model == client.config.model
    if api == "chat":
        assert body["messages"][0] == {"role": "system", "content": "You are a careful ML engineer."}
        assert body["messages"][1] == {"role": "user", "content": "Write train.py"}
        assert body["max_completion_tokens"] == 777
        assert "max_tokens" not in body
    elif api == "responses":
        assert body["instructions"] == "You are a careful ML engineer."
        assert body["input"] == [{"role": "user", "content": "Write train.py"}]
        assert body["max_output_tokens"] == 777
    else:
        assert body["system"] == "You are a careful ML engineer."
        assert body["messages"] == [{"role": "user", "content": "Write train.py"}]
        assert body["max_tokens"] == 777
    # Reasoning models reject temperature, so it is absent unless configured.
    assert "temperature" not in body
    assert "response_format" not in body and "text" not in body


@pytest.mark.parametrize(("provider", "api"), APIS)
def test_api_key_is_sent_in_the_auth_header(fake_llm: FakeLLMServer, tmp_path: Path, provider: str, api: str) -> None:
    fake_llm.queue("ok")
    make_client(fake_llm, tmp_path, provider, api).complete(CONVERSATION, role="code")
    headers = fake_llm.requests[0].headers
    if api == "messages":
        # Anthropic SDK 2.x sends the key as a bearer token; older ones used x-api-key.
        assert headers.get("x-api-key") == KEY or headers.get("authorization") == f"Bearer {KEY}"
    else:
        assert headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(("provider", "api"), APIS)
def test_json_mode_field(fake_llm: FakeLLMServer, tmp_path: Path, provider: str, api: str, stream: bool) -> None:
    fake_llm.queue('{"a": 1}')
    make_client(fake_llm, tmp_path, provider, api, stream=stream).complete(CONVERSATION, role="code", json_mode=True)
    body = fake_llm.requests[0].body
    if api == "chat":
        assert body["response_format"] == {"type": "json_object"}
    elif api == "responses":
        assert body["text"] == {"format": {"type": "json_object"}}
    else:
        # The Messages API has no JSON mode: nothing extra may be sent.
        assert set(body) <= {"model", "max_tokens", "messages", "system", "stream"}


@pytest.mark.parametrize(("provider", "api"), APIS)
def test_temperature_and_reasoning_effort_when_set(
    fake_llm: FakeLLMServer, tmp_path: Path, provider: str, api: str
) -> None:
    fake_llm.queue("ok")
    client = make_client(fake_llm, tmp_path, provider, api, temperature=0.2, reasoning_effort="high")
    client.complete(CONVERSATION, role="code")
    body = fake_llm.requests[0].body
    assert body["temperature"] == 0.2
    if api == "chat":
        assert body["reasoning_effort"] == "high"
    elif api == "responses":
        assert body["reasoning"] == {"effort": "high"}
    else:
        assert "reasoning_effort" not in body and "thinking" not in body


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_openai_compatible_chat_uses_max_tokens_and_placeholder_key(
    fake_llm: FakeLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    fake_llm.queue("ok")
    client = make_client(
        fake_llm, tmp_path, "openai-compatible", "chat", model="qwen2.5-coder", stream=stream, reasoning_effort="high"
    )
    completion = client.complete(CONVERSATION, role="code", max_output_tokens=300)
    request = fake_llm.requests[0]
    assert request.body["max_tokens"] == 300
    assert "max_completion_tokens" not in request.body
    assert "reasoning_effort" not in request.body
    assert request.headers["authorization"] == "Bearer not-needed"
    assert completion.cost_usd is None  # local models have no price


def test_role_model_override_is_sent(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.queue("a", "b")
    client = make_client(fake_llm, tmp_path, "openai", "responses", role_models={"code": "gpt-5-mini"})
    client.complete(CONVERSATION, role="code")
    client.complete(CONVERSATION, role="diagnose")
    assert [r.model for r in fake_llm.requests] == ["gpt-5-mini", "gpt-5"]


def test_anthropic_merges_consecutive_roles_and_joins_system_messages(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.queue("ok")
    messages = [
        Message(role="system", content="S1"),
        Message(role="user", content="U1"),
        Message(role="system", content="S2"),
        Message(role="user", content="U2"),
        Message(role="assistant", content="A1"),
        Message(role="user", content="U3"),
    ]
    make_client(fake_llm, tmp_path, "anthropic", "messages").complete(messages, role="code")
    body = fake_llm.requests[0].body
    assert body["system"] == "S1\n\nS2"
    assert body["messages"] == [
        {"role": "user", "content": "U1\n\nU2"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "U3"},
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(("provider", "api"), APIS)
def test_refusal_is_an_output_error_without_retry(
    fake_llm: FakeLLMServer, tmp_path: Path, provider: str, api: str, stream: bool
) -> None:
    fake_llm.queue(Reply(refusal="I can't help with that request."))
    client = make_client(fake_llm, tmp_path, provider, api, stream=stream)
    with pytest.raises(LLMOutputError, match="I can't help with that request"):
        client.complete(CONVERSATION, role="code")
    assert len(fake_llm.requests) == 1


@pytest.mark.parametrize(("provider", "api"), APIS)
def test_role_temperatures_override_the_temperature_per_call(
    fake_llm: FakeLLMServer, tmp_path: Path, provider: str, api: str
) -> None:
    client = make_client(fake_llm, tmp_path, provider, api, temperature=0.7, role_temperatures={"debug": 0.1})
    for role in ("debug", "draft"):
        fake_llm.queue("ok")
        client.complete(CONVERSATION, role=role)
    assert [r.body["temperature"] for r in fake_llm.requests] == [0.1, 0.7]


def test_an_openai_compatible_server_gets_a_low_temperature_for_fixes_only(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    client = make_client(fake_llm, tmp_path, "openai-compatible", "chat", model="qwen2.5-coder")
    for role in ("debug", "update", "draft", "gradient"):
        fake_llm.queue("ok")
        client.complete(CONVERSATION, role=role)
    assert [r.body.get("temperature") for r in fake_llm.requests] == [0.2, 0.2, None, None]
    # Hosted OpenAI gets none by default: its reasoning models reject the parameter.
    assert make_client(fake_llm, tmp_path, "openai", "chat").config.temperature_for("debug") is None


# The 0.5B model's own loop on llama.cpp (a reply of 7,378 characters, two minutes on two cores).
LOOP = "Change: make_features or fit_predict, " + "each whole fit_predict, " * 300


@pytest.mark.parametrize(("provider", "api"), APIS)
def test_a_streamed_reply_stuck_in_a_loop_is_stopped_early_and_counts_as_cut(
    fake_llm: FakeLLMServer, tmp_path: Path, provider: str, api: str
) -> None:
    client = make_client(fake_llm, tmp_path, provider, api, stream=True)
    fake_llm.queue(Reply(LOOP))
    completion = client.complete(CONVERSATION, role="code")
    assert completion.finish_reason == "repetition" and completion.cut
    assert LOOP.startswith(completion.text) and 600 <= len(completion.text) < len(LOOP) / 3
    assert completion.attempts == 1  # a loop is the model's answer, not a transport failure to retry


def test_the_loop_guard_spots_loops_but_not_code_or_prose() -> None:
    def stopped(text: str, piece: int = 7) -> int | None:
        guard = RepetitionGuard()
        return next((i + piece for i in range(0, len(text), piece) if guard.feed(text[i:i + piece])), None)

    at = stopped(LOOP)
    assert at is not None and at < 800
    replace_loop = "Change: a fix\nSEARCH\n" + "REPLACE\nlines copied exactly from the current main.py\n" * 40
    assert stopped(replace_loop) is not None
    assert stopped("=" * 1000) is not None
    # Repetitive but varying text is not a loop: numbered lines, a table, this repository's own code.
    assert stopped("".join(f"    X['f{i}'] = X['a'] * {i}\n" for i in range(200))) is None
    assert stopped("fold,score\n" + "".join(f"{i % 5},{i * 37 % 101 / 100}\n" for i in range(300))) is None
    source = Path(__file__).read_text() + (Path(__file__).parents[2] / "gome_agent/llm/client.py").read_text()
    assert stopped(source) is None
