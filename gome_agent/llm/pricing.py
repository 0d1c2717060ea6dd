"""Model prices and the cost of a call.

Prices change; `LLMConfig.prices` extends or overrides this table, and a model with no
known price (a local model, or one newer than the table) costs None rather than a guess.
"""

from __future__ import annotations

from gome_agent.llm.config import Price
from gome_agent.llm.types import Usage

# USD per million tokens, list prices as published by OpenAI and Anthropic in November 2025.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-5": Price(input_per_mtok=1.25, output_per_mtok=10.0, cached_input_per_mtok=0.125),
    "gpt-5-mini": Price(input_per_mtok=0.25, output_per_mtok=2.0, cached_input_per_mtok=0.025),
    "gpt-5-nano": Price(input_per_mtok=0.05, output_per_mtok=0.40, cached_input_per_mtok=0.005),
    "gpt-5.1": Price(input_per_mtok=1.25, output_per_mtok=10.0, cached_input_per_mtok=0.125),
    "gpt-4.1": Price(input_per_mtok=2.0, output_per_mtok=8.0, cached_input_per_mtok=0.50),
    "gpt-4.1-mini": Price(input_per_mtok=0.40, output_per_mtok=1.60, cached_input_per_mtok=0.10),
    "gpt-4.1-nano": Price(input_per_mtok=0.10, output_per_mtok=0.40, cached_input_per_mtok=0.025),
    "gpt-4o": Price(input_per_mtok=2.50, output_per_mtok=10.0, cached_input_per_mtok=1.25),
    "gpt-4o-mini": Price(input_per_mtok=0.15, output_per_mtok=0.60, cached_input_per_mtok=0.075),
    "o3": Price(input_per_mtok=2.0, output_per_mtok=8.0, cached_input_per_mtok=0.50),
    "o3-mini": Price(input_per_mtok=1.10, output_per_mtok=4.40, cached_input_per_mtok=0.55),
    "o4-mini": Price(input_per_mtok=1.10, output_per_mtok=4.40, cached_input_per_mtok=0.275),
    "claude-opus-4-5": Price(input_per_mtok=5.0, output_per_mtok=25.0, cached_input_per_mtok=0.50),
    "claude-opus-4-1": Price(input_per_mtok=15.0, output_per_mtok=75.0, cached_input_per_mtok=1.50),
    "claude-opus-4-0": Price(input_per_mtok=15.0, output_per_mtok=75.0, cached_input_per_mtok=1.50),
    "claude-opus-4-20250514": Price(input_per_mtok=15.0, output_per_mtok=75.0, cached_input_per_mtok=1.50),
    "claude-sonnet-4": Price(input_per_mtok=3.0, output_per_mtok=15.0, cached_input_per_mtok=0.30),
    "claude-haiku-4-5": Price(input_per_mtok=1.0, output_per_mtok=5.0, cached_input_per_mtok=0.10),
    "claude-3-5-haiku": Price(input_per_mtok=0.80, output_per_mtok=4.0, cached_input_per_mtok=0.08),
}

# A prefix only counts when the name goes on with one of these, so "gpt-5-2025-08-07" is
# priced as "gpt-5" but "gpt-5.4" (a different model) is not.
_SEPARATORS = ("-", "@", ":")


def _lookup(name: str, table: dict[str, Price]) -> Price | None:
    if name in table:
        return table[name]
    matches = [key for key in table if name.startswith(key) and name[len(key) : len(key) + 1] in _SEPARATORS]
    return table[max(matches, key=len)] if matches else None


def price_for(model: str, extra: dict[str, Price]) -> Price | None:
    """The price of a model: exact name, then longest prefix; `extra` wins over the built-in table."""
    table = {key.lower(): value for key, value in {**DEFAULT_PRICES, **extra}.items()}
    name = model.lower()
    price = _lookup(name, table)
    if price is None and "/" in name:
        # Gateways name models "vendor/model" (OpenRouter, LiteLLM).
        price = _lookup(name.rsplit("/", 1)[1], table)
    return price


def cost_usd(usage: Usage, price: Price | None) -> float | None:
    """USD cost of the usage; None when the price is unknown."""
    if price is None:
        return None
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    cached_rate = price.input_per_mtok if price.cached_input_per_mtok is None else price.cached_input_per_mtok
    total = (
        (usage.input_tokens - cached) * price.input_per_mtok
        + cached * cached_rate
        + usage.output_tokens * price.output_per_mtok
    )
    return total / 1_000_000
