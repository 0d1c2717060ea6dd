"""An in-process provider whose replies come from a Python function: for benchmarks and dry runs, no HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable

from gome_agent.llm.providers import RawReply, estimated_usage
from gome_agent.llm.retry import TransientError
from gome_agent.llm.types import Message


class ScriptedProvider:
    name = "scripted"

    def __init__(self, responder: Callable[[list[Message], str], str], delay_s: float = 0.0) -> None:
        self._responder = responder
        self._delay_s = delay_s

    def send(
        self, *, model: str, messages: list[Message], json_mode: bool, max_output_tokens: int, timeout_s: float,
        temperature: float | None = None,
    ) -> RawReply:
        if self._delay_s > timeout_s:
            time.sleep(timeout_s)
            raise TransientError(f"scripted reply takes {self._delay_s:.1f}s, more than the {timeout_s:.1f}s timeout")
        time.sleep(self._delay_s)
        text = self._responder(messages, model)
        return RawReply(text=text, usage=estimated_usage(messages, text), finish_reason="stop", model=model)
