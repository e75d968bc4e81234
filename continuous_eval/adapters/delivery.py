"""What every delivery channel shares: outcomes, the in-call retry policy, keys and reasons.

A channel (``adapters/resend_email.py``, ``adapters/webhook.py``) implements
``ports.AlertChannel``: ``deliver`` sends the outbox's stored text with the
row's key as its ``Idempotency-Key`` and returns a ``DeliveryResult`` (built
with ``sent``, ``retry`` or ``dead``); a provider error never raises.

Retries happen at two levels, on purpose:

- In the call: a few quick attempts (tenacity) for 429 rate limits, 5xx,
  timeouts and connection errors, honouring ``retry-after`` up to a cap. Each
  attempt sends the same key and the byte-identical payload, so the provider
  can recognise a repeat. A ``retry-after`` beyond the cap ends the call at
  once: sleeping in a worker for minutes helps nobody.
- Across ticks: after the in-call attempts, ``retry`` hands the row back to
  the outbox, which tries again later (``AlertDispatcher``), with the same key
  and payload, even after a crash or on another replica.

Anything that cannot succeed by waiting is ``dead`` at once, with a reason
that names the status and the provider's error but never a secret: reasons
and log lines pass through a ``ReasonScrubber``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final

from tenacity import RetryCallState, wait_exponential_jitter

from continuous_eval import __version__
from continuous_eval.core.models import DeliveryResult
from continuous_eval.core.secrets import Scrubber

log = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY_CHARS: Final = 256
"""Resend refuses longer keys (``400 invalid_idempotency_key``)."""

USER_AGENT: Final = f"continuous-eval/{__version__}"

_MAX_REASON_CHARS: Final = 500
_MAX_HINT_S: Final = 24 * 3600.0

AsyncSleep = Callable[[float], Awaitable[None]]
"""Sleep of an async channel between attempts (tests pass one that returns at once)."""


# --------------------------------------------------------------- the results


def sent(provider_id: str | None) -> DeliveryResult:
    """The provider accepted the message; ``provider_id`` is its id (Resend's email id)."""
    return DeliveryResult("sent", provider_id=provider_id)


def retry(reason: str, retry_after_s: float | None = None) -> DeliveryResult:
    """Not delivered yet: the outbox tries again later (``retry_after_s`` at the soonest)."""
    return DeliveryResult("retry", reason=reason, retry_after_s=retry_after_s)


def dead(reason: str) -> DeliveryResult:
    """Never deliverable as it stands: the outbox stops trying and keeps ``reason``."""
    return DeliveryResult("dead", reason=reason)


class Retryable(Exception):
    """One failed attempt worth another; carries the result to return if none is left."""

    def __init__(self, result: DeliveryResult) -> None:
        super().__init__(result.reason)
        self.result = result


# ------------------------------------------------------------------- helpers


def wire_key(key: str) -> str:
    """Return the ``Idempotency-Key`` header value for an outbox key.

    Keys that fit (1-256 printable ASCII characters) go as they are, so they
    can be found in the provider's logs; others (long or non-ASCII suite
    names) become a SHA-256 digest, deterministically, so every retry still
    sends the same header.
    """
    if 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_CHARS and all(" " <= c <= "~" for c in key):
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_retry_after(
    headers: Mapping[str, str] | None, *, rate_limited: bool = False
) -> float | None:
    """Seconds the server asked to wait, from ``retry-after`` (in seconds).

    For a rate-limited answer without ``retry-after``, ``ratelimit-reset``
    (seconds until the window resets) stands in; on other answers it only
    describes the rate window, not the failure, and is ignored. An HTTP-date
    ``retry-after`` is ignored too (Resend and Slack send seconds), which
    falls back to backoff rather than reading a clock here.
    """
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    names = ("retry-after", "ratelimit-reset") if rate_limited else ("retry-after",)
    for name in names:
        raw = lowered.get(name)
        if raw is None:
            continue
        try:
            seconds = float(raw.strip())
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return min(seconds, _MAX_HINT_S)
    return None


class ReasonScrubber:
    """Turns provider text into a delivery reason: secrets out, one line, bounded length.

    The secrets are removed by ``core.secrets.Scrubber``, the mechanism every
    stored or logged text goes through, which also catches anything shaped
    like a key that a server echoes back.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        self._scrub = Scrubber(secrets)

    def __call__(self, text: str) -> str:
        """Return ``text`` fit to store as a reason."""
        text = " ".join(self._scrub(text).split())
        if len(text) > _MAX_REASON_CHARS:
            text = text[: _MAX_REASON_CHARS - 1] + "\u2026"
        return text


def _hint(state: RetryCallState) -> float | None:
    exc = state.outcome.exception() if state.outcome is not None else None
    return exc.result.retry_after_s if isinstance(exc, Retryable) else None


class DeliveryPolicy:
    """The in-call retry policy both channels share: attempts, waits, and when to give up."""

    def __init__(
        self,
        *,
        attempts: int,
        max_retry_after_s: float,
        backoff_s: float,
        backoff_max_s: float,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if max_retry_after_s < 0 or backoff_s < 0 or backoff_max_s < 0:
            raise ValueError("waits must be >= 0")
        self.attempts = attempts
        self.max_retry_after_s = max_retry_after_s
        # multiplier * 2**n + jitter, capped: spreads replicas hitting one provider.
        self._backoff = wait_exponential_jitter(
            multiplier=backoff_s, max=backoff_max_s, jitter=backoff_s
        )

    def wait(self, state: RetryCallState) -> float:
        """The provider's ``retry-after`` when it gave one (within the cap), else backoff."""
        hint = _hint(state)
        if hint is not None:
            return min(hint, self.max_retry_after_s)
        return float(self._backoff(state))

    def stop(self, state: RetryCallState) -> bool:
        """Stop after the last attempt, or at once when the provider asks for a long wait."""
        hint = _hint(state)
        return state.attempt_number >= self.attempts or (
            hint is not None and hint > self.max_retry_after_s
        )


def log_retry(channel: str, key: str, policy: DeliveryPolicy) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        reason = exc.result.reason if isinstance(exc, Retryable) else repr(exc)
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "alert delivery attempt %d of %d failed, retrying in %.2fs: %s",
            state.attempt_number,
            policy.attempts,
            wait,
            reason,
            extra={
                "event": "alert_attempt_failed",
                "channel": channel,
                "alert_key": key,
                "attempt": state.attempt_number,
                "wait_s": wait,
            },
        )

    return before_sleep


def parse_payload(payload: str) -> dict[str, Any] | None:
    """Parse a stored payload; None when it is not a JSON object."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
