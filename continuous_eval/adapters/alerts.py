"""Alert delivery channels: email through Resend, and JSON webhooks (generic or Slack).

Both implement ``ports.AlertChannel``: ``deliver(key, payload)`` sends the
outbox's stored text with ``key`` as the ``Idempotency-Key`` and returns a
``DeliveryResult`` (build one with ``sent``, ``retry`` or ``dead``); a
provider error never raises.

Retries happen at two levels, on purpose:

- In the call: a few quick attempts (tenacity) for 429 rate limits, 5xx,
  timeouts and connection errors, honouring ``retry-after`` up to a cap. Each
  attempt sends the same key and the byte-identical payload, so the provider
  can recognise a repeat. A ``retry-after`` beyond the cap ends the call at
  once: sleeping in a worker for minutes helps nobody.
- Across ticks: after the in-call attempts, ``retry`` hands the alert back to
  the outbox, which tries again later (``AlertDispatcher``), with the same key
  and payload, even after a crash or on another replica.

Anything that cannot succeed by waiting (a refused payload, a bad key, an
exhausted quota, an idempotency key reused for another payload) is ``dead``
at once, with a reason that names the status and the provider's error but
never a secret: reasons and log lines are scrubbed of the API key, the
webhook URL and the configured header values.

The ``resend`` SDK is synchronous and keeps its configuration in module
globals (``resend.api_key``, ``resend.api_url``, ``resend.default_http_client``),
read at request time. ``ResendEmailChannel`` therefore sends from a worker
thread and holds one process-wide lock while it sets those globals, makes one
HTTP attempt and restores them; no other code in this process may use the SDK
unlocked. Alert volume is low, so serialising sends costs nothing that matters.
The SDK's transport is its documented extension point: the channel plugs an
``httpx`` client into it, which gives float timeouts, pooled connections, an
injectable transport, and one more guarantee: the body on the wire is
``canonical_json`` of the stored payload, i.e. exactly the outbox's bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, cast

import httpx
import resend
from pydantic import SecretStr
from resend.exceptions import NoContentError, ResendError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from continuous_eval import __version__
from continuous_eval.core.alert_render import canonical_json
from continuous_eval.core.models import DeliveryResult

log = logging.getLogger(__name__)

DEFAULT_RESEND_URL: Final = "https://api.resend.com"
"""Where emails go when no base URL is configured."""

MAX_IDEMPOTENCY_KEY_CHARS: Final = 256
"""Resend refuses longer keys (``400 invalid_idempotency_key``)."""

QUOTA_ERRORS: Final = frozenset({"daily_quota_exceeded", "monthly_quota_exceeded"})
"""429s that waiting seconds cannot fix: the plan's quota is spent."""

_MAX_REASON_CHARS: Final = 500
_MAX_HINT_S: Final = 24 * 3600.0
_USER_AGENT: Final = f"continuous-eval/{__version__}"
_RESEND_KEY: Final = re.compile(r"\bre_[A-Za-z0-9_]{6,}")
_SDK_LOCK: Final = threading.Lock()
"""Guards the ``resend`` module globals: held for one HTTP attempt at a time."""

Sleep = Callable[[float], None]
"""Blocking sleep of the Resend channel's worker thread (tests pass one that returns at once)."""

AsyncSleep = Callable[[float], Awaitable[None]]
"""Sleep of the webhook channel (tests pass one that returns at once)."""


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


class _Retryable(Exception):
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


class _Scrubber:
    """Removes secrets from text before it becomes a reason or a log line."""

    def __init__(self, secrets: list[str]) -> None:
        # Longest first, so a secret containing another is removed whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        # Any Resend-looking key, even one not configured here (a server echoing a header).
        text = _RESEND_KEY.sub("re_[redacted]", text)
        text = " ".join(text.split())
        if len(text) > _MAX_REASON_CHARS:
            text = text[: _MAX_REASON_CHARS - 1] + "\u2026"
        return text


def _hint(state: RetryCallState) -> float | None:
    exc = state.outcome.exception() if state.outcome is not None else None
    return exc.result.retry_after_s if isinstance(exc, _Retryable) else None


class _Policy:
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


def _log_retry(channel: str, key: str, policy: _Policy) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        reason = exc.result.reason if isinstance(exc, _Retryable) else repr(exc)
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


def _parse_payload(payload: str) -> dict[str, Any] | None:
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


# ---------------------------------------------------------------------- Resend


class _HttpxTransport(resend.HTTPClient):
    """The SDK's pluggable transport, over one pooled ``httpx.Client``.

    The body is ``canonical_json`` of the parameters the SDK passes down; as
    the channel parsed them from canonical text, the bytes on the wire equal
    the stored payload's. Transport failures are raised as ``RuntimeError``,
    as the SDK's own clients do, and the SDK turns them into a ``ResendError``
    named ``HttpClientError``.
    """

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        json: dict[str, object] | list[object] | None = None,
        files: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
    ) -> tuple[bytes, int, Mapping[str, str]]:
        """Make one request; return (body, status, headers) as the SDK expects."""
        if files is not None or data is not None:
            raise RuntimeError("this transport sends JSON bodies only")
        sent_headers = dict(headers)
        content: bytes | None = None
        if json is not None:
            content = canonical_json(json).encode("ascii")
            sent_headers["Content-Type"] = "application/json"
        try:
            response = self._client.request(
                method.upper(), url, headers=sent_headers, content=content
            )
        except httpx.HTTPError as exc:
            # No URL in the message: only the failure's kind and text.
            raise RuntimeError(f"{type(exc).__name__}: {exc}") from exc
        return response.content, response.status_code, response.headers


def _status_of(code: object) -> int | None:
    try:
        return int(str(code))
    except ValueError:
        return None


def classify_resend_error(exc: ResendError, scrub: Callable[[str], str]) -> DeliveryResult:
    """Turn an SDK error into ``retry`` or ``dead`` by its status and ``name``.

    - ``HttpClientError`` (timeout, refused connection; the SDK reports it as a
      500), 5xx, ``rate_limit_exceeded`` 429 and ``concurrent_idempotent_requests``
      409 (the first attempt may still be running): ``retry``, with the
      server's ``retry-after`` when given.
    - Quota 429s, 401/403 (missing or invalid key), 409
      ``invalid_idempotent_request`` (the key was used for another payload),
      422 and every other 4xx: ``dead``.
    """
    status = _status_of(exc.code)
    name = str(exc.error_type or "")
    message = scrub(str(exc.message or ""))
    if name == "HttpClientError":
        return retry(f"Resend unreachable: {message}")
    what = scrub(f"Resend answered {status} {name}: {message}")
    hint = parse_retry_after(exc.headers, rate_limited=status == 429)
    if status == 429 and name in QUOTA_ERRORS:
        return dead(f"{what} (the sending quota is spent; waiting seconds will not help)")
    if status == 429 or (status == 409 and name == "concurrent_idempotent_requests"):
        return retry(what, hint)
    if status is None or status >= 500:
        return retry(what, hint)
    return dead(what)


class ResendEmailChannel:
    """Email alerts through the real ``resend`` SDK, idempotent per outbox key.

    Args:
        api_key: the Resend API key (``re_...``); never logged, never in a reason.
        base_url: the API's base URL; ``https://api.resend.com`` when None. Taken
            from settings, not from the SDK's ``RESEND_API_URL`` lookup at import.
        timeout_s: per HTTP attempt.
        attempts: HTTP attempts per ``deliver`` call (at least 1).
        max_retry_after_s: the longest ``retry-after`` waited in the call; a
            longer one returns ``retry`` at once, carrying the hint.
        backoff_s: first backoff when the provider gives no ``retry-after``
            (doubling, with up to as much again of jitter).
        backoff_max_s: the longest backoff.
        sleep: how the worker thread waits between attempts (tests: no-op).
        transport: an ``httpx`` transport, for tests reaching a fake in-process.
        name: the channel name stored with each alert.
    """

    def __init__(
        self,
        api_key: SecretStr,
        base_url: str | None = None,
        *,
        timeout_s: float = 15.0,
        attempts: int = 3,
        max_retry_after_s: float = 30.0,
        backoff_s: float = 0.5,
        backoff_max_s: float = 8.0,
        sleep: Sleep = time.sleep,
        transport: httpx.BaseTransport | None = None,
        name: str = "email",
    ) -> None:
        secret = api_key.get_secret_value()
        if not secret.strip():
            raise ValueError("the Resend API key is empty")
        if not timeout_s > 0:
            raise ValueError("timeout_s must be > 0")
        self.name = name
        self._api_key = api_key
        self._base_url = (base_url or DEFAULT_RESEND_URL).rstrip("/")
        self._policy = _Policy(
            attempts=attempts,
            max_retry_after_s=max_retry_after_s,
            backoff_s=backoff_s,
            backoff_max_s=backoff_max_s,
        )
        self._sleep = sleep
        self._scrub = _Scrubber([secret])
        self._client = httpx.Client(timeout=timeout_s, transport=transport)
        self._transport = _HttpxTransport(self._client)

    async def deliver(self, key: str, payload: str) -> DeliveryResult:
        """Send the stored email with ``key`` as its idempotency key; never raises for Resend.

        The stored text is parsed once; every attempt sends that same dict,
        which the transport serialises to the same bytes.
        """
        params = _parse_payload(payload)
        if params is None:
            return dead("the stored email payload is not a JSON object")
        return await asyncio.to_thread(self._deliver_blocking, wire_key(key), key, params)

    def _deliver_blocking(
        self, header_key: str, key: str, params: dict[str, Any]
    ) -> DeliveryResult:
        retrying = Retrying(
            stop=self._policy.stop,
            wait=self._policy.wait,
            retry=retry_if_exception_type(_Retryable),
            sleep=self._sleep,
            before_sleep=_log_retry(self.name, key, self._policy),
            reraise=True,
        )
        try:
            return retrying(self._attempt, header_key, params)
        except _Retryable as exc:
            return exc.result

    def _attempt(self, header_key: str, params: dict[str, Any]) -> DeliveryResult:
        try:
            response = self._send(header_key, params)
        except ResendError as exc:
            result = classify_resend_error(exc, self._scrub)
            if result.outcome == "retry":
                raise _Retryable(result) from None
            return result
        except NoContentError:
            raise _Retryable(retry("Resend answered with an empty body")) from None
        email_id = response.get("id")
        if not isinstance(email_id, str) or not email_id:
            raise _Retryable(retry("Resend answered success without an email id"))
        return sent(email_id)

    def _send(self, header_key: str, params: dict[str, Any]) -> Mapping[str, Any]:
        options: resend.Emails.SendOptions = {"idempotency_key": header_key}
        with _SDK_LOCK:
            saved = (resend.api_key, resend.api_url, resend.default_http_client)
            resend.api_key = self._api_key.get_secret_value()
            resend.api_url = self._base_url
            resend.default_http_client = self._transport
            try:
                response = resend.Emails.send(cast(resend.Emails.SendParams, params), options)
            finally:
                # Restored, so the key does not linger in a module global.
                resend.api_key, resend.api_url, resend.default_http_client = saved
        return cast(Mapping[str, Any], response)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await asyncio.to_thread(self._client.close)


# --------------------------------------------------------------------- webhook


class WebhookChannel:
    """Alerts as a JSON POST to a webhook: a generic receiver, or a Slack incoming webhook.

    The stored payload's bytes are the request body, unchanged, with
    ``Content-Type: application/json`` and ``Idempotency-Key: <key>``.
    2xx is ``sent``; 408, 425, 429, 5xx, timeouts and connection errors are
    retried; any other status is ``dead``.

    Slack ignores ``Idempotency-Key``, so a crash between Slack's answer and
    the outbox's settle can post one message twice; a generic receiver
    should deduplicate on the header.

    Args:
        url: the webhook URL. Treated as a secret (a Slack webhook URL is
            one): it appears in no reason and no log line of this module.
        slack: the receiver is a Slack incoming webhook: a stored payload
            that is not a Slack message (no ``text``, no ``blocks``) is dead
            without a request. Either way the receiver's error text (Slack's
            tokens such as ``invalid_payload`` or ``no_service``) is in the reason.
        timeout_s: per HTTP attempt.
        attempts: HTTP attempts per ``deliver`` call (at least 1).
        headers: extra request headers (e.g. ``Authorization``); their values
            are treated as secrets too.
        max_retry_after_s, backoff_s, backoff_max_s: as for ``ResendEmailChannel``.
        sleep: how to wait between attempts (tests: a no-op coroutine).
        transport: an ``httpx`` async transport, for tests.
        name: the channel name stored with each alert.
    """

    def __init__(
        self,
        url: str | SecretStr,
        *,
        slack: bool = False,
        timeout_s: float = 15.0,
        attempts: int = 3,
        headers: Mapping[str, str] | None = None,
        max_retry_after_s: float = 30.0,
        backoff_s: float = 0.5,
        backoff_max_s: float = 8.0,
        sleep: AsyncSleep = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
        name: str = "webhook",
    ) -> None:
        self._url = url.get_secret_value() if isinstance(url, SecretStr) else url
        if not self._url.startswith(("https://", "http://")):
            raise ValueError("the webhook URL must be an http:// or https:// URL")
        if not timeout_s > 0:
            raise ValueError("timeout_s must be > 0")
        self.name = name
        self._slack = slack
        self._policy = _Policy(
            attempts=attempts,
            max_retry_after_s=max_retry_after_s,
            backoff_s=backoff_s,
            backoff_max_s=backoff_max_s,
        )
        self._sleep = sleep
        extra = dict(headers or {})
        fixed = {"content-type", "idempotency-key"}
        self._headers = {k: v for k, v in extra.items() if k.lower() not in fixed}
        self._headers.setdefault("User-Agent", _USER_AGENT)
        path = httpx.URL(self._url).path
        self._scrub = _Scrubber([self._url, *(p for p in [path] if len(path) > 1), *extra.values()])
        self._client = httpx.AsyncClient(timeout=timeout_s, transport=transport)

    async def deliver(self, key: str, payload: str) -> DeliveryResult:
        """POST the stored payload with ``key`` as its idempotency key; never raises for HTTP."""
        document = _parse_payload(payload)
        if document is None:
            return dead("the stored webhook payload is not a JSON object")
        if self._slack and not (document.get("text") or document.get("blocks")):
            # Slack would answer 400 no_text; say what is actually wrong.
            return dead("the stored payload is not a Slack message (render it with slack=True)")
        retrying = AsyncRetrying(
            stop=self._policy.stop,
            wait=self._policy.wait,
            retry=retry_if_exception_type(_Retryable),
            sleep=self._sleep,
            before_sleep=_log_retry(self.name, key, self._policy),
            reraise=True,
        )
        body = payload.encode("utf-8")
        try:
            result: DeliveryResult = await retrying(self._attempt, wire_key(key), body)
        except _Retryable as exc:
            return exc.result
        return result

    async def _attempt(self, header_key: str, body: bytes) -> DeliveryResult:
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            "Idempotency-Key": header_key,
        }
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise _Retryable(
                retry(self._scrub(f"webhook timed out ({type(exc).__name__})"))
            ) from None
        except httpx.TransportError as exc:
            raise _Retryable(
                retry(self._scrub(f"webhook unreachable: {type(exc).__name__}: {exc}"))
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            request_id = response.headers.get("x-request-id") or response.headers.get("request-id")
            return sent(request_id or None)
        excerpt = response.text[:200]
        what = self._scrub(f"webhook answered {status}: {excerpt}".rstrip(": "))
        if status in (408, 425, 429) or status >= 500:
            raise _Retryable(
                retry(what, parse_retry_after(response.headers, rate_limited=status == 429))
            )
        return dead(what)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()
