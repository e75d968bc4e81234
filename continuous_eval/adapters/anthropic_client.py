"""Build the one ``AsyncAnthropic`` client a process shares, and describe its errors.

The SDK retries 408, 409, 429, 5xx and 529 itself, with exponential backoff
and honouring ``retry-after`` / ``retry-after-ms``; ``anthropic_max_retries``
bounds it and the SDK logs each retry on the ``anthropic`` logger. So there is
deliberately no retry loop here or in the adapters that use the client: a
second loop would multiply attempts and ignore the server's back-off hints.
"""

from __future__ import annotations

from collections.abc import Mapping

from anthropic import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AsyncAnthropic,
)
from anthropic.types import Message

from continuous_eval.core.models import Usage
from continuous_eval.core.pricing import PriceLike, usage_for
from continuous_eval.core.suite import AnthropicTarget, LlmJudgeScorer, SuiteFile
from continuous_eval.errors import REFUSED_STATUSES, ConfigError
from continuous_eval.settings import Settings

DEFAULT_BASE_URL = "https://api.anthropic.com"
"""Where requests go when ``anthropic_base_url`` is not set."""

_MESSAGE_CHARS = 300


def needs_anthropic(suites: SuiteFile) -> bool:
    """Whether any feature calls Claude, as its target or through an ``llm_judge`` scorer.

    Lets the caller build the client (and demand an API key) only for suites
    that need one, so offline suites run without a key.
    """
    return any(
        isinstance(feature.target, AnthropicTarget)
        or any(isinstance(scorer, LlmJudgeScorer) for scorer in feature.scorers)
        for suite in suites.suites.values()
        for feature in suite.features.values()
    )


def make_anthropic_client(settings: Settings) -> AsyncAnthropic:
    """Build the shared async client from settings; the caller closes it.

    Everything comes from ``settings``: the SDK's own lookups (environment
    variables, credential profiles on disk) are bypassed by passing the key
    and base URL explicitly, so what runs is what ``check-config`` shows.

    Raises:
        ConfigError: when no API key is set, with a message saying how to set
            one, rather than the SDK's error at the first request.
    """
    key = settings.anthropic_api_key
    if key is None or not key.get_secret_value().strip():
        raise ConfigError(
            "environment",
            "ANTHROPIC_API_KEY",
            "not set; an anthropic target or llm_judge scorer needs it "
            "(CONTINUOUS_EVAL_ANTHROPIC_API_KEY works too)",
        )
    http_client = None
    if settings.anthropic_transport == "aiohttp":
        from anthropic import DefaultAioHttpClient

        http_client = DefaultAioHttpClient()
    return AsyncAnthropic(
        api_key=key.get_secret_value(),
        base_url=settings.anthropic_base_url or DEFAULT_BASE_URL,
        max_retries=settings.anthropic_max_retries,
        timeout=settings.anthropic_timeout_s,
        http_client=http_client,
    )


def describe_api_error(exc: APIError) -> str:
    """Say what went wrong with a call, in one line safe to store and log.

    Names the status, the API's error type and its request id (what support
    asks for). The request itself (headers with the key, the prompt) is left
    out; the API's own message is kept, shortened, as it says what to fix.
    """
    if isinstance(exc, APITimeoutError):
        return "Anthropic API request timed out (after the SDK's retries)"
    if isinstance(exc, APIConnectionError):
        cause = type(exc.__cause__).__name__ if exc.__cause__ else "connection error"
        return f"could not reach the Anthropic API ({cause}, after the SDK's retries)"
    if isinstance(exc, APIStatusError):
        error_type = exc.type or "unknown_error"
        message = exc.api_message or ""
        if len(message) > _MESSAGE_CHARS:
            message = message[: _MESSAGE_CHARS - 3] + "..."
        detail = f": {message}" if message else ""
        request_id = f" (request id {exc.request_id})" if exc.request_id else ""
        return f"Anthropic API returned {exc.status_code} {error_type}{detail}{request_id}"
    return f"Anthropic API call failed: {type(exc).__name__}"


def refusal_of(exc: APIError) -> str | None:
    """Name a refusal that every call would get (a bad key, no such model), else None.

    Timeouts, rate limits and 5xx are not refusals: the SDK retried them,
    and they pass.
    """
    if isinstance(exc, APIStatusError) and exc.status_code in REFUSED_STATUSES:
        return f"Anthropic {exc.status_code} {exc.type or 'error'}"
    return None


def sampling_extras(config: AnthropicTarget | LlmJudgeScorer) -> dict[str, object] | None:
    """Return the request body fields the SDK has no parameter for, or None.

    SDK 2.x dropped ``temperature`` from ``messages.create`` (the Messages API
    no longer lists sampling parameters). It is sent through ``extra_body``
    only when the suite sets it explicitly: the suite author asked for it,
    and a default the API may refuse must not break every call.
    """
    if "temperature" in config.model_fields_set:
        return {"temperature": config.temperature}
    return None


def message_usage(model: str, message: Message, prices: Mapping[str, PriceLike]) -> Usage:
    """Return a response's usage with its cost, priced as ``model`` (the model asked for).

    Cache writes and reads count as input at the base price. This service
    never asks for prompt caching, so both are zero in practice; counting
    them keeps any tokens from going unrecorded if a gateway caches anyway.
    """
    usage = message.usage
    input_tokens = (
        usage.input_tokens
        + (usage.cache_creation_input_tokens or 0)
        + (usage.cache_read_input_tokens or 0)
    )
    return usage_for(model, input_tokens, usage.output_tokens, prices)
