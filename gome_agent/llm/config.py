"""Settings of the LLM layer: which provider and API, which model per role, limits, retries and prices."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gome_agent.errors import ConfigError

_DEFAULT_API = {"openai": "responses", "openai-compatible": "chat", "anthropic": "messages"}
_ALLOWED_APIS = {
    "openai": ("chat", "responses"),
    "openai-compatible": ("chat", "responses"),
    "anthropic": ("messages",),
}
_DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "openai-compatible": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


class Price(BaseModel):
    """USD per million tokens; cached input falls back to the input price when unknown."""

    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)


# Debug and update replies should be the likeliest fix of the code shown, not a creative one; hosted
# APIs get none by default because their reasoning models reject the parameter.
LOW_TEMPERATURE_ROLES = frozenset({"debug", "update"})
LOW_TEMPERATURE = 0.2


class LLMConfig(BaseModel):
    """How to reach the LLM. API keys are never settings: they are read from `api_key_env`."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["openai", "anthropic", "openai-compatible"] = "openai"
    # None: openai -> "responses", openai-compatible -> "chat", anthropic -> "messages".
    api: Literal["chat", "responses", "messages"] | None = None
    model: str = "gpt-5"
    base_url: str | None = None
    api_key_env: str | None = None
    # None: not sent at all, because reasoning models reject the parameter.
    temperature: float | None = None
    max_output_tokens: int = Field(default=16384, ge=1)
    reasoning_effort: str | None = None
    request_timeout_s: float = Field(default=600.0, gt=0)
    max_attempts: int = Field(default=6, ge=1)
    max_concurrent: int | Literal["auto"] = Field(
        default="auto",
        description="requests sent to the endpoint at once, by all processes of the machine that use it: a number, "
        "or 'auto' (no limit for OpenAI's and Anthropic's own APIs; for another server the slots its /props reports "
        "(llama.cpp's llama-server), else no limit until a reply is cut off by another request, then 1; see "
        "llm/concurrency.py)",
    )
    backoff_base_s: float = Field(default=2.0, ge=0)
    backoff_max_s: float = Field(default=60.0, ge=0)
    stream: bool = True
    json_mode: bool = True
    max_reply_chars: int = Field(default=400_000, ge=1)
    log_prompts: bool = True
    role_models: dict[str, str] = Field(default_factory=dict)
    role_temperatures: dict[str, float] = Field(
        default_factory=dict,
        description="temperature per role (draft, gradient, update, debug, direct, task), over `temperature`; "
        "an openai-compatible server gets 0.2 for debug and update unless set (fixes want the likeliest code)")

    prices: dict[str, Price] = Field(default_factory=dict)
    # Caps of the whole run's spend, over every process and session (llm/spend.py).
    max_run_cost_usd: float | None = Field(
        default=None, gt=0, description="once the run's LLM calls cost this much (USD, from `prices` and the built-in "
        "table), no further call is made: the traces take no new step, the final selection still runs")
    max_run_tokens: int | None = Field(
        default=None, ge=1, description="the same for the input and output tokens of the run's LLM calls")

    @field_validator("max_concurrent")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("max_concurrent must be 'auto' or at least 1")
        return value

    @model_validator(mode="after")
    def _check_combination(self) -> LLMConfig:
        self.resolved_api()
        if self.provider == "openai-compatible" and not self.base_url:
            raise ConfigError(
                "LLM provider 'openai-compatible' needs the setting 'base_url' "
                "(for example http://127.0.0.1:8080/v1 for llama.cpp, vLLM or Ollama)"
            )
        return self

    def temperature_for(self, role: str) -> float | None:
        """The temperature a call of `role` sends (None: none is sent; reasoning models reject one)."""
        if role in self.role_temperatures:
            return self.role_temperatures[role]
        if self.temperature is None and self.provider == "openai-compatible" and role in LOW_TEMPERATURE_ROLES:
            return LOW_TEMPERATURE
        return self.temperature

    def resolved_api(self) -> str:
        """The API actually used; ConfigError for a provider/API pair that cannot work."""
        api = self.api or _DEFAULT_API[self.provider]
        allowed = _ALLOWED_APIS[self.provider]
        if api not in allowed:
            raise ConfigError(
                f"LLM setting api={api!r} does not work with provider={self.provider!r}; "
                f"use one of: {', '.join(allowed)}"
            )
        return api

    def model_for(self, role: str) -> str:
        """The model for a role ("code", "diagnose", ...): its override, else the default model."""
        return self.role_models.get(role, self.model)

    def key_env_var(self) -> str:
        """The environment variable that holds the API key."""
        return self.api_key_env or _DEFAULT_KEY_ENV[self.provider]
