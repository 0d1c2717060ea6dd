"""Errors that carry a message a user can act on.

Every error raised to the user names its cause (which file, which setting, which
call) so that a 12-hour run never dies with a bare traceback.
"""


class GomeError(Exception):
    """Base class: the message is shown to the user as is."""


class ConfigError(GomeError):
    """A setting, flag or configuration file is wrong."""


class TaskError(GomeError):
    """The competition folder cannot be read or understood."""


class PromptError(GomeError):
    """A prompt template is missing, malformed or uses an unknown variable."""


class LLMError(GomeError):
    """An LLM call failed after its retries."""


class LLMFatalError(LLMError):
    """An LLM failure that retrying cannot fix (bad key, unknown model, no quota)."""


class LLMOutputError(LLMError):
    """The model's reply could not be used (invalid JSON after the repair re-ask, empty, refusal).

    `completions` holds the replies that were received and paid for, so callers can account for them.
    """

    def __init__(self, message: str, *, completions: list[object] | None = None) -> None:
        super().__init__(message)
        self.completions = completions or []


class ExecutorError(GomeError):
    """A solution could not be started (not: the solution itself failed)."""


class SpendCapReached(GomeError):
    """The run's LLM spend reached a cap (llm.max_run_cost_usd, llm.max_run_tokens): no more calls."""
