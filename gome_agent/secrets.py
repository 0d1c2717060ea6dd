"""Keep secrets out of solution environments and out of every file a run writes."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

# Names that hold credentials in practice: API keys, tokens, passwords, cloud creds.
_SECRET_NAME = re.compile(
    r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION|PRIVATE)",
    re.IGNORECASE,
)
# Provider settings that are not secret but must not steer the solution's own LLM use.
_PROVIDER_PREFIXES = ("OPENAI_", "ANTHROPIC_", "AZURE_OPENAI", "GOME_LLM_")
# Values shorter than this are too generic to redact safely ("1", "true").
_MIN_SECRET_LEN = 8


def is_secret_name(name: str) -> bool:
    """True for environment variable names that may carry credentials."""
    return bool(_SECRET_NAME.search(name)) or name.upper().startswith(_PROVIDER_PREFIXES)


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """The values of secret-looking variables, longest first (so overlapping values redact fully)."""
    env = os.environ if env is None else env
    values = {v for k, v in env.items() if is_secret_name(k) and len(v) >= _MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)


def scrubbed_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment without any secret-looking variable."""
    env = os.environ if env is None else env
    return {k: v for k, v in env.items() if not is_secret_name(k)}


class Redactor:
    """Replaces known secret values in text before it is written anywhere."""

    def __init__(self, values: list[str] | None = None) -> None:
        self._values = secret_values() if values is None else sorted(values, key=len, reverse=True)

    def add(self, value: str | None) -> None:
        if value and len(value) >= _MIN_SECRET_LEN and value not in self._values:
            self._values.append(value)
            self._values.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, "[REDACTED]")
        return text


_default: Redactor | None = None


def default_redactor() -> Redactor:
    """The process-wide redactor, built from the environment on first use."""
    global _default
    if _default is None:
        _default = Redactor()
    return _default
