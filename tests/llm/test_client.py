"""LLMClient: structured answers with the repair re-ask, reply limits, cost accounting and the call log."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from gome_agent.errors import ConfigError, LLMError, LLMOutputError
from gome_agent.llm import (
    LLMCallRecord,
    LLMClient,
    LLMConfig,
    Message,
    Price,
    ScriptedProvider,
    Structured,
    build_provider,
    create_client,
)
from tests.fake_llm import FakeLLMServer, FakeRequest, Reply

KEY = "sk-test-SECRET123456"
ASK = [Message(role="system", content="You diagnose ML runs."), Message(role="user", content="Diagnose as JSON.")]


class Diagnosis(BaseModel):
    problem: str
    confidence: float = Field(ge=0, le=1)
    fixes: list[str]


GOOD = '{"problem": "overfitting", "confidence": 0.8, "fixes": ["more data", "dropout"]}'


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)


def make_client(fake: FakeLLMServer, tmp_path: Path, api: str = "chat", **overrides: object) -> LLMClient:
    settings: dict[str, object] = {
        "provider": "anthropic" if api == "messages" else "openai",
        "api": api,
        "base_url": fake.base_url_anthropic if api == "messages" else fake.base_url_openai,
        "model": "claude-haiku-4-5" if api == "messages" else "gpt-5",
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.02,
        **overrides,
    }
    config = LLMConfig.model_validate(settings)
    return LLMClient(config, tmp_path / "llm_calls.jsonl", provider=build_provider(config, strict=True))


def records(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "llm_calls.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("api", ["chat", "responses", "messages"])
def test_structured_valid_first_time(fake_llm: FakeLLMServer, tmp_path: Path, api: str) -> None:
    fake_llm.queue(GOOD)
    result = make_client(fake_llm, tmp_path, api).structured(ASK, Diagnosis, role="diagnose")
    assert isinstance(result, Structured)
    assert result.value == Diagnosis(problem="overfitting", confidence=0.8, fixes=["more data", "dropout"])
    assert len(result.completions) == 1
    assert len(fake_llm.requests) == 1
    body = fake_llm.requests[0].body
    if api == "chat":
        assert body["response_format"] == {"type": "json_object"}
    elif api == "responses":
        assert body["text"] == {"format": {"type": "json_object"}}


def test_structured_without_json_mode_sends_no_format(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.queue(GOOD)
    make_client(fake_llm, tmp_path, json_mode=False).structured(ASK, Diagnosis, role="diagnose")
    assert "response_format" not in fake_llm.requests[0].body


def test_structured_accepts_fences_prose_raw_newlines_and_trailing_commas(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    reply = (
        "Here is my diagnosis:\n```json\n"
        '{"problem": "leak:\n target in features", "confidence": 0.5, "fixes": ["drop id",],}\n'
        "```\nHope this helps."
    )
    fake_llm.queue(reply)
    result = make_client(fake_llm, tmp_path).structured(ASK, Diagnosis, role="diagnose")
    assert result.value.problem == "leak:\n target in features"
    assert result.value.fixes == ["drop id"]
    assert len(fake_llm.requests) == 1


def test_structured_repairs_once_with_the_exact_error(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.queue('{"problem": "overfitting", "confidence": "very", "fixes": []}', GOOD)
    result = make_client(fake_llm, tmp_path).structured(ASK, Diagnosis, role="diagnose", tags={"step": 3})
    assert result.value.confidence == 0.8
    assert len(result.completions) == 2
    assert len(fake_llm.requests) == 2
    repair_messages = fake_llm.requests[1].body["messages"]
    assert repair_messages[-2] == {
        "role": "assistant",
        "content": '{"problem": "overfitting", "confidence": "very", "fixes": []}',
    }
    assert repair_messages[-1]["role"] == "user"
    assert "confidence: Input should be a valid number" in repair_messages[-1]["content"]
    assert "only the corrected JSON object" in repair_messages[-1]["content"]
    first, second = records(tmp_path)
    assert first["tags"] == {"step": 3, "schema": "Diagnosis"}
    assert second["tags"] == {"step": 3, "schema": "Diagnosis", "repair": True}


def test_structured_repair_error_is_truncated(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    class Many(BaseModel):
        values: list[int]

    bad = json.dumps({"values": ["x" * 50] * 200})
    fake_llm.queue(bad, '{"values": [1]}')
    make_client(fake_llm, tmp_path).structured(ASK, Many, role="diagnose")
    assert len(fake_llm.requests[1].body["messages"][-1]["content"]) < 2300


def test_structured_invalid_twice_raises_with_the_validation_error(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.queue('{"problem": "x"}', "I think the problem is overfitting.")
    with pytest.raises(LLMOutputError) as caught:
        make_client(fake_llm, tmp_path).structured(ASK, Diagnosis, role="diagnose")
    assert "no JSON object" in str(caught.value)
    assert len(fake_llm.requests) == 2
    assert "fixes: Field required" in fake_llm.requests[1].body["messages"][-1]["content"]


def test_structured_adds_a_json_instruction_when_the_prompt_lacks_one(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.queue(GOOD)
    make_client(fake_llm, tmp_path).structured([Message(role="user", content="Diagnose.")], Diagnosis, role="d")
    assert "JSON" in fake_llm.requests[0].body["messages"][-1]["content"]


def test_long_reply_is_cut(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.queue("x" * 3_000_000)
    completion = make_client(fake_llm, tmp_path, max_reply_chars=1000).complete(ASK, role="code")
    assert completion.text == "x" * 1000
    assert completion.finish_reason == "length_cut"
    assert len(records(tmp_path)[0]["reply"]) == 1000


def test_cost_from_a_custom_price(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    prices = {"my-model": Price(input_per_mtok=2.0, output_per_mtok=10.0, cached_input_per_mtok=0.5)}
    client = make_client(fake_llm, tmp_path, model="my-model", prices=prices)
    fake_llm.queue(Reply("ok", input_tokens=1_000_000, output_tokens=200_000, cached_input_tokens=400_000))
    completion = client.complete(ASK, role="code")
    # 600k uncached * $2 + 400k cached * $0.5 + 200k out * $10, per million.
    assert completion.cost_usd == pytest.approx(1.2 + 0.2 + 2.0)
    assert records(tmp_path)[0]["cost_usd"] == pytest.approx(3.4)


def test_ledger_totals_by_role_and_model(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    client = make_client(fake_llm, tmp_path, role_models={"code": "gpt-5-mini"})
    fake_llm.queue(
        Reply("a", input_tokens=1000, output_tokens=100),
        Reply("b", input_tokens=2000, output_tokens=200),
        Reply("c", input_tokens=4000, output_tokens=400),
    )
    client.complete(ASK, role="code")
    client.complete(ASK, role="code")
    client.complete(ASK, role="diagnose")
    totals = client.ledger.totals()
    assert totals["calls"] == 3
    assert totals["input_tokens"] == 7000
    assert totals["output_tokens"] == 700
    assert totals["by_role"]["code"]["calls"] == 2
    assert totals["by_role"]["code"]["input_tokens"] == 3000
    assert totals["by_role"]["diagnose"]["output_tokens"] == 400
    mini = (3000 * 0.25 + 300 * 2.0) / 1e6
    full = (4000 * 1.25 + 400 * 10.0) / 1e6
    assert totals["by_model"]["gpt-5-mini"]["cost_usd"] == pytest.approx(mini)
    assert totals["by_model"]["gpt-5"]["cost_usd"] == pytest.approx(full)
    assert totals["cost_usd"] == pytest.approx(mini + full)
    assert totals["unpriced_calls"] == 0


def test_ledger_is_thread_safe(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.set_responder(lambda request: Reply("ok", input_tokens=10, output_tokens=1))
    client = make_client(fake_llm, tmp_path)

    def work() -> None:
        for _ in range(5):
            client.complete(ASK, role="code")

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.ledger.totals()["calls"] == 30
    assert client.ledger.totals()["input_tokens"] == 300
    assert len(records(tmp_path)) == 30


def test_call_log_record(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    config = LLMConfig(base_url=fake_llm.base_url_openai, api="chat", backoff_base_s=0.01)
    client = LLMClient(
        config, tmp_path / "llm_calls.jsonl", provider=build_provider(config, strict=True), context={"trace": 2}
    )
    fake_llm.queue(Reply("the answer", input_tokens=40, output_tokens=5), Reply(status=400))
    client.complete(ASK, role="code", tags={"step": 7})
    with pytest.raises(LLMError):
        client.complete(ASK, role="code")
    ok, failed = records(tmp_path)
    assert LLMCallRecord.model_validate(ok)
    assert ok["status"] == "ok" and ok["error"] is None
    assert ok["role"] == "code" and ok["provider"] == "openai" and ok["api"] == "chat" and ok["model"] == "gpt-5"
    assert (ok["input_tokens"], ok["output_tokens"], ok["attempts"]) == (40, 5, 1)
    assert ok["cost_usd"] == pytest.approx((40 * 1.25 + 5 * 10.0) / 1e6)
    assert ok["finish_reason"] == "stop"
    assert ok["context"] == {"trace": 2} and ok["tags"] == {"step": 7}
    assert ok["messages"] == [m.model_dump() for m in ASK]
    assert ok["reply"] == "the answer"
    assert len(ok["call_id"]) == 32 and ok["ts"].endswith("+00:00")
    assert ok["latency_s"] >= 0
    assert failed["status"] == "error" and "HTTP 400" in failed["error"] and failed["reply"] is None
    assert KEY not in (tmp_path / "llm_calls.jsonl").read_text()


def test_log_prompts_off_keeps_text_out_of_the_log(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.queue("secret plan")
    make_client(fake_llm, tmp_path, log_prompts=False).complete(ASK, role="code")
    (record,) = records(tmp_path)
    assert record["messages"] is None and record["reply"] is None
    assert "secret plan" not in (tmp_path / "llm_calls.jsonl").read_text()


def test_no_log_file_when_calls_log_is_none(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    config = LLMConfig(base_url=fake_llm.base_url_openai, api="chat")
    client = LLMClient(config, None, provider=build_provider(config, strict=True))
    fake_llm.queue("ok")
    assert client.complete(ASK, role="code").text == "ok"
    assert list(tmp_path.iterdir()) == []
    assert client.ledger.totals()["calls"] == 1


@pytest.mark.parametrize(("provider", "var"), [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")])
def test_missing_api_key_names_the_variable(monkeypatch: pytest.MonkeyPatch, provider: str, var: str) -> None:
    monkeypatch.delenv(var)
    with pytest.raises(ConfigError, match=var) as caught:
        create_client(LLMConfig(provider=provider), None)
    assert provider in str(caught.value)


def test_create_client_talks_to_the_configured_server(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.set_responder(lambda request: f"you asked: {request.text.splitlines()[-1]}")
    client = create_client(
        LLMConfig(provider="anthropic", model="claude-haiku-4-5", base_url=fake_llm.base_url_anthropic),
        tmp_path / "calls.jsonl",
        context={"trace": 0},
    )
    assert client.complete(ASK, role="code").text == "you asked: Diagnose as JSON."
    assert json.loads((tmp_path / "calls.jsonl").read_text())["context"] == {"trace": 0}


def test_scripted_provider(tmp_path: Path) -> None:
    seen: list[str] = []

    def responder(messages: list[Message], model: str) -> str:
        seen.append(model)
        return GOOD if "JSON" in messages[-1].content else "plain " * 10

    client = LLMClient(LLMConfig(), tmp_path / "llm_calls.jsonl", provider=ScriptedProvider(responder))
    completion = client.complete([Message(role="user", content="x" * 400)], role="code")
    assert completion.text == "plain " * 10
    assert completion.usage.input_tokens == 100 and completion.usage.output_tokens == 15
    assert client.structured(ASK, Diagnosis, role="diagnose").value.problem == "overfitting"
    assert seen == ["gpt-5", "gpt-5"]
    assert {(r["provider"], r["api"]) for r in records(tmp_path)} == {("scripted", "scripted")}


def test_scripted_provider_delay_respects_the_deadline(tmp_path: Path) -> None:
    client = LLMClient(LLMConfig(), None, provider=ScriptedProvider(lambda m, model: "late", delay_s=5.0))
    started = time.monotonic()
    with pytest.raises(LLMError, match="deadline reached"):
        client.complete(ASK, role="code", deadline=time.time() + 0.3)
    assert time.monotonic() - started < 1.0


def test_responder_sees_the_request(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    captured: list[FakeRequest] = []

    def responder(request: FakeRequest) -> str:
        captured.append(request)
        return "ok"

    fake_llm.set_responder(responder)
    make_client(fake_llm, tmp_path, "responses").complete(ASK, role="code")
    assert captured[0].api == "responses"
    assert captured[0].text == "You diagnose ML runs.\nDiagnose as JSON."


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("api", ["chat", "responses", "messages"])
def test_a_reply_cut_at_the_token_limit_is_reported_as_cut(fake_llm: FakeLLMServer, tmp_path: Path,
                                                           api: str, stream: bool) -> None:
    fake_llm.queue(Reply(text="def main():\n    x = ", truncated=True))
    completion = make_client(fake_llm, tmp_path, api, stream=stream).complete(ASK, role="update")
    assert completion.finish_reason == "length" and completion.cut
    assert records(tmp_path)[-1]["finish_reason"] == "length"


@pytest.mark.parametrize("api", ["chat", "responses", "messages"])
def test_a_cut_json_reply_is_never_parsed_and_the_re_ask_says_why(fake_llm: FakeLLMServer, tmp_path: Path,
                                                                  api: str) -> None:
    # The cut reply holds a complete, valid object (its example), then breaks off: it must not be used.
    cut = GOOD + '\nand the full answer: {"problem": "under'
    fake_llm.queue(Reply(text=cut, truncated=True), Reply(text=GOOD))
    result = make_client(fake_llm, tmp_path, api).structured(ASK, Diagnosis, role="gradient")
    assert len(result.completions) == 2 and result.completions[0].cut
    repair = fake_llm.requests[-1].text
    assert "cut off at the output limit" in repair and "shorter JSON object" in repair


def test_a_cut_json_reply_twice_is_an_output_error(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.queue(Reply(text=GOOD, truncated=True), Reply(text=GOOD, truncated=True))
    with pytest.raises(LLMOutputError, match="cut off at the output limit"):
        make_client(fake_llm, tmp_path).structured(ASK, Diagnosis, role="gradient")
