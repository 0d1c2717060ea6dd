"""Retry policy of LLM calls: which failures deserve another attempt, and how long to wait.

The SDKs' own retries are off; this loop retries instead, so that every attempt is
counted and logged and no attempt or wait runs past the caller's deadline.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import TypeVar

from gome_agent.errors import LLMError, LLMFatalError
from gome_agent.secrets import Redactor, default_redactor

log = logging.getLogger(__name__)

R = TypeVar("R")

RETRY_AFTER_CAP_S = 120.0
_RETRYABLE_STATUS = {408, 409, 429}
_QUOTA_CODES = {"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"}
_MODEL_NOT_FOUND_CODES = {"model_not_found"}


class TransientError(Exception):
    """A failure that another attempt may fix: rate limit, 5xx, timeout, dropped stream, empty reply.

    `exhausted` is the error raised when no attempt is left (LLMOutputError for empty replies).
    `broken_off`: the server cut the reply off mid-way (a stream that ended before its end, a
    connection broken after the request went out). `interrupted` is set by the client when that
    was another request of gome to the same server (llm/concurrency.py): the attempt is tried
    again at once and not counted against `max_attempts`.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        exhausted: type[LLMError] = LLMError,
        broken_off: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.exhausted = exhausted
        self.broken_off = broken_off
        self.interrupted = False


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks us to wait (`retry-after-ms`, then `retry-after`), capped at 120 s."""
    wait: float | None = None
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            wait = float(millis) / 1000
        except ValueError:
            wait = None
    seconds = headers.get("retry-after")
    if wait is None and seconds is not None:
        try:
            wait = float(seconds)
        except ValueError:
            try:
                wait = parsedate_to_datetime(seconds).timestamp() - time.time()
            except (TypeError, ValueError):
                wait = None
    if wait is None:
        return None
    return min(max(wait, 0.0), RETRY_AFTER_CAP_S)


def backoff_s(retry_index: int, base_s: float, max_s: float, rand: Callable[[], float] = random.random) -> float:
    """Wait before retry number `retry_index` (0 = first): base * 2**n capped, with jitter.

    The jitter keeps half the wait fixed, so parallel traces that failed together spread
    out without any of them retrying at once.
    """
    ceiling = min(max_s, base_s * 2**retry_index)
    return ceiling * (0.5 + 0.5 * rand())


def classify_status(
    status: int,
    *,
    code: str | None,
    message: str,
    headers: Mapping[str, str],
    provider: str,
    model: str,
    key_env: str,
    secret: str | None,
) -> Exception:
    """The exception for an HTTP error reply: TransientError, LLMFatalError or LLMError.

    `secret` (the API key) is scrubbed from the server's message, which may echo it.
    """
    redact = Redactor([secret] if secret else [])
    said = default_redactor()(redact(message or "no message")).strip()
    if len(said) > 1000:
        said = said[:1000] + "..."
    if status in (401, 403):
        return LLMFatalError(
            f"{provider} refused the API key (HTTP {status}): check the key in the environment "
            f"variable {key_env}. Server said: {said}"
        )
    if status == 404 or code in _MODEL_NOT_FOUND_CODES:
        return LLMFatalError(
            f"unknown model {model!r} at {provider} (HTTP {status}); check the model name and base_url. "
            f"Server said: {said}"
        )
    if code in _QUOTA_CODES or status == 402:
        return LLMFatalError(
            f"{provider} account has no quota or credit left (HTTP {status}, {code}); "
            f"check billing for the key in {key_env}. Server said: {said}"
        )
    if status in _RETRYABLE_STATUS or status >= 500 or status < 400:
        # status < 400: an error event inside a 200 stream (overloaded, server error).
        return TransientError(f"HTTP {status} ({code or 'no code'}): {said}", retry_after_s=parse_retry_after(headers))
    return LLMError(f"{provider} rejected the request for model {model!r} (HTTP {status}, {code}): {said}")


class RetryLoop:
    """Runs one LLM call with retries; `attempts` tells how many tries were made, `interrupted` how
    many of them another request cut off (those are not counted against `max_attempts`, up to
    `max_attempts` of them: a server that keeps cutting replies once the limit is 1 is a failure)."""

    def __init__(
        self,
        *,
        max_attempts: int,
        backoff_base_s: float,
        backoff_max_s: float,
        deadline: float | None,
        what: str,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.deadline = deadline
        self.what = what
        self.attempts = 0
        self.interrupted = 0
        self._sleep = sleep
        self._clock = clock

    def run(self, attempt: Callable[[float], R], request_timeout_s: float) -> R:
        """Call `attempt(timeout_s)` until it returns, raises a non-transient error, or tries run out."""
        last: TransientError | None = None
        while True:
            timeout_s = request_timeout_s
            if self.deadline is not None:
                remaining = self.deadline - self._clock()
                if remaining <= 0:
                    raise LLMError(self._deadline_message("no time left for another attempt", last))
                timeout_s = min(timeout_s, remaining)
            self.attempts += 1
            try:
                return attempt(timeout_s)
            except TransientError as exc:
                last = exc
            if last.interrupted and self.interrupted < self.max_attempts:
                # The limit has dropped to one request at a time, so the next try waits for its turn.
                self.interrupted += 1
                log.info("%s: attempt %d was cut off by another request (%s); trying again", self.what,
                         self.attempts, last)
                continue
            if self.attempts - self.interrupted >= self.max_attempts:
                raise last.exhausted(f"{self.what} failed after {self.attempts} attempts; last error: {last}")
            wait = last.retry_after_s
            if wait is None:
                wait = backoff_s(self.attempts - 1, self.backoff_base_s, self.backoff_max_s)
            if self.deadline is not None and self._clock() + wait >= self.deadline:
                raise LLMError(self._deadline_message(f"waiting {wait:.1f}s for the next attempt would pass it", last))
            log.warning("%s: attempt %d failed (%s); retrying in %.1fs", self.what, self.attempts, last, wait)
            self._sleep(wait)

    def _deadline_message(self, why: str, last: TransientError | None) -> str:
        tail = f"; last error: {last}" if last is not None else ""
        return f"deadline reached for {self.what} after {self.attempts} attempts ({why}){tail}"
