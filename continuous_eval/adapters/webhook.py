"""JSON webhooks: alerts to a generic receiver or Slack, and signed run-completion notices.

The stored payload's bytes are the request body, unchanged, with
``Content-Type: application/json`` and ``Idempotency-Key: <key>``. 2xx is
``sent``; 408, 425, 429, 5xx, timeouts and connection errors are retried;
any other status is ``dead``. Retries and reasons follow
``adapters/delivery.py``.

Run-completion notices (``core/run_notice.py``) go to the URL stored with
each row and are signed per Standard Webhooks (https://www.standardwebhooks.com):
``webhook-id`` is the row's key (stable across retries, so a receiver
deduplicates on it), ``webhook-timestamp`` the send time in Unix seconds,
and ``webhook-signature`` ``v1,<base64 HMAC-SHA256>`` over
``{id}.{timestamp}.{body}``, computed by the ``standardwebhooks`` library.
A receiver verifies with any Standard Webhooks library and the same secret.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import httpx
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook
from tenacity import AsyncRetrying, retry_if_exception_type

from continuous_eval.adapters.delivery import (
    USER_AGENT,
    AsyncSleep,
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
from continuous_eval.core.models import DeliveryResult
from continuous_eval.core.signing_secret import check_signing_secret


class Signer:
    """Standard Webhooks headers for one request; the clock is injected for tests."""

    def __init__(self, secret: SecretStr, now: Callable[[], datetime] | None = None) -> None:
        check_signing_secret(secret.get_secret_value())
        self._webhook = Webhook(secret.get_secret_value())
        self._now = now or (lambda: datetime.now(UTC))

    def headers(self, message_id: str, body: str) -> dict[str, str]:
        """Return ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``."""
        moment = self._now().replace(microsecond=0)
        signature = self._webhook.sign(msg_id=message_id, timestamp=moment, data=body)
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": signature,
        }


class WebhookChannel:
    """A JSON POST per delivery: an alert webhook (generic or Slack), or signed notices.

    Slack ignores ``Idempotency-Key``, so a crash between Slack's answer and
    the outbox's settle can post one message twice; a generic receiver
    should deduplicate on the header (or on ``webhook-id`` for notices).

    Args:
        url: the webhook URL, or None for a channel whose rows each carry
            their own ``destination`` (run-completion callbacks). Treated as
            a secret (a Slack webhook URL is one): neither it nor a
            destination appears in a reason or a log line of this module.
        slack: the receiver is a Slack incoming webhook: a stored payload
            that is not a Slack message (no ``text``, no ``blocks``) is dead
            without a request. Either way the receiver's error text (Slack's
            tokens such as ``invalid_payload`` or ``no_service``) is in the reason.
        signer: signs each request (Standard Webhooks headers), for notices.
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
        url: str | SecretStr | None,
        *,
        slack: bool = False,
        signer: Signer | None = None,
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
        if self._url is not None and not _is_http(self._url):
            raise ValueError("the webhook URL must be an http:// or https:// URL")
        if not timeout_s > 0:
            raise ValueError("timeout_s must be > 0")
        self.name = name
        self._slack = slack
        self._signer = signer
        self._policy = DeliveryPolicy(
            attempts=attempts,
            max_retry_after_s=max_retry_after_s,
            backoff_s=backoff_s,
            backoff_max_s=backoff_max_s,
        )
        self._sleep = sleep
        extra = dict(headers or {})
        fixed = {"content-type", "idempotency-key"}
        self._headers = {k: v for k, v in extra.items() if k.lower() not in fixed}
        self._headers.setdefault("User-Agent", USER_AGENT)
        self._secrets = [*_url_secrets(self._url), *extra.values()]
        self._client = httpx.AsyncClient(timeout=timeout_s, transport=transport)

    async def deliver(
        self, key: str, payload: str, destination: str | None = None
    ) -> DeliveryResult:
        """POST the stored payload with ``key`` as its idempotency key; never raises for HTTP."""
        url = self._url or destination
        scrub = ReasonScrubber([*self._secrets, *_url_secrets(destination)])
        if url is None or not _is_http(url):
            return dead("the notice has no http:// or https:// destination")
        document = parse_payload(payload)
        if document is None:
            return dead("the stored webhook payload is not a JSON object")
        if self._slack and not (document.get("text") or document.get("blocks")):
            # Slack would answer 400 no_text; say what is actually wrong.
            return dead("the stored payload is not a Slack message (render it with slack=True)")
        retrying = AsyncRetrying(
            stop=self._policy.stop,
            wait=self._policy.wait,
            retry=retry_if_exception_type(Retryable),
            sleep=self._sleep,
            before_sleep=log_retry(self.name, key, self._policy),
            reraise=True,
        )
        try:
            result: DeliveryResult = await retrying(self._attempt, url, key, payload, scrub)
        except Retryable as exc:
            return exc.result
        return result

    async def _attempt(
        self, url: str, key: str, payload: str, scrub: ReasonScrubber
    ) -> DeliveryResult:
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            "Idempotency-Key": wire_key(key),
        }
        if self._signer is not None:
            # Signed per attempt: the timestamp is the send time, the body the stored one.
            headers.update(self._signer.headers(wire_key(key), payload))
        try:
            response = await self._client.post(
                url, content=payload.encode("utf-8"), headers=headers
            )
        except httpx.TimeoutException as exc:
            raise Retryable(retry(scrub(f"webhook timed out ({type(exc).__name__})"))) from None
        except httpx.TransportError as exc:
            raise Retryable(
                retry(scrub(f"webhook unreachable: {type(exc).__name__}: {exc}"))
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            request_id = response.headers.get("x-request-id") or response.headers.get("request-id")
            return sent(request_id or None)
        excerpt = response.text[:200]
        what = scrub(f"webhook answered {status}: {excerpt}".rstrip(": "))
        if status in (408, 425, 429) or status >= 500:
            raise Retryable(
                retry(what, parse_retry_after(response.headers, rate_limited=status == 429))
            )
        return dead(what)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()


def _is_http(url: str) -> bool:
    return url.startswith(("https://", "http://"))


def _url_secrets(url: str | None) -> list[str]:
    """A URL and its path: either may be quoted in an error, and either can be a credential."""
    if not url:
        return []
    try:
        path = httpx.URL(url).path
    except httpx.InvalidURL:
        return [url]
    return [url, *([path] if len(path) > 1 else [])]
