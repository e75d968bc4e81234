"""Run-completion webhooks over real HTTP: signed per Standard Webhooks, through the outbox.

The channel against the fake receiver (signature, retries with the same id
and body, no URL in a reason); the API's ``callback_url`` and the
every-run webhook setting end to end on the in-process server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from continuous_eval.adapters.webhook import Signer
from continuous_eval.core.run_notice import notice_key
from continuous_eval.core.signing_secret import check_signing_secret
from tests.fixtures.alerts import FakeWebhook, WebhookChannelFactory, WebhookReply
from tests.integration.api_server import ApiServer, make_settings, running, suite_file

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
PAYLOAD = '{"data":{"run_id":"r1","status":"succeeded"},"type":"run.finished"}'


def expected_signature(message_id: str, timestamp: str, body: bytes) -> str:
    """The Standard Webhooks signature, computed here from the spec, not by the library."""
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


async def test_a_notice_is_signed_and_sent_to_its_destination(
    fake_webhook: FakeWebhook, make_webhook_channel: WebhookChannelFactory
) -> None:
    channel = make_webhook_channel(url=None, signer=Signer(SecretStr(SECRET)))
    destination = fake_webhook.url.replace("/hooks/", "/hooks/per-run-")

    result = await channel.deliver(notice_key("r1"), PAYLOAD, destination)

    assert result.outcome == "sent", result
    (hook,) = fake_webhook.received
    assert hook.path.endswith("/hooks/per-run-" + fake_webhook.url.rsplit("/", 1)[1])
    assert hook.raw == PAYLOAD.encode()
    assert hook.headers["webhook-id"] == "run:r1:finished"
    assert hook.headers["webhook-signature"] == expected_signature(
        "run:r1:finished", hook.headers["webhook-timestamp"], hook.raw
    )
    assert abs(int(hook.headers["webhook-timestamp"]) - time.time()) < 60
    # Any Standard Webhooks receiver library accepts it.
    assert Webhook(SECRET).verify(hook.raw, hook.headers) == json.loads(PAYLOAD)


async def test_retries_keep_the_id_and_body_and_sign_each_attempt(
    fake_webhook: FakeWebhook, make_webhook_channel: WebhookChannelFactory
) -> None:
    times = [datetime(2026, 12, 1, 12, 0, s, tzinfo=UTC) for s in (0, 5)]
    moments = iter(times)
    signer = Signer(SecretStr(SECRET), now=lambda: next(moments))
    channel = make_webhook_channel(url=None, signer=signer)
    fake_webhook.script(503, 200)

    result = await channel.deliver(notice_key("r1"), PAYLOAD, fake_webhook.url)

    assert result.outcome == "sent"
    first, second = fake_webhook.received
    assert first.raw == second.raw == PAYLOAD.encode()
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert [first.headers["webhook-timestamp"], second.headers["webhook-timestamp"]] == [
        str(int(t.timestamp())) for t in times
    ]
    for hook in (first, second):
        assert hook.headers["webhook-signature"] == expected_signature(
            hook.headers["webhook-id"], hook.headers["webhook-timestamp"], hook.raw
        )


async def test_a_refused_notice_is_dead_and_its_reason_hides_the_url(
    fake_webhook: FakeWebhook, make_webhook_channel: WebhookChannelFactory
) -> None:
    channel = make_webhook_channel(url=None, signer=Signer(SecretStr(SECRET)))
    destination = fake_webhook.url + "?token=do-not-show-0123456789"
    fake_webhook.script(WebhookReply(410, body=f"gone: {destination}"))

    result = await channel.deliver(notice_key("r1"), PAYLOAD, destination)

    assert result.outcome == "dead"
    assert result.reason is not None
    assert "410" in result.reason
    assert "do-not-show" not in result.reason
    assert fake_webhook.url not in result.reason


async def test_a_notice_without_a_destination_is_dead_without_a_request(
    fake_webhook: FakeWebhook, make_webhook_channel: WebhookChannelFactory
) -> None:
    channel = make_webhook_channel(url=None, signer=Signer(SecretStr(SECRET)))
    result = await channel.deliver(notice_key("r1"), PAYLOAD, None)
    assert result.outcome == "dead"
    assert fake_webhook.received == []


@pytest.mark.parametrize("secret", ["short", "whsec_" + base64.b64encode(b"x" * 8).decode(), "!!"])
def test_a_weak_or_malformed_secret_is_refused(secret: str) -> None:
    with pytest.raises(ValueError, match=r"whsec_|at least 24 bytes"):
        check_signing_secret(secret)


# ---------------------------------------------------------------- through the API


@pytest.fixture
def hooked_server(db_url: str, tmp_path: Path, fake_webhook: FakeWebhook) -> Iterator[ApiServer]:
    """A server that signs notices and reports every run to the receiver's ``/every`` hook."""
    settings = make_settings(
        db_url,
        run_webhook_secret=SecretStr(SECRET),
        run_webhook_url=SecretStr(fake_webhook.url + "-every"),
    )
    with running(ApiServer(settings, suite_file(tmp_path))) as server:
        yield server


def _wait_for(fake_webhook: FakeWebhook, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while len(fake_webhook.received) < count:
        assert time.monotonic() < deadline, fake_webhook.received
        time.sleep(0.05)


def test_a_callback_and_the_run_webhook_hear_the_run_end(
    hooked_server: ApiServer, fake_webhook: FakeWebhook
) -> None:
    callback = fake_webhook.url + "-mine"
    with hooked_server.client() as client:
        accepted = client.post(
            "/api/runs", json={"suite": "fast", "run_id": "hooked-1", "callback_url": callback}
        )
        assert accepted.status_code == 202, accepted.text
        hooked_server.wait_run(client, "hooked-1", lambda r: r["status"] == "succeeded")
        _wait_for(fake_webhook, 2)
        # The same spec again is the same run; another callback is another spec.
        again = {"suite": "fast", "run_id": "hooked-1", "callback_url": callback}
        assert client.post("/api/runs", json=again).status_code == 202
        other = {**again, "callback_url": fake_webhook.url + "-else"}
        assert client.post("/api/runs", json=other).status_code == 409

    by_path = {hook.path.rsplit("/", 1)[1]: hook for hook in fake_webhook.received}
    token = fake_webhook.url.rsplit("/", 1)[1]
    assert set(by_path) == {f"{token}-mine", f"{token}-every"}
    for hook in by_path.values():
        body = Webhook(SECRET).verify(hook.raw, hook.headers)
        assert body["type"] == "run.finished"
        assert body["data"]["run_id"] == "hooked-1"
        assert body["data"]["status"] == "succeeded"
        assert {s["feature"] for s in body["data"]["scores"]} == {"answers", "extra"}
        assert hook.headers["webhook-id"] == "run:hooked-1:finished"
    assert len(fake_webhook.received) == 2  # the retry of the request sent nothing more


def test_a_callback_without_a_signing_secret_is_refused(
    db_url: str, tmp_path: Path, fake_webhook: FakeWebhook
) -> None:
    server = ApiServer(make_settings(db_url), suite_file(tmp_path))
    with running(server), server.client() as client:
        refused = client.post("/api/runs", json={"suite": "fast", "callback_url": fake_webhook.url})
        bad = client.post("/api/runs", json={"suite": "fast", "callback_url": "ftp://x"})
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "callback_unavailable"
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "validation_error"
