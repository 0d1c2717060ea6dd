"""The LLM client the agent calls: retries, JSON answers with one repair re-ask, cost accounting, call log.

Every call (not every attempt) appends one LLMCallRecord to llm_calls.jsonl, failed calls
included, and adds its tokens and cost to the client's UsageLedger. Each attempt holds a slot of
the endpoint's concurrency limit (llm/concurrency.py; its record lives beside the call log, in
`endpoints/`). The wall time of every call, waits and failed calls included, is added to the
calling thread's LLM clock (`thread_llm_time`), which a step's meter reads. Once the run's spend
reaches a cap (llm/spend.py), no call is made.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from gome_agent import jsonl
from gome_agent.errors import LLMError, LLMOutputError, SpendCapReached
from gome_agent.llm.concurrency import EndpointGate, Slot
from gome_agent.llm.config import LLMConfig
from gome_agent.llm.jsonparse import parse_json_as
from gome_agent.llm.pricing import cost_usd, price_for
from gome_agent.llm.providers import Provider, RawReply, build_provider
from gome_agent.llm.retry import RetryLoop, TransientError
from gome_agent.llm.spend import CallsLogTotals, Spend, cap_reached, check_priced
from gome_agent.llm.types import Completion, LLMCallRecord, Message, Structured, Usage

T = TypeVar("T", bound=BaseModel)

log = logging.getLogger(__name__)

_REPAIR_ERROR_CHARS = 2000
_JSON_HINT = "Reply with a single JSON object only."


def _bucket() -> dict[str, Any]:
    return {
        "calls": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "cached_input_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": 0.0,
        "unpriced_calls": 0,
    }


@dataclass(frozen=True)
class LLMTime:
    """Wall time spent in LLM calls: all of it, and the parts spent waiting for a server slot and
    in failed attempts and the waits between attempts."""

    total_s: float = 0.0
    wait_s: float = 0.0
    retry_s: float = 0.0

    def __add__(self, other: LLMTime) -> LLMTime:
        return LLMTime(self.total_s + other.total_s, self.wait_s + other.wait_s, self.retry_s + other.retry_s)

    def __sub__(self, other: LLMTime) -> LLMTime:
        return LLMTime(self.total_s - other.total_s, self.wait_s - other.wait_s, self.retry_s - other.retry_s)


_thread_time = threading.local()


def thread_llm_time() -> LLMTime:
    """The LLM time of this thread's calls so far, failed calls included: a step's meter subtracts
    the value at its start, so that calls which raised (and so returned no Completion) still count."""
    spent: LLMTime = getattr(_thread_time, "spent", LLMTime())
    return spent


def _charge(spent: LLMTime) -> None:
    _thread_time.spent = thread_llm_time() + spent


class UsageLedger:
    """Thread-safe running totals of tokens and cost, overall, per role and per model.

    Failed calls count too (their empty or cut replies were billed). `cost_usd` sums the
    calls with a known price; `unpriced_calls` counts the others.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = _bucket()
        self._by_role: dict[str, dict[str, Any]] = {}
        self._by_model: dict[str, dict[str, Any]] = {}

    def add(self, role: str, model: str, usage: Usage, cost: float | None) -> None:
        with self._lock:
            for bucket in (
                self._total,
                self._by_role.setdefault(role, _bucket()),
                self._by_model.setdefault(model, _bucket()),
            ):
                bucket["calls"] += 1
                bucket["input_tokens"] += usage.input_tokens
                bucket["output_tokens"] += usage.output_tokens
                bucket["cached_input_tokens"] += usage.cached_input_tokens
                bucket["reasoning_tokens"] += usage.reasoning_tokens
                if cost is None:
                    bucket["unpriced_calls"] += 1
                else:
                    bucket["cost_usd"] += cost

    def totals(self) -> dict[str, Any]:
        with self._lock:
            return {
                **self._total,
                "by_role": {role: dict(bucket) for role, bucket in self._by_role.items()},
                "by_model": {model: dict(bucket) for model, bucket in self._by_model.items()},
            }


class LLMClient:
    """Sends chat messages to the configured LLM. Safe to share between threads.

    `provider` replaces the one built from `config` (the scripted provider, or a strict
    one in tests); `context` is copied into every call record (e.g. {"trace": 0}).
    """

    def __init__(
        self,
        config: LLMConfig,
        calls_log: Path | None,
        *,
        provider: Provider | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.calls_log = calls_log
        self.context = dict(context or {})
        self.ledger = UsageLedger()
        check_priced(config)
        capped = config.max_run_cost_usd is not None or config.max_run_tokens is not None
        self._logged = CallsLogTotals(calls_log) if capped and calls_log is not None else None
        self._provider = provider if provider is not None else build_provider(config)
        self.gate: EndpointGate | None = None  # the scripted provider has no server to share
        if self._provider.name == "scripted":
            self._provider_label, self._api_label = "scripted", "scripted"
        else:
            self._provider_label, self._api_label = config.provider, config.resolved_api()
            self.gate = EndpointGate(config, state_dir=calls_log.parent / "endpoints" if calls_log else None)

    @contextmanager
    def _slot(self, deadline: float | None) -> Iterator[Slot]:
        if self.gate is None:
            yield Slot(index=None, waited_s=0.0, limit=None)
            return
        with self.gate.slot(deadline) as slot:
            yield slot

    def spend_capped(self) -> str | None:
        """Which cap of the run's LLM spend is reached (llm/spend.py), in words; None: calls may go on."""
        if self.config.max_run_cost_usd is None and self.config.max_run_tokens is None:
            return None
        own = self.ledger.totals()
        logged = self._logged.totals() if self._logged is not None else Spend()
        # The run's log holds this client's calls too, unless writing it failed (a full disk).
        spend = Spend(max(logged.tokens, own["input_tokens"] + own["output_tokens"]),
                      max(logged.cost_usd, own["cost_usd"]))
        return cap_reached(self.config, spend)

    def complete(
        self,
        messages: list[Message],
        *,
        role: str,
        json_mode: bool = False,
        max_output_tokens: int | None = None,
        deadline: float | None = None,
        tags: dict[str, Any] | None = None,
    ) -> Completion:
        """One reply. Raises LLMFatalError (retrying cannot help), LLMOutputError (empty or refused
        reply), LLMError (retries exhausted, deadline reached, request rejected) or SpendCapReached
        (the run's spend reached a cap: no call is made)."""
        capped = self.spend_capped()
        if capped is not None:
            raise SpendCapReached(f"LLM spend cap reached: {capped}")
        model = self.config.model_for(role)
        limit = max_output_tokens or self.config.max_output_tokens
        loop = RetryLoop(
            max_attempts=self.config.max_attempts,
            backoff_base_s=self.config.backoff_base_s,
            backoff_max_s=self.config.backoff_max_s,
            deadline=deadline,
            what=f"LLM call (role {role}, model {model})",
        )
        # Empty replies are retried but still billed, so their tokens are counted too.
        spent = Usage()
        waited = last_attempt_s = 0.0

        def attempt(timeout_s: float) -> RawReply:
            nonlocal spent, waited, last_attempt_s
            with self._slot(deadline) as slot:
                waited += slot.waited_s
                if deadline is not None:
                    # The wait for a slot came out of this attempt's time.
                    timeout_s = min(timeout_s, deadline - time.time())
                    if timeout_s <= 0:
                        raise LLMError(f"deadline reached for the LLM call (role {role}, model {model}) "
                                       f"after waiting {slot.waited_s:.0f}s for the server")
                began = time.monotonic()
                try:
                    reply = self._provider.send(
                        model=model, messages=messages, json_mode=json_mode, max_output_tokens=limit,
                        timeout_s=timeout_s, temperature=self.config.temperature_for(role),
                    )
                except TransientError as exc:
                    exc.interrupted = exc.broken_off and self.gate is not None and self.gate.note_cut(slot)
                    raise
                finally:
                    last_attempt_s = time.monotonic() - began
            spent = spent + reply.usage
            if reply.refusal:
                raise LLMOutputError(f"the model {model} refused to answer: {reply.refusal[:1000]}")
            if not reply.text.strip():
                raise TransientError(
                    f"empty reply from {model} (finish_reason {reply.finish_reason})", exhausted=LLMOutputError
                )
            return reply

        started = time.monotonic()
        try:
            reply = loop.run(attempt, self.config.request_timeout_s)
        except Exception as exc:
            elapsed = time.monotonic() - started
            times = LLMTime(elapsed, waited, max(0.0, elapsed - waited))
            _charge(times)
            self._account(
                role=role,
                model=model,
                usage=spent,
                times=times,
                loop=loop,
                messages=messages,
                tags=tags,
                error=str(exc) or type(exc).__name__,
            )
            raise
        elapsed = time.monotonic() - started
        times = LLMTime(elapsed, waited, max(0.0, elapsed - waited - last_attempt_s))
        _charge(times)
        text, finish_reason = reply.text, reply.finish_reason
        if len(text) > self.config.max_reply_chars:
            text, finish_reason = text[: self.config.max_reply_chars], "length_cut"
        completion = Completion(
            text=text,
            model=reply.model or model,
            usage=spent,
            cost_usd=self._cost(model, reply.model, spent),
            latency_s=elapsed,
            attempts=loop.attempts,
            finish_reason=finish_reason,
        )
        self._account(
            role=role,
            model=model,
            usage=spent,
            times=times,
            loop=loop,
            messages=messages,
            tags=tags,
            completion=completion,
        )
        return completion

    def structured(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        role: str,
        deadline: float | None = None,
        tags: dict[str, Any] | None = None,
    ) -> Structured[T]:
        """A reply parsed into `schema`. An unusable reply gets one re-ask that quotes the exact
        problem; if that is unusable too, LLMOutputError carries the problem."""
        messages = list(messages)
        if not any("json" in m.content.lower() for m in messages):
            # JSON modes refuse prompts that never mention JSON, and a model told nothing guesses.
            messages.append(Message(role="user", content=_JSON_HINT))
        base_tags = {**(tags or {}), "schema": schema.__name__}
        result = Structured[schema]  # type: ignore[valid-type]
        first = self.complete(messages, role=role, json_mode=self.config.json_mode, deadline=deadline, tags=base_tags)
        try:
            return result(value=_parse_whole(first, schema), completions=[first])
        except ValueError as exc:
            problem = str(exc)
        if len(problem) > _REPAIR_ERROR_CHARS:
            problem = problem[:_REPAIR_ERROR_CHARS] + " ..."
        repair = [
            *messages,
            Message(role="assistant", content=first.text),
            Message(
                role="user",
                content=(
                    f"Your reply could not be used: {problem}\n"
                    + ("Reply with a shorter JSON object (fewer and shorter items), and only the object: "
                       "no prose, no code fences." if first.cut else
                       "Reply with only the corrected JSON object: no prose, no code fences.")
                ),
            ),
        ]
        second = self.complete(
            repair, role=role, json_mode=self.config.json_mode, deadline=deadline, tags={**base_tags, "repair": True}
        )
        try:
            return result(value=_parse_whole(second, schema), completions=[first, second])
        except ValueError as exc:
            raise LLMOutputError(
                f"the {role} reply is still unusable after the repair re-ask ({schema.__name__}): {exc}",
                completions=[first, second],
            ) from None

    def _cost(self, model: str, served_model: str, usage: Usage) -> float | None:
        price = price_for(model, self.config.prices)
        if price is None and served_model:
            price = price_for(served_model, self.config.prices)
        return cost_usd(usage, price)

    def _account(
        self,
        *,
        role: str,
        model: str,
        usage: Usage,
        times: LLMTime,
        loop: RetryLoop,
        messages: list[Message],
        tags: dict[str, Any] | None,
        completion: Completion | None = None,
        error: str | None = None,
    ) -> None:
        cost = completion.cost_usd if completion is not None else self._cost(model, "", usage)
        self.ledger.add(role, model, usage, cost)
        if self.calls_log is None:
            return
        record = LLMCallRecord(
            ts=datetime.now(timezone.utc).isoformat(),
            call_id=uuid.uuid4().hex,
            role=role,
            provider=self._provider_label,
            api=self._api_label,
            model=model,
            status="ok" if completion is not None else "error",
            attempts=loop.attempts,
            latency_s=round(times.total_s, 3),
            slot_wait_s=round(times.wait_s, 3),
            retry_s=round(times.retry_s, 3),
            interrupted=loop.interrupted,
            concurrency_limit=self.gate.known_limit if self.gate is not None else None,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost_usd=cost,
            error=error,
            finish_reason=completion.finish_reason if completion is not None else None,
            context=self.context,
            tags=dict(tags or {}),
            messages=list(messages) if self.config.log_prompts else None,
            reply=completion.text if completion is not None and self.config.log_prompts else None,
        )
        try:
            jsonl.append(self.calls_log, record)
        except OSError as exc:
            # A full disk must not turn a good answer into a failed call; the ledger still counts it.
            log.error("could not append to %s: %s", self.calls_log, exc)


def _parse_whole(completion: Completion, schema: type[T]) -> T:
    """The reply parsed into `schema`; a reply cut off at the output limit is never parsed (a JSON
    object found in it could be an example or a fragment, not the whole answer)."""
    if completion.cut:
        raise ValueError(f"the reply was cut off at the output limit ({completion.usage.output_tokens} tokens) "
                         "before the JSON object ended")
    return parse_json_as(completion.text, schema)


def create_client(config: LLMConfig, calls_log: Path | None, *, context: dict[str, Any] | None = None) -> LLMClient:
    """The client for `config`; ConfigError naming the variable when the API key is not in the environment."""
    return LLMClient(config, calls_log, context=context)

