"""Fixtures for tests that deliver alerts over real HTTP: the fake Resend API and a webhook.

Registered from ``tests/conftest.py`` with
``pytest_plugins = [..., "tests.integration.conftest_alerts"]``.

One fake Resend server and one webhook receiver serve the whole session
(starting uvicorn per test would cost more than the tests); the per-test
fixtures reset them, so no script, idempotency key or recorded request leaks
between tests. Channels are built with a recording sleep: retry waits are
zero in wall time, and tests can still assert what the channel waited for.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from continuous_eval.adapters.resend_email import ResendEmailChannel
from continuous_eval.adapters.webhook import WebhookChannel
from continuous_eval.core.alert_render import canonical_json, render_email
from continuous_eval.core.alerting import IncidentReport
from continuous_eval.core.models import CaseDrop
from continuous_eval.core.regression import Decision, DecisionKind, Incident
from continuous_eval.fakes.resend_server import BackgroundServer, FakeResendServer

FAKE_RESEND_KEY = "re_fake_alerts_key_5f3a9c"
"""The only key the session's fake Resend API accepts."""

ALERT_SENDER = "continuous-eval <alerts@example.com>"
ALERT_RECIPIENTS = ("oncall@example.com", "Quality Team <quality@example.com>")

WEBHOOK_TOKEN = "T000-B000-secret-hook-token"
"""Path segment of the webhook URL, secret like a Slack webhook's."""


def make_report(difference: float = 3.48 - 4.10) -> IncidentReport:
    """The incident report of ``support: refunds/judge`` falling from 4.10 (two cases fell)."""
    decision = Decision(
        feature="refunds",
        scorer="judge",
        kind=DecisionKind.REGRESSED,
        message="fell",
        rule="drop",
        current=4.10 + difference,
        baseline=4.10,
        mean_difference=difference,
        ci_low=difference - 0.2,
        ci_high=difference + 0.2,
        p_value=0.0123,
        p_adjusted=0.0123,
        n_paired=40,
        baseline_run_ids=("run-0001",),
        fallen=(CaseDrop("refund-7", 5.0, 1.0), CaseDrop("refund-3", 4.0, 2.0)),
        incident=Incident("run-0002", "regression", difference),
        transition="opened",
    )
    return IncidentReport("support", "run-0002", "regression", (decision,))


def email_payload(report: IncidentReport | None = None) -> str:
    """The stored outbox text of the alert email for ``report``."""
    return canonical_json(
        render_email(report or make_report(), sender=ALERT_SENDER, recipients=ALERT_RECIPIENTS)
    )


# -------------------------------------------------------------- fake Resend


@pytest.fixture(scope="session")
def fake_resend_session() -> Iterator[FakeResendServer]:
    """Start the fake Resend API once for the session."""
    with FakeResendServer(api_key=FAKE_RESEND_KEY) as server:
        yield server


@pytest.fixture
def fake_resend(fake_resend_session: FakeResendServer) -> FakeResendServer:
    """Return the session's fake Resend API, reset: no script, no keys, nothing recorded."""
    server = fake_resend_session
    server.reset()
    server.set_latency(0.0)
    return server


@pytest.fixture
def sleeps() -> list[float]:
    """What the channels under test asked to sleep between attempts, in order."""
    return []


ResendChannelFactory = Callable[..., ResendEmailChannel]


@pytest.fixture
async def make_resend_channel(
    fake_resend: FakeResendServer, sleeps: list[float]
) -> AsyncIterator[ResendChannelFactory]:
    """Build ``ResendEmailChannel`` s on the fake (``make_resend_channel(attempts=1)``).

    Defaults: the fake's key and URL, a 2 s timeout, 3 attempts, sleeps
    recorded in ``sleeps`` instead of slept. Every channel is closed after the test.
    """
    channels: list[ResendEmailChannel] = []

    def build(**overrides: Any) -> ResendEmailChannel:
        values: dict[str, Any] = {
            "api_key": SecretStr(FAKE_RESEND_KEY),
            "base_url": fake_resend.base_url,
            "timeout_s": 2.0,
            "attempts": 3,
            "sleep": sleeps.append,
            **overrides,
        }
        channel = ResendEmailChannel(**values)
        channels.append(channel)
        return channel

    try:
        yield build
    finally:
        for channel in channels:
            await channel.aclose()


# ----------------------------------------------------------------- webhook


@dataclass(frozen=True, slots=True)
class WebhookReply:
    """One scripted answer of the webhook receiver."""

    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    hang_s: float = 0.0
    """Stall this long before answering (longer than the client's timeout: a timeout)."""


@dataclass(frozen=True, slots=True)
class ReceivedHook:
    """One request the webhook receiver got."""

    path: str
    headers: dict[str, str]
    raw: bytes


class FakeWebhook:
    """A webhook receiver answering like Slack (``200 ok``) unless scripted otherwise."""

    def __init__(self) -> None:
        self.received: list[ReceivedHook] = []
        self._replies: deque[WebhookReply] = deque()
        self._lock = threading.Lock()
        self._server = BackgroundServer(
            Starlette(routes=[Route("/hooks/{token}", self._hook, methods=["POST"])]),
            name="fake-webhook",
        )

    @property
    def url(self) -> str:
        """The secret-looking URL to post to."""
        return f"{self._server.base_url}/hooks/{WEBHOOK_TOKEN}"

    def script(self, *replies: WebhookReply | int) -> None:
        """Queue answers (statuses or ``WebhookReply``) for the next requests."""
        with self._lock:
            self._replies.extend(
                r if isinstance(r, WebhookReply) else WebhookReply(r) for r in replies
            )

    def reset(self) -> None:
        """Forget scripted answers and received requests."""
        with self._lock:
            self._replies.clear()
            self.received.clear()

    async def _hook(self, request: Request) -> Response:
        raw = await request.body()
        with self._lock:
            headers = {k.lower(): v for k, v in request.headers.items()}
            self.received.append(ReceivedHook(request.url.path, headers, raw))
            reply = self._replies.popleft() if self._replies else WebhookReply()
        if reply.hang_s:
            await asyncio.sleep(reply.hang_s)
        return PlainTextResponse(reply.body, status_code=reply.status, headers=reply.headers)

    def __enter__(self) -> FakeWebhook:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


@pytest.fixture(scope="session")
def fake_webhook_session() -> Iterator[FakeWebhook]:
    """Start the webhook receiver once for the session."""
    with FakeWebhook() as receiver:
        yield receiver


@pytest.fixture
def fake_webhook(fake_webhook_session: FakeWebhook) -> FakeWebhook:
    """Return the session's webhook receiver, reset."""
    fake_webhook_session.reset()
    return fake_webhook_session


WebhookChannelFactory = Callable[..., WebhookChannel]


@pytest.fixture
async def make_webhook_channel(
    fake_webhook: FakeWebhook, sleeps: list[float]
) -> AsyncIterator[WebhookChannelFactory]:
    """Build ``WebhookChannel`` s on the receiver (``make_webhook_channel(slack=True)``).

    Defaults: the receiver's URL, a 2 s timeout, 3 attempts, sleeps recorded
    in ``sleeps``. Every channel is closed after the test.
    """
    channels: list[WebhookChannel] = []

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    def build(**overrides: Any) -> WebhookChannel:
        values: dict[str, Any] = {
            "url": fake_webhook.url,
            "slack": False,
            "timeout_s": 2.0,
            "attempts": 3,
            "sleep": record,
            **overrides,
        }
        channel = WebhookChannel(**values)
        channels.append(channel)
        return channel

    try:
        yield build
    finally:
        for channel in channels:
            await channel.aclose()
