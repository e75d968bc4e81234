"""Email alerts through Resend, idempotent per outbox key.

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
Retries and reasons follow ``adapters/delivery.py``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

import httpx
import resend
from pydantic import SecretStr
from resend.exceptions import NoContentError, ResendError
from tenacity import Retrying, retry_if_exception_type

from continuous_eval.adapters.delivery import (
    DeliveryPolicy,
    ReasonScrubber,
    Retryable,
    dead,
    log_retry,
    parse_payload,
    parse_retry_after,
    retry,
    sent,
    wire_key,
)
from continuous_eval.core.alert_render import canonical_json
from continuous_eval.core.models import DeliveryResult

DEFAULT_RESEND_URL: Final = "https://api.resend.com"
"""Where emails go when no base URL is configured."""

QUOTA_ERRORS: Final = frozenset({"daily_quota_exceeded", "monthly_quota_exceeded"})
"""429s that waiting seconds cannot fix: the plan's quota is spent."""

_SDK_LOCK: Final = threading.Lock()
"""Guards the ``resend`` module globals: held for one HTTP attempt at a time."""

Sleep = Callable[[float], None]
"""Blocking sleep of the Resend channel's worker thread (tests pass one that returns at once)."""


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
        self._policy = DeliveryPolicy(
            attempts=attempts,
            max_retry_after_s=max_retry_after_s,
            backoff_s=backoff_s,
            backoff_max_s=backoff_max_s,
        )
        self._sleep = sleep
        self._scrub = ReasonScrubber([secret])
        self._client = httpx.Client(timeout=timeout_s, transport=transport)
        self._transport = _HttpxTransport(self._client)

    async def deliver(
        self, key: str, payload: str, destination: str | None = None
    ) -> DeliveryResult:
        """Send the stored email with ``key`` as its idempotency key; never raises for Resend.

        ``destination`` is ignored: an email's recipients are in its payload.

        The stored text is parsed once; every attempt sends that same dict,
        which the transport serialises to the same bytes.
        """
        params = parse_payload(payload)
        if params is None:
            return dead("the stored email payload is not a JSON object")
        return await asyncio.to_thread(self._deliver_blocking, wire_key(key), key, params)

    def _deliver_blocking(
        self, header_key: str, key: str, params: dict[str, Any]
    ) -> DeliveryResult:
        retrying = Retrying(
            stop=self._policy.stop,
            wait=self._policy.wait,
            retry=retry_if_exception_type(Retryable),
            sleep=self._sleep,
            before_sleep=log_retry(self.name, key, self._policy),
            reraise=True,
        )
        try:
            return retrying(self._attempt, header_key, params)
        except Retryable as exc:
            return exc.result

    def _attempt(self, header_key: str, params: dict[str, Any]) -> DeliveryResult:
        try:
            response = self._send(header_key, params)
        except ResendError as exc:
            result = classify_resend_error(exc, self._scrub)
            if result.outcome == "retry":
                raise Retryable(result) from None
            return result
        except NoContentError:
            raise Retryable(retry("Resend answered with an empty body")) from None
        email_id = response.get("id")
        if not isinstance(email_id, str) or not email_id:
            raise Retryable(retry("Resend answered success without an email id"))
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
