"""OpenAI Chat Completions, for OpenAI itself and for OpenAI-compatible servers (llama.cpp, vLLM, Ollama)."""

from __future__ import annotations

from typing import Any

import openai

from gome_agent.llm.config import LLMConfig
from gome_agent.llm.providers import (
    SDK_ERRORS,
    Endpoint,
    RawReply,
    RepetitionGuard,
    StreamClock,
    dropped_stream,
    estimated_usage,
    raise_sdk_error,
)
from gome_agent.llm.types import REPETITION, Message, Usage


def openai_client(endpoint: Endpoint) -> openai.OpenAI:
    """The SDK client, with SDK retries off: our retry loop counts, logs and bounds every attempt."""
    return openai.OpenAI(
        api_key=endpoint.api_key,
        base_url=endpoint.base_url,
        max_retries=0,
        timeout=endpoint.timeout_s,
        _strict_response_validation=endpoint.strict,
    )


def chat_usage(usage: Any) -> Usage:
    prompt_details = usage.prompt_tokens_details
    completion_details = usage.completion_tokens_details
    return Usage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cached_input_tokens=(prompt_details.cached_tokens or 0) if prompt_details else 0,
        reasoning_tokens=(completion_details.reasoning_tokens or 0) if completion_details else 0,
    )


class OpenAIChatProvider:
    name = "openai-chat"

    def __init__(self, config: LLMConfig, endpoint: Endpoint) -> None:
        self._config = config
        self._endpoint = endpoint
        self._client = openai_client(endpoint)
        # OpenAI's reasoning models reject max_tokens; local servers only know max_tokens.
        self._tokens_param = "max_completion_tokens" if config.provider == "openai" else "max_tokens"

    def _params(self, model: str, messages: list[Message], json_mode: bool, max_output_tokens: int,
                temperature: float | None) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            self._tokens_param: max_output_tokens,
        }
        if temperature is not None:
            params["temperature"] = temperature
        if self._config.reasoning_effort and self._config.provider == "openai":
            params["reasoning_effort"] = self._config.reasoning_effort
        if json_mode:
            params["response_format"] = {"type": "json_object"}
        return params

    def send(
        self, *, model: str, messages: list[Message], json_mode: bool, max_output_tokens: int, timeout_s: float,
        temperature: float | None = None,
    ) -> RawReply:
        params = self._params(model, messages, json_mode, max_output_tokens, temperature)
        try:
            if self._config.stream:
                return self._send_streamed(params, messages, timeout_s)
            completion = self._client.chat.completions.create(**params, timeout=timeout_s)
        except SDK_ERRORS as exc:
            raise_sdk_error(exc, self._endpoint, model)
        if not completion.choices:
            return RawReply(text="", usage=estimated_usage(messages, ""), finish_reason=None, model=completion.model)
        choice = completion.choices[0]
        text = choice.message.content or ""
        return RawReply(
            text=text,
            usage=chat_usage(completion.usage) if completion.usage else estimated_usage(messages, text),
            finish_reason=choice.finish_reason,
            refusal=choice.message.refusal,
            model=completion.model,
        )

    def _send_streamed(self, params: dict[str, Any], messages: list[Message], timeout_s: float) -> RawReply:
        clock = StreamClock(timeout_s)
        parts: list[str] = []
        refusal: list[str] = []
        finish_reason: str | None = None
        usage: Usage | None = None
        served_model = params["model"]
        events = 0
        stream = self._client.chat.completions.create(
            **params, stream=True, stream_options={"include_usage": True}, timeout=timeout_s
        )
        guard = RepetitionGuard()
        with stream:
            for chunk in stream:
                events += 1
                clock.check()
                served_model = chunk.model or served_model
                if chunk.usage is not None:
                    usage = chat_usage(chunk.usage)
                for choice in chunk.choices:
                    if choice.index != 0:
                        continue
                    if choice.delta.content:
                        parts.append(choice.delta.content)
                        if guard.feed(choice.delta.content):
                            finish_reason = REPETITION
                    if choice.delta.refusal:
                        refusal.append(choice.delta.refusal)
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
                if finish_reason == REPETITION:
                    break  # leaving the block closes the connection, and the server stops generating
        if finish_reason is None:
            raise dropped_stream("a finish_reason", events)
        text = "".join(parts)
        return RawReply(
            text=text,
            usage=usage or estimated_usage(messages, text),
            finish_reason=finish_reason,
            refusal="".join(refusal) or None,
            model=served_model,
        )
