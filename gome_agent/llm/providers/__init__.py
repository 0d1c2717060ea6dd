"""Providers: one per wire API, each turning a list of messages into a RawReply through an official SDK.

Every provider raises the same errors: `TransientError` (retry), `LLMFatalError`
(stop the run), `LLMError` (this request cannot work). Retrying is the client's job.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import NoReturn, Protocol

import anthropic
import httpx2
import openai
from pydantic import BaseModel

from gome_agent.errors import ConfigError, LLMError, LLMFatalError
from gome_agent.llm.config import LLMConfig
from gome_agent.llm.retry import TransientError, classify_status
from gome_agent.llm.types import Message, Usage

# Local servers (llama.cpp, vLLM, Ollama) accept any key, but the SDK insists on one.
PLACEHOLDER_KEY = "not-needed"


class RawReply(BaseModel):
    text: str
    usage: Usage
    finish_reason: str | None
    refusal: str | None = None
    model: str


class Provider(Protocol):
    name: str  # "openai-chat" | "openai-responses" | "anthropic-messages" | "scripted"

    def send(
        self, *, model: str, messages: list[Message], json_mode: bool, max_output_tokens: int, timeout_s: float,
        temperature: float | None = None,
    ) -> RawReply: ...


@dataclass(frozen=True)
class Endpoint:
    """Where and how a provider connects; the key lives only in memory (never in repr)."""

    provider: str
    base_url: str | None
    key_env: str
    api_key: str = field(repr=False)
    timeout_s: float
    strict: bool = False


def read_api_key(config: LLMConfig) -> str:
    """The API key from the environment; ConfigError naming the variable when a required one is missing."""
    var = config.key_env_var()
    key = os.environ.get(var, "").strip()
    if key:
        return key
    if config.provider == "openai-compatible":
        return PLACEHOLDER_KEY
    raise ConfigError(
        f"LLM provider {config.provider!r} needs an API key: set the environment variable {var} "
        "(or name another variable in the setting 'api_key_env')"
    )


def build_provider(config: LLMConfig, *, strict: bool = False) -> Provider:
    """The provider for the configured API, with its SDK client built once.

    `strict` turns on the SDKs' strict response validation, so tests catch a fake server
    (or an SDK upgrade) that drifts from the real wire format.
    """
    from gome_agent.llm.providers.anthropic_messages import AnthropicMessagesProvider
    from gome_agent.llm.providers.openai_chat import OpenAIChatProvider
    from gome_agent.llm.providers.openai_responses import OpenAIResponsesProvider

    endpoint = Endpoint(
        provider=config.provider,
        base_url=config.base_url,
        key_env=config.key_env_var(),
        api_key=read_api_key(config),
        timeout_s=config.request_timeout_s,
        strict=strict,
    )
    api = config.resolved_api()
    if api == "chat":
        return OpenAIChatProvider(config, endpoint)
    if api == "responses":
        return OpenAIResponsesProvider(config, endpoint)
    return AnthropicMessagesProvider(config, endpoint)


def estimate_tokens(text: str) -> int:
    """Rough token count (4 characters a token) for servers that report no usage."""
    return len(text) // 4


def estimated_usage(messages: list[Message], text: str) -> Usage:
    return Usage(
        input_tokens=estimate_tokens("".join(m.content for m in messages)), output_tokens=estimate_tokens(text)
    )


class StreamClock:
    """Bounds a whole streamed reply by the attempt's timeout, checked at each event.

    The SDK timeout bounds each read only, so a reply that keeps trickling would otherwise
    run on; a server that goes silent is cut by that read timeout.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._end = time.monotonic() + timeout_s

    def check(self) -> None:
        if time.monotonic() > self._end:
            raise TransientError(f"the streamed reply took longer than {self.timeout_s:.1f}s")


class RepetitionGuard:
    """Spots a streamed reply stuck in a loop, so that it is stopped instead of running to the output limit.

    The 0.5B model on llama.cpp looped on its instructions ("each whole fit_predict, each whole ...",
    "REPLACE\nlines copied exactly from the current main.py") for 1,536 tokens, 90-130 s a reply on two
    CPU cores. A reply whose end is one piece of text repeated `min_copies` times over at least
    `min_chars` characters is looping: code and prose never repeat that exactly that often.
    """

    def __init__(self, min_copies: int = 6, min_chars: int = 600, max_period: int = 400, every: int = 64) -> None:
        self.min_copies, self.min_chars, self.max_period, self.every = min_copies, min_chars, max_period, every
        self._parts: list[str] = []
        self._length = 0
        self._checked = 0

    def feed(self, piece: str) -> bool:
        """Add a piece of the reply; True when the reply so far ends in a loop."""
        self._parts.append(piece)
        self._length += len(piece)
        if self._length - self._checked < self.every or self._length < self.min_chars:
            return False
        self._checked = self._length
        text = "".join(self._parts)
        self._parts = [text]
        return self.loops(text)

    def loops(self, text: str) -> bool:
        for period in range(1, self.max_period + 1):
            copies = max(self.min_copies, -(-self.min_chars // period))
            span = period * copies
            if span > len(text):
                break
            unit = text[-period:]
            if text[-span:] == unit * copies:
                return True
        return False


def dropped_stream(what: str, events: int) -> TransientError:
    return TransientError(f"dropped stream: the reply ended without {what} after {events} events", broken_off=True)


def _error_fields(body: object) -> tuple[str | None, str]:
    """(code, message) from an error body of either SDK (OpenAI passes the inner object)."""
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        code = inner.get("code") or inner.get("type")
        message = inner.get("message")
        return (str(code) if code else None), (str(message) if message else str(body))
    return None, str(body) if body else ""


def raise_sdk_error(exc: Exception, endpoint: Endpoint, model: str) -> NoReturn:
    """Re-raise an SDK or transport failure as TransientError, LLMFatalError or LLMError."""
    if isinstance(exc, (openai.APIStatusError, anthropic.APIStatusError)):
        code, message = _error_fields(exc.body)
        error = classify_status(
            exc.status_code,
            code=code,
            message=message,
            headers=exc.response.headers,
            provider=endpoint.provider,
            model=model,
            key_env=endpoint.key_env,
            secret=endpoint.api_key,
        )
        # The SDK's own message carries the raw body, which may echo the key: keep it out of tracebacks.
        raise error from None
    if isinstance(exc, (openai.APITimeoutError, anthropic.APITimeoutError, httpx2.TimeoutException)):
        raise TransientError(f"request timed out ({type(exc).__name__})") from exc
    if isinstance(exc, (openai.APIConnectionError, anthropic.APIConnectionError, httpx2.RequestError)):
        cause = exc.__cause__ or exc
        # Past the connect, the request reached the server: a break now cut its reply off.
        raise TransientError(f"connection failed: {type(cause).__name__}: {cause}",
                             broken_off=not isinstance(cause, httpx2.ConnectError)) from exc
    if isinstance(exc, (openai.APIResponseValidationError, anthropic.APIResponseValidationError)):
        raise LLMError(f"{endpoint.provider} sent a reply that does not match its API schema: {exc}") from exc
    if isinstance(exc, (openai.APIError, anthropic.APIError)):
        # An error event in the middle of a stream (server overloaded, internal error).
        code, message = _error_fields(exc.body)
        if code == "insufficient_quota":
            raise LLMFatalError(f"{endpoint.provider} account has no quota left: {message}") from None
        raise TransientError(f"the server reported an error mid-reply ({code}): {message}") from exc
    raise exc


SDK_ERRORS: tuple[type[Exception], ...] = (openai.APIError, anthropic.APIError, httpx2.RequestError)
