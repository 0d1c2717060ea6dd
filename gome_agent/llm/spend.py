"""The run's LLM spend against its caps (`llm.max_run_cost_usd`, `llm.max_run_tokens`).

Every process of a run (the coordinator and each trace) appends its calls to the run's
`llm_calls.jsonl`, so that file holds the run's spend across processes and over the sessions of
a resumed run. A client reads only what was appended since its last look (never the whole log of
a 12-hour run again) and makes no call once a cap is reached. Calls already under way in other
processes still finish and count, so a run ends at most those calls past its cap.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

from gome_agent.errors import ConfigError
from gome_agent.llm.config import LLMConfig
from gome_agent.llm.pricing import price_for


@dataclass(frozen=True)
class Spend:
    tokens: int = 0  # input and output
    cost_usd: float = 0.0  # of the calls with a known price


class CallsLogTotals:
    """The spend in a calls log, read incrementally; thread-safe (traces may share a client)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._spend = Spend()
        self._lock = threading.Lock()

    def totals(self) -> Spend:
        with self._lock:
            try:
                with open(self.path, "rb") as f:
                    f.seek(self._offset)
                    chunk = f.read()
            except OSError:
                return self._spend  # no call logged yet
            end = chunk.rfind(b"\n")
            if end < 0:
                return self._spend  # a line still being written: wait for its newline
            self._offset += end + 1
            tokens, cost = self._spend.tokens, self._spend.cost_usd
            for line in chunk[: end + 1].splitlines():
                try:
                    call = json.loads(line)
                except ValueError:
                    continue  # cut by a hard kill; the writer started the next record on a new line
                if isinstance(call, dict):
                    tokens += int(_number(call.get("input_tokens")) + _number(call.get("output_tokens")))
                    cost += _number(call.get("cost_usd"))
            self._spend = Spend(tokens, cost)
            return self._spend


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def cap_reached(config: LLMConfig, spend: Spend) -> str | None:
    """Which cap `spend` reached, in words; None when none is set or reached."""
    if config.max_run_tokens is not None and spend.tokens >= config.max_run_tokens:
        return (f"the run's LLM calls used {spend.tokens:,} tokens, reaching its cap of {config.max_run_tokens:,} "
                "(llm.max_run_tokens)")
    if config.max_run_cost_usd is not None and spend.cost_usd >= config.max_run_cost_usd:
        return (f"the run's LLM calls cost ${spend.cost_usd:,.4f}, reaching its cap of ${config.max_run_cost_usd:,.2f} "
                "(llm.max_run_cost_usd)")
    return None


def check_priced(config: LLMConfig) -> None:
    """A dollar cap needs the price of every model the run calls; ConfigError naming one without."""
    if config.max_run_cost_usd is None:
        return
    for model in sorted({config.model, *config.role_models.values()}):
        if price_for(model, config.prices) is None:
            raise ConfigError(
                f"llm.max_run_cost_usd is set, but the price of the model {model!r} is unknown, so its calls could "
                f"not be counted: give it under llm.prices (USD per million tokens), or cap tokens with "
                "llm.max_run_tokens instead")
