"""Data types of the LLM layer: messages, token usage, completions and the llm_calls.jsonl record."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T", bound=BaseModel)


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class Usage(BaseModel):
    """Token counts of one call, the same way for every provider.

    `input_tokens` includes `cached_input_tokens` (Anthropic's separate cache counts are
    added in); `output_tokens` includes `reasoning_tokens`.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )


REPETITION = "repetition"  # the finish_reason of a streamed reply gome stopped in a loop (providers.RepetitionGuard)


class Completion(BaseModel):
    """One successful call.

    `finish_reason` is normalised across providers: "stop" (natural end), "length" (the
    output token limit was hit), "length_cut" (the reply was cut at `max_reply_chars`),
    "repetition" (gome stopped a streamed reply that had fallen into a loop); anything else is the
    provider's own word.
    """

    text: str
    model: str
    usage: Usage
    cost_usd: float | None  # None when the model has no known price
    latency_s: float
    attempts: int
    finish_reason: str | None

    @property
    def cut(self) -> bool:
        """Whether the reply was cut off before it ended (at the output limit, or stopped in a loop)."""
        return self.finish_reason in ("length", "length_cut", REPETITION)


class Structured(BaseModel, Generic[T]):
    """A reply parsed into a schema, with the completions it took (2 when the repair re-ask was used)."""

    value: T
    completions: list[Completion]


class LLMCallRecord(BaseModel):
    """One line of llm_calls.jsonl: one call with all its attempts, successful or not."""

    ts: str
    call_id: str
    role: str
    provider: str
    api: str
    model: str
    status: Literal["ok", "error"]
    attempts: int
    latency_s: float  # the whole call: waits for a server slot, failed attempts and retries included
    slot_wait_s: float = 0.0  # waiting for a free slot of the server (llm/concurrency.py)
    retry_s: float = 0.0  # failed attempts and the waits between attempts
    interrupted: int = 0  # attempts cut off by another request to the server, tried again uncounted
    concurrency_limit: int | None = None  # the server's limit when the call ended (None: no limit)
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None
    error: str | None = None
    finish_reason: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, Any] = Field(default_factory=dict)
    messages: list[Message] | None = None
    reply: str | None = None
