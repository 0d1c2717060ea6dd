"""LLMConfig resolution and validation, the price table and cost arithmetic."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gome_agent.errors import ConfigError
from gome_agent.llm import DEFAULT_PRICES, LLMConfig, Price, Usage, cost_usd, price_for


@pytest.mark.parametrize(
    ("provider", "expected"), [("openai", "responses"), ("anthropic", "messages"), ("openai-compatible", "chat")]
)
def test_default_api_per_provider(provider: str, expected: str) -> None:
    base_url = "http://127.0.0.1:8080/v1" if provider == "openai-compatible" else None
    assert LLMConfig(provider=provider, base_url=base_url).resolved_api() == expected


@pytest.mark.parametrize(("provider", "api"), [("anthropic", "chat"), ("anthropic", "responses"), ("openai", "messages")])
def test_impossible_provider_api_pairs(provider: str, api: str) -> None:
    with pytest.raises(ConfigError, match=f"api='{api}'.*provider='{provider}'"):
        LLMConfig(provider=provider, api=api)


def test_openai_compatible_needs_a_base_url() -> None:
    with pytest.raises(ConfigError, match="base_url"):
        LLMConfig(provider="openai-compatible")


def test_model_for_role() -> None:
    config = LLMConfig(model="gpt-5", role_models={"code": "gpt-5-mini"})
    assert config.model_for("code") == "gpt-5-mini"
    assert config.model_for("diagnose") == "gpt-5"


def test_key_variable() -> None:
    assert LLMConfig().key_env_var() == "OPENAI_API_KEY"
    assert LLMConfig(provider="anthropic").key_env_var() == "ANTHROPIC_API_KEY"
    assert LLMConfig(api_key_env="TEAM_KEY").key_env_var() == "TEAM_KEY"


def test_keys_cannot_be_config_fields() -> None:
    with pytest.raises(ValidationError, match="api_key"):
        LLMConfig.model_validate({"api_key": "sk-live-123"})


def test_limits_are_validated() -> None:
    with pytest.raises(ValidationError, match="max_attempts"):
        LLMConfig(max_attempts=0)


def test_price_exact_and_prefix() -> None:
    assert price_for("gpt-5", {}) == DEFAULT_PRICES["gpt-5"]
    assert price_for("gpt-5-2025-08-07", {}) == DEFAULT_PRICES["gpt-5"]
    # Longest prefix wins: the mini model is not priced as gpt-5.
    assert price_for("gpt-5-mini-2025-08-07", {}) == DEFAULT_PRICES["gpt-5-mini"]
    assert price_for("claude-haiku-4-5-20251001", {}) == DEFAULT_PRICES["claude-haiku-4-5"]
    assert price_for("openai/gpt-4.1-mini", {}) == DEFAULT_PRICES["gpt-4.1-mini"]


def test_unknown_models_have_no_price() -> None:
    assert price_for("qwen2.5-coder-0.5b-instruct", {}) is None
    # Not a dated variant of gpt-5 but another model: no guess.
    assert price_for("gpt-5.4", {}) is None


def test_config_prices_extend_and_override() -> None:
    mine = Price(input_per_mtok=0.0, output_per_mtok=0.0)
    cheap_gpt5 = Price(input_per_mtok=1.0, output_per_mtok=2.0)
    extra = {"qwen2.5-coder": mine, "gpt-5": cheap_gpt5}
    assert price_for("qwen2.5-coder:7b", extra) == mine
    assert price_for("gpt-5-2025-08-07", extra) == cheap_gpt5


def test_cost_arithmetic() -> None:
    usage = Usage(input_tokens=2_000_000, output_tokens=500_000, cached_input_tokens=1_000_000)
    price = Price(input_per_mtok=1.0, output_per_mtok=4.0, cached_input_per_mtok=0.25)
    assert cost_usd(usage, price) == pytest.approx(1.0 + 0.25 + 2.0)
    # Without a cached price, cached tokens cost the input price.
    assert cost_usd(usage, Price(input_per_mtok=1.0, output_per_mtok=4.0)) == pytest.approx(4.0)
    assert cost_usd(usage, None) is None
