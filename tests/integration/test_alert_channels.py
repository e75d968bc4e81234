"""Alert channels over real HTTP: the real ``resend`` SDK against the fake, and a webhook.

Each test asserts on what the fake received (requests, raw bodies, keys) and
delivered (emails), never on mock calls. Retry waits are recorded, not slept.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import pytest
import resend
from pydantic import SecretStr

from continuous_eval.adapters.delivery import parse_retry_after, wire_key
from continuous_eval.adapters.resend_email import ResendEmailChannel
from continuous_eval.core.alert_render import canonical_json, render_webhook
from continuous_eval.fakes.resend_server import FakeResendServer, ScriptedFault
from tests.fixtures.alerts import (
    FAKE_RESEND_KEY,
    WEBHOOK_TOKEN,
    FakeWebhook,
    ResendChannelFactory,
    WebhookChannelFactory,
    WebhookReply,
    email_payload,
    make_report,
)

KEY = make_report().key
PAYLOAD = email_payload()


def assert_same_key_and_bytes(fake: FakeResendServer, count: int) -> None:
    """Every request carried the one key and the stored payload's exact bytes."""
    requests = fake.requests
    assert len(requests) == count
    assert {r.idempotency_key for r in requests} == {KEY}
    assert {r.raw for r in requests} == {PAYLOAD.encode()}


def all_log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record's message, arguments and extra fields, as one string."""
    return "\n".join(
        f"{record.getMessage()} {record.args!r} {vars(record)!r}" for record in caplog.records
    )


# ------------------------------------------------------------------- Resend


async def test_429_then_success_sends_one_email_with_the_same_key(
    fake_resend: FakeResendServer, make_resend_channel: ResendChannelFactory, sleeps: list[float]
) -> None:
    fake_resend.script(ScriptedFault(429, headers={"retry-after": "2"}))

    result = await make_resend_channel().deliver(KEY, PAYLOAD)

    (delivered,) = fake_resend.emails
    assert (result.outcome, result.provider_id) == ("sent", delivered.id)
    assert [r.status for r in fake_resend.requests] == [429, 200]
    assert_same_key_and_bytes(fake_resend, 2)
    assert sleeps == [2.0]  # the server's retry-after, not a backoff


async def test_the_wire_body_is_the_stored_payload(
    fake_resend: FakeResendServer, make_resend_channel: ResendChannelFactory
) -> None:
    await make_resend_channel().deliver(KEY, PAYLOAD)

    (request,) = fake_resend.requests
    assert request.raw == PAYLOAD.encode()
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("resend-python:")
    assert fake_resend.emails[0].payload == json.loads(PAYLOAD)


async def test_500_and_a_timeout_are_retried_with_identical_bytes(
    fake_resend: FakeResendServer, make_resend_channel: ResendChannelFactory, sleeps: list[float]
) -> None:
    fake_resend.script(500, ScriptedFault(hang_s=3.0, status=500))

    result = await make_resend_channel(timeout_s=0.3, attempts=3).deliver(KEY, PAYLOAD)

    assert result.outcome == "sent"
    assert_same_key_and_bytes(fake_resend, 3)
    assert len(fake_resend.emails) == 1
    assert len(sleeps) == 2
    fake_resend.reset()  # end the hang


async def test_a_timeout_after_delivery_is_replayed_not_sent_twice(
    fake_resend: FakeResendServer, make_resend_channel: ResendChannelFactory
) -> None:
    fake_resend.script(ScriptedFault(hang_s=3.0, hang="after"))

    result = await make_resend_channel(timeout_s=0.3).deliver(KEY, PAYLOAD)

    (delivered,) = fake_resend.emails
    assert (result.outcome, result.provider_id) == ("sent", delivered.id)
    assert [r.replayed for r in fake_resend.requests] == [False, True]
    fake_resend.reset()


async def test_422_is_dead_and_no_secret_is_in_the_reason_or_the_logs(
    fake_resend: FakeResendServer,
    make_resend_channel: ResendChannelFactory,
    caplog: pytest.LogCaptureFixture,
    sleeps: list[float],
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, the SDK's and httpx's included
    # A server that echoes the Authorization header back must not leak it either.
    fake_resend.script(429, ScriptedFault(422, message=f"bad: Bearer {FAKE_RESEND_KEY}"))

    result = await make_resend_channel().deliver(KEY, PAYLOAD)

    assert result.outcome == "dead"
    assert result.reason is not None
    assert "422" in result.reason
    assert "validation_error" in result.reason
    assert len(fake_resend.requests) == 2  # the 429 was retried, the 422 was not
    assert len(sleeps) == 1
    assert any(getattr(r, "event", None) == "alert_attempt_failed" for r in caplog.records)
    assert FAKE_RESEND_KEY not in result.reason
    assert FAKE_RESEND_KEY not in all_log_text(caplog)


async def test_a_payload_resend_refuses_is_dead_with_the_field_named(
    fake_resend: FakeResendServer, make_resend_channel: ResendChannelFactory
) -> None:
    payload = json.loads(PAYLOAD)
    del payload["subject"]

    result = await make_resend_channel().deliver(KEY, canonical_json(payload))

    assert result.outcome == "dead"
    assert result.reason is not None
    assert "missing_required_field" in result.reason
    assert "`subject`" in result.reason
    assert fake_resend.emails == []


@pytest.mark.parametrize("name", ["daily_quota_exceeded", "monthly_quota_exceeded"])
async def test_an_exhausted_quota_is_dead_at_once(
    fake_resend: FakeResendServer,
    make_resend_channel: ResendChannelFactory,
    sleeps: list[float],
    name: str,
) -> None:
    # Even with a retry-after, waiting cannot refill a quota: the name decides.
    fake_resend.script(ScriptedFault(429, name=name, headers={"retry-after": "1"}))

    result = await make_resend_channel().deliver(KEY, PAYLOAD)

    assert result.outcome == "dead"
    assert result.reason is not None
    assert name in result.reason
    assert len(fake_resend.requests) == 1
    assert sleeps == []


async def test_a_wrong_key_is_dead_and_the_key_is_never_in_the_reason(
    fake_resend: FakeResendServer,
    make_resend_channel: ResendChannelFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "re_wrong_but_secret_key_0042"

    result = await make_resend_channel(api_key=SecretStr(wrong)).deliver(KEY, PAYLOAD)

    assert result.outcome == "dead"
    assert result.reason is not None
    assert "403 invalid_api_key" in result.reason
    assert wrong not in result.reason
    assert wrong not in all_log_text(caplog)


async def test_idempotent_replay_after_a_crash_sends_one_email_with_one_id(
    fake_resend: FakeResendServer, make_resend_channel: ResendChannelFactory
) -> None:
    # A crash between the send and marking it sent: the outbox sends again,
    # maybe from a new process with a new channel.
    first = await make_resend_channel().deliver(KEY, PAYLOAD)
    second = await make_resend_channel().deliver(KEY, PAYLOAD)

    assert first.outcome == second.outcome == "sent"
    assert first.provider_id == second.provider_id
    assert len(fake_resend.emails_for(KEY)) == 1
    assert_same_key_and_bytes(fake_resend, 2)


async def test_the_same_key_with_another_payload_is_dead_409(
    fake_resend: FakeResendServer, make_resend_channel: ResendChannelFactory
) -> None:
    channel = make_resend_channel()
    await channel.deliver(KEY, PAYLOAD)
    other = email_payload(make_report(-1.1))

    result = await channel.deliver(KEY, other)

    assert result.outcome == "dead"
    assert result.reason is not None
    assert "409 invalid_idempotent_request" in result.reason
    assert len(fake_resend.emails) == 1


async def test_a_concurrent_request_409_is_retried(
    fake_resend: FakeResendServer, make_resend_channel: ResendChannelFactory
) -> None:
    fake_resend.script(ScriptedFault(409, name="concurrent_idempotent_requests"))

    result = await make_resend_channel().deliver(KEY, PAYLOAD)

    assert result.outcome == "sent"
    assert [r.status for r in fake_resend.requests] == [409, 200]


async def test_two_deliveries_at_once_send_one_email(
    fake_resend: FakeResendServer, make_resend_channel: ResendChannelFactory
) -> None:
    fake_resend.set_latency(0.1)
    first, second = await asyncio.gather(
        make_resend_channel().deliver(KEY, PAYLOAD), make_resend_channel().deliver(KEY, PAYLOAD)
    )

    assert first.outcome == second.outcome == "sent"
    assert first.provider_id == second.provider_id
    assert len(fake_resend.emails) == 1


async def test_attempts_used_up_hand_back_a_retry(
    fake_resend: FakeResendServer, make_resend_channel: ResendChannelFactory, sleeps: list[float]
) -> None:
    fake_resend.script(500, 502, 503)
    channel = make_resend_channel(attempts=3)

    result = await channel.deliver(KEY, PAYLOAD)

    assert result.outcome == "retry"
    assert result.reason is not None
    assert "503" in result.reason
    assert len(fake_resend.requests) == 3
    assert len(sleeps) == 2
    assert fake_resend.emails == []
    # The next tick succeeds, with the same key and bytes.
    assert (await channel.deliver(KEY, PAYLOAD)).outcome == "sent"
    assert_same_key_and_bytes(fake_resend, 4)


async def test_a_retry_after_beyond_the_cap_is_handed_to_the_outbox(
    fake_resend: FakeResendServer, make_resend_channel: ResendChannelFactory, sleeps: list[float]
) -> None:
    fake_resend.script(ScriptedFault(429, headers={"retry-after": "3600"}))

    result = await make_resend_channel(max_retry_after_s=30).deliver(KEY, PAYLOAD)

    assert (result.outcome, result.retry_after_s) == ("retry", 3600.0)
    assert len(fake_resend.requests) == 1
    assert sleeps == []


async def test_an_unreachable_api_is_retried(
    make_resend_channel: ResendChannelFactory, sleeps: list[float]
) -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    result = await make_resend_channel(base_url=f"http://127.0.0.1:{port}", attempts=2).deliver(
        KEY, PAYLOAD
    )

    assert result.outcome == "retry"
    assert result.reason is not None
    assert result.reason.startswith("Resend unreachable: ConnectError")
    assert len(sleeps) == 1


async def test_the_sdk_globals_are_restored(
    fake_resend: FakeResendServer, make_resend_channel: ResendChannelFactory
) -> None:
    before = (resend.api_key, resend.api_url, resend.default_http_client)

    await make_resend_channel().deliver(KEY, PAYLOAD)

    assert (resend.api_key, resend.api_url, resend.default_http_client) == before
    assert resend.api_key != FAKE_RESEND_KEY


async def test_a_key_resend_would_refuse_is_hashed_stably(
    fake_resend: FakeResendServer, make_resend_channel: ResendChannelFactory
) -> None:
    key = "suite-é:" + "x" * 300
    channel = make_resend_channel()

    first = await channel.deliver(key, PAYLOAD)
    second = await channel.deliver(key, PAYLOAD)

    assert first.outcome == "sent"
    assert first.provider_id == second.provider_id
    assert {r.idempotency_key for r in fake_resend.requests} == {wire_key(key)}
    assert wire_key(key).startswith("sha256:")
    assert wire_key(KEY) == KEY


async def test_a_stored_payload_that_is_not_an_object_is_dead_unsent(
    fake_resend: FakeResendServer, make_resend_channel: ResendChannelFactory
) -> None:
    result = await make_resend_channel().deliver(KEY, "[1, 2")

    assert result.outcome == "dead"
    assert fake_resend.requests == []


def test_channel_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="empty"):
        ResendEmailChannel(SecretStr(" "))
    with pytest.raises(ValueError, match="attempts"):
        ResendEmailChannel(SecretStr(FAKE_RESEND_KEY), attempts=0)


def test_retry_after_parsing() -> None:
    assert parse_retry_after({"Retry-After": "7"}) == 7.0
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert parse_retry_after({"ratelimit-reset": "3"}) is None
    assert parse_retry_after({"ratelimit-reset": "3"}, rate_limited=True) == 3.0
    assert parse_retry_after({"retry-after": "-1"}) is None
    assert parse_retry_after(None) is None


# ------------------------------------------------------------------ webhook


async def test_webhook_posts_the_stored_bytes_with_the_key(
    fake_webhook: FakeWebhook, make_webhook_channel: WebhookChannelFactory
) -> None:
    fake_webhook.script(WebhookReply(headers={"x-request-id": "req-1"}))
    payload = canonical_json(render_webhook(make_report(), slack=False))

    result = await make_webhook_channel().deliver(KEY, payload)

    assert (result.outcome, result.provider_id) == ("sent", "req-1")
    (hook,) = fake_webhook.received
    assert hook.raw == payload.encode()
    assert hook.headers["content-type"] == "application/json"
    assert hook.headers["idempotency-key"] == KEY


async def test_webhook_429_then_success_honours_retry_after(
    fake_webhook: FakeWebhook, make_webhook_channel: WebhookChannelFactory, sleeps: list[float]
) -> None:
    fake_webhook.script(WebhookReply(429, "rate_limited", {"retry-after": "3"}))
    payload = canonical_json(render_webhook(make_report(), slack=True))

    result = await make_webhook_channel(slack=True).deliver(KEY, payload)

    assert result.outcome == "sent"
    assert sleeps == [3.0]
    assert [h.raw for h in fake_webhook.received] == [payload.encode()] * 2


async def test_webhook_500_and_timeout_are_retried(
    fake_webhook: FakeWebhook, make_webhook_channel: WebhookChannelFactory
) -> None:
    fake_webhook.script(500, WebhookReply(hang_s=1.0))
    payload = canonical_json(render_webhook(make_report(), slack=False))

    result = await make_webhook_channel(timeout_s=0.3).deliver(KEY, payload)

    assert result.outcome == "sent"
    received = fake_webhook.received
    assert len(received) == 3
    assert {h.raw for h in received} == {payload.encode()}
    assert {h.headers["idempotency-key"] for h in received} == {KEY}


async def test_webhook_4xx_is_dead_and_the_url_and_headers_stay_secret(
    fake_webhook: FakeWebhook,
    make_webhook_channel: WebhookChannelFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="continuous_eval")
    secret = "hook-secret-value-991"
    fake_webhook.script(WebhookReply(500, f"boom at {fake_webhook.url}"))
    fake_webhook.script(WebhookReply(401, f"bad token Bearer {secret} for /hooks/{WEBHOOK_TOKEN}"))
    channel = make_webhook_channel(headers={"Authorization": f"Bearer {secret}"})

    result = await channel.deliver(KEY, canonical_json(render_webhook(make_report(), slack=False)))

    assert result.outcome == "dead"
    assert result.reason is not None
    assert result.reason.startswith("webhook answered 401")
    assert fake_webhook.received[0].headers["authorization"] == f"Bearer {secret}"
    logged = all_log_text(caplog)
    for leaked in (secret, WEBHOOK_TOKEN):
        assert leaked not in result.reason
        assert leaked not in logged


async def test_webhook_attempts_used_up_hand_back_a_retry(
    fake_webhook: FakeWebhook, make_webhook_channel: WebhookChannelFactory
) -> None:
    fake_webhook.script(503, 503)
    payload = canonical_json(render_webhook(make_report(), slack=False))

    result = await make_webhook_channel(attempts=2).deliver(KEY, payload)

    assert result.outcome == "retry"
    assert len(fake_webhook.received) == 2


async def test_slack_channel_refuses_a_payload_that_is_not_a_slack_message(
    fake_webhook: FakeWebhook, make_webhook_channel: WebhookChannelFactory
) -> None:
    generic = canonical_json(render_webhook(make_report(), slack=False))

    result = await make_webhook_channel(slack=True).deliver(KEY, generic)

    assert result.outcome == "dead"
    assert fake_webhook.received == []


async def test_configured_headers_cannot_replace_the_key_or_the_content_type(
    fake_webhook: FakeWebhook, make_webhook_channel: WebhookChannelFactory
) -> None:
    channel = make_webhook_channel(
        headers={"Idempotency-Key": "other", "content-type": "text/plain", "X-Team": "quality"}
    )

    await channel.deliver(KEY, canonical_json({"a": 1}))

    (hook,) = fake_webhook.received
    assert hook.headers["idempotency-key"] == KEY
    assert hook.headers["content-type"] == "application/json"
    assert hook.headers["x-team"] == "quality"
