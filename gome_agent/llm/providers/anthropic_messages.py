"""Anthropic Messages API: system messages go to `system=`; JSON is asked for in the prompt only."""

from __future__ import annotations

from typing import Any

import anthropic

from gome_agent.llm.config import LLMConfig
from gome_agent.llm.providers import (
    SDK_ERRORS,
    Endpoint,
    RawReply,
    RepetitionGuard,
    StreamClock,
    dropped_stream,
    raise_sdk_error,
)
from gome_agent.llm.types import REPETITION, Message, Usage

_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


def _turns(messages: list[Message]) -> list[dict[str, str]]:
    """User/assistant turns with consecutive same-role messages merged (the API wants them alternating)."""
    turns: list[dict[str, str]] = []
    for m in messages:
        if m.role == "system":
            continue
        if turns and turns[-1]["role"] == m.role:
            turns[-1]["content"] += "\n\n" + m.content
        else:
            turns.append({"role": m.role, "content": m.content})
    return turns


def _refusal(stop_reason: str | None, stop_details: Any, text: str) -> str | None:
    if stop_reason != "refusal":
        return None
    if stop_details is not None and (stop_details.explanation or stop_details.category):
        return stop_details.explanation or f"category {stop_details.category}"
    return text or "the model stopped with stop_reason 'refusal'"


class _UsageCounter:
    """Anthropic reports cache reads and writes apart from input_tokens; Usage counts them as input."""

    def __init__(self) -> None:
        self.input = self.cache_read = self.cache_write = self.output = self.thinking = 0

    def update(self, usage: Any) -> None:
        if getattr(usage, "input_tokens", None) is not None:
            self.input = usage.input_tokens
        if usage.cache_read_input_tokens is not None:
            self.cache_read = usage.cache_read_input_tokens
        if usage.cache_creation_input_tokens is not None:
            self.cache_write = usage.cache_creation_input_tokens
        if usage.output_tokens is not None:
            self.output = usage.output_tokens
        if usage.output_tokens_details is not None:
            self.thinking = usage.output_tokens_details.thinking_tokens

    def usage(self) -> Usage:
        return Usage(
            input_tokens=self.input + self.cache_read + self.cache_write,
            output_tokens=self.output,
            cached_input_tokens=self.cache_read,
            reasoning_tokens=self.thinking,
        )


class AnthropicMessagesProvider:
    name = "anthropic-messages"

    def __init__(self, config: LLMConfig, endpoint: Endpoint) -> None:
        self._config = config
        self._endpoint = endpoint
        self._client = anthropic.Anthropic(
            api_key=endpoint.api_key,
            base_url=endpoint.base_url,
            max_retries=0,
            timeout=endpoint.timeout_s,
            _strict_response_validation=endpoint.strict,
        )

    def _params(self, model: str, messages: list[Message], max_output_tokens: int,
                temperature: float | None) -> dict[str, Any]:
        params: dict[str, Any] = {"model": model, "max_tokens": max_output_tokens, "messages": _turns(messages)}
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        if system:
            params["system"] = system
        if temperature is not None:
            # This SDK version has no temperature argument; the API still reads it for models that allow it.
            params["extra_body"] = {"temperature": temperature}
        return params

    def send(
        self, *, model: str, messages: list[Message], json_mode: bool, max_output_tokens: int, timeout_s: float,
        temperature: float | None = None,
    ) -> RawReply:
        params = self._params(model, messages, max_output_tokens, temperature)
        try:
            if self._config.stream:
                return self._send_streamed(params, timeout_s)
            message = self._client.messages.create(**params, timeout=timeout_s)
        except SDK_ERRORS as exc:
            raise_sdk_error(exc, self._endpoint, model)
        counter = _UsageCounter()
        counter.update(message.usage)
        text = "".join(block.text for block in message.content if block.type == "text")
        return RawReply(
            text=text,
            usage=counter.usage(),
            finish_reason=_FINISH.get(message.stop_reason or "", message.stop_reason),
            refusal=_refusal(message.stop_reason, message.stop_details, text),
            model=message.model,
        )

    def _send_streamed(self, params: dict[str, Any], timeout_s: float) -> RawReply:
        clock = StreamClock(timeout_s)
        counter = _UsageCounter()
        parts: list[str] = []
        stop_reason: str | None = None
        stop_details: Any = None
        served_model = params["model"]
        events = 0
        stream = self._client.messages.create(**params, stream=True, timeout=timeout_s)
        guard = RepetitionGuard()
        with stream:
            for event in stream:
                events += 1
                clock.check()
                if event.type == "message_start":
                    served_model = event.message.model
                    counter.update(event.message.usage)
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    parts.append(event.delta.text)
                    if guard.feed(event.delta.text):
                        # Returning closes the connection, and the server stops generating.
                        return RawReply(text="".join(parts), usage=counter.usage(), finish_reason=REPETITION,
                                        model=served_model)
                elif event.type == "message_delta":
                    stop_reason = event.delta.stop_reason or stop_reason
                    stop_details = event.delta.stop_details or stop_details
                    counter.update(event.usage)
                elif event.type == "message_stop":
                    text = "".join(parts)
                    return RawReply(
                        text=text,
                        usage=counter.usage(),
                        finish_reason=_FINISH.get(stop_reason or "", stop_reason),
                        refusal=_refusal(stop_reason, stop_details, text),
                        model=served_model,
                    )
        raise dropped_stream("message_stop", events)
