"""The LLM layer: one client for OpenAI (Responses or Chat), Anthropic Messages and OpenAI-compatible servers."""

from gome_agent.llm.client import LLMClient, UsageLedger, create_client
from gome_agent.llm.config import LLMConfig, Price
from gome_agent.llm.jsonparse import JSONExtractError, extract_json_object, parse_json_as
from gome_agent.llm.pricing import DEFAULT_PRICES, cost_usd, price_for
from gome_agent.llm.providers import Provider, RawReply, build_provider
from gome_agent.llm.providers.scripted import ScriptedProvider
from gome_agent.llm.types import Completion, LLMCallRecord, Message, Structured, Usage

__all__ = [
    "DEFAULT_PRICES",
    "Completion",
    "JSONExtractError",
    "LLMCallRecord",
    "LLMClient",
    "LLMConfig",
    "Message",
    "Price",
    "Provider",
    "RawReply",
    "ScriptedProvider",
    "Structured",
    "Usage",
    "UsageLedger",
    "build_provider",
    "cost_usd",
    "create_client",
    "extract_json_object",
    "parse_json_as",
    "price_for",
]
