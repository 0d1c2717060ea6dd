"""OpenAI Responses API: system messages become `instructions`, the rest become input items."""

from __future__ import annotations

from typing import Any

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
from gome_agent.llm.providers.openai_chat import openai_client
from gome_agent.llm.retry import TransientError
from gome_agent.llm.types import REPETITION, Message, Usage


def _usage(usage: Any) -> Usage:
    return Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_input_tokens=usage.input_tokens_details.cached_tokens if usage.input_tokens_details else 0,
        reasoning_tokens=usage.output_tokens_details.reasoning_tokens if usage.output_tokens_details else 0,
    )


def _finish_reason(response: Any) -> str | None:
    if response.status == "completed":
        return "stop"
    if response.status == "incomplete":
        reason = response.incomplete_details.reason if response.incomplete_details else None
        return "length" if reason == "max_output_tokens" else (reason or "incomplete")
    return response.status


def _reply(response: Any, messages: list[Message], streamed_text: str = "") -> RawReply:
    if response.status == "failed":
        error = response.error
        detail = f"{error.code}: {error.message}" if error else "no details"
        raise TransientError(f"the response failed ({detail})")
    refusals = [
        part.refusal
        for item in response.output
        if item.type == "message"
        for part in item.content
        if part.type == "refusal"
    ]
    text = response.output_text or streamed_text
    return RawReply(
        text=text,
        usage=_usage(response.usage) if response.usage else estimated_usage(messages, text),
        finish_reason=_finish_reason(response),
        refusal="".join(refusals) or None,
        model=response.model,
    )


class OpenAIResponsesProvider:
    name = "openai-responses"

    def __init__(self, config: LLMConfig, endpoint: Endpoint) -> None:
        self._config = config
        self._endpoint = endpoint
        self._client = openai_client(endpoint)

    def _params(self, model: str, messages: list[Message], json_mode: bool, max_output_tokens: int,
                temperature: float | None) -> dict[str, Any]:
        instructions = "\n\n".join(m.content for m in messages if m.role == "system")
        params: dict[str, Any] = {
            "model": model,
            "input": [{"role": m.role, "content": m.content} for m in messages if m.role != "system"],
            "max_output_tokens": max_output_tokens,
            # Every call sends its full context, so nothing needs to be kept server-side.
            "store": False,
        }
        if instructions:
            params["instructions"] = instructions
        if temperature is not None:
            params["temperature"] = temperature
        if self._config.reasoning_effort and self._config.provider == "openai":
            params["reasoning"] = {"effort": self._config.reasoning_effort}
        if json_mode:
            params["text"] = {"format": {"type": "json_object"}}
        return params

    def send(
        self, *, model: str, messages: list[Message], json_mode: bool, max_output_tokens: int, timeout_s: float,
        temperature: float | None = None,
    ) -> RawReply:
        params = self._params(model, messages, json_mode, max_output_tokens, temperature)
        try:
            if self._config.stream:
                return self._send_streamed(params, messages, timeout_s)
            response = self._client.responses.create(**params, timeout=timeout_s)
        except SDK_ERRORS as exc:
            raise_sdk_error(exc, self._endpoint, model)
        return _reply(response, messages)

    def _send_streamed(self, params: dict[str, Any], messages: list[Message], timeout_s: float) -> RawReply:
        clock = StreamClock(timeout_s)
        parts: list[str] = []
        events = 0
        stream = self._client.responses.create(**params, stream=True, timeout=timeout_s)
        guard = RepetitionGuard()
        with stream:
            for event in stream:
                events += 1
                clock.check()
                if event.type == "response.output_text.delta":
                    parts.append(event.delta)
                    if guard.feed(event.delta):
                        # Returning closes the connection, and the server stops generating.
                        text = "".join(parts)
                        return RawReply(text=text, usage=estimated_usage(messages, text), finish_reason=REPETITION,
                                        model=params["model"])
                elif event.type in ("response.completed", "response.incomplete", "response.failed"):
                    return _reply(event.response, messages, "".join(parts))
                elif event.type == "error":
                    raise TransientError(f"the server reported an error mid-reply ({event.code}): {event.message}")
        raise dropped_stream("response.completed", events)
