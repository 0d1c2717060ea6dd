"""The fake LLM server itself: faithful enough for the SDKs' own stream helpers, clear when unscripted."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import anthropic
import openai

from tests.fake_llm import FakeLLMServer, Reply

ROOT = Path(__file__).resolve().parents[2]


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def openai_client(fake: FakeLLMServer) -> openai.OpenAI:
    return openai.OpenAI(api_key="k", base_url=fake.base_url_openai, max_retries=0, _strict_response_validation=True)


def test_unscripted_request_is_a_clear_500(fake_llm: FakeLLMServer) -> None:
    status, body = post(fake_llm.base_url_openai + "/chat/completions", {"model": "m", "messages": []})
    assert status == 500
    assert "no scripted reply" in body["error"]["message"]
    assert len(fake_llm.requests) == 1


def test_unknown_path_is_404(fake_llm: FakeLLMServer) -> None:
    status, body = post(fake_llm.base_url_openai + "/embeddings", {})
    assert status == 404 and "no route" in body["error"]["message"]


def test_error_bodies_follow_each_api(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(Reply(status=429), Reply(status=429))
    status, body = post(fake_llm.base_url_openai + "/responses", {"model": "m", "input": "hi"})
    assert status == 429
    assert body["error"]["code"] == "rate_limit_exceeded" and body["error"]["message"]
    status, body = post(fake_llm.base_url_anthropic + "/v1/messages", {"model": "m", "messages": []})
    assert status == 429
    assert body == {"type": "error", "error": {"type": "rate_limit_error", "message": "fake error 429"}}


def test_queue_then_responder(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue("first")
    fake_llm.set_responder(lambda request: f"echo {request.model}")
    client = openai_client(fake_llm)
    texts = [
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "q"}]).choices[0].message.content
        for model in ("m1", "m2")
    ]
    assert texts == ["first", "echo m2"]


def test_request_text_of_each_api(fake_llm: FakeLLMServer) -> None:
    fake_llm.set_responder(lambda request: "ok")
    client = openai_client(fake_llm)
    client.chat.completions.create(
        model="m", messages=[{"role": "system", "content": "S"}, {"role": "user", "content": [{"type": "text", "text": "U"}]}]
    )
    client.responses.create(model="m", instructions="I", input=[{"role": "user", "content": "U"}])
    anthropic.Anthropic(api_key="k", base_url=fake_llm.base_url_anthropic, max_retries=0).messages.create(
        model="m", max_tokens=5, system="S", messages=[{"role": "user", "content": "U"}]
    )
    assert [(r.api, r.text) for r in fake_llm.requests] == [
        ("chat", "S\nU"),
        ("responses", "I\nU"),
        ("messages", "S\nU"),
    ]


def test_openai_responses_stream_accumulator_accepts_the_fake(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(Reply("streamed " * 30, input_tokens=11, output_tokens=22))
    with openai_client(fake_llm).responses.stream(model="m", input="hi") as stream:
        final = stream.get_final_response()
    assert final.output_text == "streamed " * 30
    assert final.usage is not None and final.usage.output_tokens == 22


def test_openai_chat_stream_helper_accepts_the_fake(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue("chunked " * 30)
    with openai_client(fake_llm).chat.completions.stream(
        model="m", messages=[{"role": "user", "content": "hi"}], stream_options={"include_usage": True}
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "chunked " * 30


def test_anthropic_stream_helper_accepts_the_fake(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(Reply("claude says " * 10, input_tokens=9, output_tokens=33))
    client = anthropic.Anthropic(
        api_key="k", base_url=fake_llm.base_url_anthropic, max_retries=0, _strict_response_validation=True
    )
    with client.messages.stream(model="m", max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "text" and final.content[0].text == "claude says " * 10
    assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 33)


def test_standalone_server_with_a_responder_file(tmp_path: Path) -> None:
    responder = tmp_path / "responder.py"
    responder.write_text(
        textwrap.dedent(
            """
            def answer(request):
                return "standalone: " + request.text
            """
        )
    )
    command = [sys.executable, "-m", "tests.fake_llm", "--port", "0", "--responder", f"{responder}:answer"]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
            base_url = banner.split("openai ", 1)[1].split()[0]
            with openai.OpenAI(api_key="k", base_url=base_url, max_retries=0, _strict_response_validation=True) as client:
                reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "ping"}])
            assert reply.choices[0].message.content == "standalone: ping"
        finally:
            process.terminate()
            process.wait(timeout=10)
    assert process.returncode == 0


def test_close_interrupts_a_delayed_reply() -> None:
    fake = FakeLLMServer().start()
    fake.queue(Reply("slow", delay_s=30))
    client = openai.OpenAI(api_key="k", base_url=fake.base_url_openai, max_retries=0, timeout=60)
    errors: list[Exception] = []

    def call() -> None:
        try:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}])
        except openai.APIConnectionError as exc:
            errors.append(exc)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    time.sleep(0.2)
    started = time.monotonic()
    fake.close()
    worker.join(timeout=5)
    assert time.monotonic() - started < 2
    assert len(errors) == 1
