"""The LLM layer: one client for OpenAI (Responses or Chat), Anthropic Messages and OpenAI-compatible servers.

Names are imported on first use (PEP 562), so reading `gome_agent.llm.config`
does not load both SDKs: the CLI starts fast, and a run loads only what it uses.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LLMClient": "client", "UsageLedger": "client", "create_client": "client",
    "LLMConfig": "config", "Price": "config",
    "JSONExtractError": "jsonparse", "extract_json_object": "jsonparse", "parse_json_as": "jsonparse",
    "DEFAULT_PRICES": "pricing", "cost_usd": "pricing", "price_for": "pricing",
    "Provider": "providers", "RawReply": "providers", "build_provider": "providers",
    "ScriptedProvider": "providers.scripted",
    "Completion": "types", "LLMCallRecord": "types", "Message": "types", "Structured": "types", "Usage": "types",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gome_agent.llm' has no attribute {name!r}")
    return getattr(importlib.import_module(f"gome_agent.llm.{_EXPORTS[name]}"), name)
