"""The fake Resend API over real HTTP: shapes, validation, idempotency, faults, control routes.

Raw ``httpx`` pins the wire format; the real ``resend`` SDK pins that the
fake's errors map to the SDK exceptions production code will see.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import resend
from resend.exceptions import (
    InvalidApiKeyError,
    MissingApiKeyError,
    MissingRequiredFieldsError,
    RateLimitError,
    ResendError,
    ValidationError,
)

from continuous_eval.fakes.resend_server import (
    ERROR_MESSAGES,
    FakeResendServer,
    ScriptedFault,
)
from tests.fixtures.alerts import FAKE_RESEND_KEY

AUTH = {"Authorization": f"Bearer {FAKE_RESEND_KEY}"}


def email(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "from": "continuous-eval <alerts@example.com>",
        "to": ["oncall@example.com"],
        "subject": "hello",
        "text": "body",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


@pytest.fixture
def http(fake_resend: FakeResendServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake_resend.base_url, timeout=5) as client:
        yield client


def send(
    http: httpx.Client,
    payload: Any,
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = dict(AUTH if headers is None else headers)
    if key is not None:
        sent["Idempotency-Key"] = key
    return http.post("/emails", json=payload, headers=sent)


def assert_error(response: httpx.Response, status: int, name: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    data: dict[str, Any] = response.json()
    assert data == {"statusCode": status, "message": data["message"], "name": name}
    assert data["message"]
    return data


@pytest.fixture
def sdk(fake_resend: FakeResendServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the SDK's module globals at the fake for this test (restored after)."""
    monkeypatch.setattr(resend, "api_key", FAKE_RESEND_KEY)
    monkeypatch.setattr(resend, "api_url", fake_resend.base_url)


# ------------------------------------------------------------------ success


def test_success_answers_an_id_and_the_rate_limit_headers(
    http: httpx.Client, fake_resend: FakeResendServer
) -> None:
    response = send(http, email())

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert set(data) == {"id"}
    uuid.UUID(data["id"])
    assert response.headers["ratelimit-limit"] == "2"
    assert int(response.headers["ratelimit-remaining"]) >= 0
    assert response.headers["ratelimit-reset"] == "1"
    (delivered,) = fake_resend.emails
    assert delivered.id == data["id"]
    assert delivered.payload["subject"] == "hello"
    assert delivered.raw == response.request.content


@pytest.mark.parametrize(
    "to", ["one@example.com", ["one@example.com", "Two <two@example.com>"]], ids=["str", "list"]
)
def test_to_is_a_string_or_a_list(http: httpx.Client, to: object) -> None:
    assert send(http, email(to=to)).status_code == 200


@pytest.mark.parametrize("part", ["html", "text"])
def test_either_body_part_is_enough(http: httpx.Client, part: str) -> None:
    payload = email(text=None)
    payload[part] = "<p>x</p>"
    assert send(http, payload).status_code == 200


def test_the_real_sdk_sends_and_reads_the_id(sdk: None, fake_resend: FakeResendServer) -> None:
    response = resend.Emails.send(
        {"from": "a@example.com", "to": "b@example.com", "subject": "s", "text": "t"},
        {"idempotency_key": "sdk-key"},
    )

    (delivered,) = fake_resend.emails
    assert response["id"] == delivered.id
    (request,) = fake_resend.requests
    assert request.idempotency_key == "sdk-key"
    assert request.headers["authorization"] == f"Bearer {FAKE_RESEND_KEY}"
    assert request.headers["user-agent"].startswith("resend-python:")


# --------------------------------------------------------------- auth


def test_missing_key_is_401_missing_api_key(http: httpx.Client) -> None:
    assert_error(send(http, email(), headers={}), 401, "missing_api_key")
    assert_error(send(http, email(), headers={"Authorization": "Bearer"}), 401, "missing_api_key")


def test_wrong_key_is_403_invalid_api_key(
    http: httpx.Client, fake_resend: FakeResendServer
) -> None:
    data = assert_error(
        send(http, email(), headers={"Authorization": "Bearer re_other"}), 403, "invalid_api_key"
    )
    assert data["message"] == ERROR_MESSAGES["invalid_api_key"]
    assert fake_resend.emails == []


def test_without_a_configured_key_any_re_key_is_accepted() -> None:
    with FakeResendServer() as server, httpx.Client(base_url=server.base_url) as client:
        ok = send(client, email(), headers={"Authorization": "Bearer re_anything"})
        bad = send(client, email(), headers={"Authorization": "Bearer sk_not_resend"})
    assert ok.status_code == 200
    assert_error(bad, 403, "invalid_api_key")


def test_the_sdk_raises_its_auth_errors(sdk: None, monkeypatch: pytest.MonkeyPatch) -> None:
    params: Any = email(to="b@example.com")
    monkeypatch.setattr(resend, "api_key", "re_wrong")
    with pytest.raises(InvalidApiKeyError):
        resend.Emails.send(params)
    monkeypatch.setattr(resend, "api_key", "")
    with pytest.raises(MissingApiKeyError):
        resend.Emails.send(params)


# --------------------------------------------------------------- validation


@pytest.mark.parametrize("missing", ["from", "to", "subject"])
def test_missing_field_is_422_missing_required_field(http: httpx.Client, missing: str) -> None:
    payload = email()
    del payload[missing]
    data = assert_error(send(http, payload), 422, "missing_required_field")
    assert f"`{missing}`" in data["message"]


def test_missing_body_is_422(http: httpx.Client) -> None:
    data = assert_error(send(http, email(text=None)), 422, "missing_required_field")
    assert "html" in data["message"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"from": "not an address"}, "from"),
        ({"to": ["ok@example.com", "nope"]}, "to"),
        ({"to": 42}, "to"),
        ({"subject": ["list"]}, "subject"),
    ],
)
def test_malformed_fields_are_422_validation_error(
    http: httpx.Client, overrides: dict[str, Any], field: str
) -> None:
    data = assert_error(send(http, email(**overrides)), 422, "validation_error")
    assert f"`{field}`" in data["message"]


def test_more_than_50_recipients_is_422(http: httpx.Client) -> None:
    to = [f"r{i}@example.com" for i in range(51)]
    assert_error(send(http, email(to=to)), 422, "validation_error")


def test_a_body_that_is_not_json_is_400(http: httpx.Client) -> None:
    response = http.post("/emails", content=b"{nope", headers=AUTH)
    assert_error(response, 400, "validation_error")


def test_the_sdk_raises_its_validation_errors(sdk: None) -> None:
    with pytest.raises(MissingRequiredFieldsError) as missing:
        resend.Emails.send({"from": "a@example.com", "to": "b@example.com", "text": "t"})
    assert missing.value.code == 422
    with pytest.raises(ValidationError):
        resend.Emails.send({"from": "bad", "to": "b@example.com", "subject": "s", "text": "t"})


# -------------------------------------------------------------- idempotency


def test_same_key_same_payload_replays_the_id_without_a_second_email(
    http: httpx.Client, fake_resend: FakeResendServer
) -> None:
    first = send(http, email(), key="alert-1")
    # The same fields in another order are the same payload.
    second = http.post(
        "/emails",
        json=dict(reversed(email().items())),
        headers={**AUTH, "Idempotency-Key": "alert-1"},
    )

    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert len(fake_resend.emails_for("alert-1")) == 1
    requests = fake_resend.requests_for("alert-1")
    assert [r.replayed for r in requests] == [False, True]
    assert {r.email_id for r in requests} == {first.json()["id"]}


def test_same_key_other_payload_is_409_invalid_idempotent_request(
    http: httpx.Client, fake_resend: FakeResendServer
) -> None:
    send(http, email(), key="alert-1")
    data = assert_error(
        send(http, email(subject="other"), key="alert-1"), 409, "invalid_idempotent_request"
    )

    assert data["message"] == ERROR_MESSAGES["invalid_idempotent_request"]
    assert len(fake_resend.emails) == 1


def test_other_keys_are_other_emails(http: httpx.Client, fake_resend: FakeResendServer) -> None:
    ids = {send(http, email(), key=f"alert-{i}").json()["id"] for i in range(3)}
    ids.add(send(http, email()).json()["id"])  # no key: no idempotency
    ids.add(send(http, email()).json()["id"])
    assert len(ids) == len(fake_resend.emails) == 5


@pytest.mark.parametrize("key", ["", "k" * 257])
def test_a_key_outside_1_to_256_chars_is_400(http: httpx.Client, key: str) -> None:
    assert_error(send(http, email(), key=key), 400, "invalid_idempotency_key")


async def test_concurrent_requests_with_one_key_answer_409_concurrent(
    fake_resend: FakeResendServer,
) -> None:
    fake_resend.set_latency(0.3)
    headers = {**AUTH, "Idempotency-Key": "alert-1"}
    async with httpx.AsyncClient(base_url=fake_resend.base_url, timeout=5) as client:
        first, second = await asyncio.gather(
            client.post("/emails", json=email(), headers=headers),
            client.post("/emails", json=email(), headers=headers),
        )
        statuses = sorted([first.status_code, second.status_code])
        loser = first if first.status_code == 409 else second
        assert statuses == [200, 409]
        assert loser.json()["name"] == "concurrent_idempotent_requests"
        # Once the first is done, the key replays.
        third = await client.post("/emails", json=email(), headers=headers)
    assert third.status_code == 200
    assert len(fake_resend.emails) == 1


def test_an_error_stores_no_key_so_a_retry_is_processed(
    http: httpx.Client, fake_resend: FakeResendServer
) -> None:
    fake_resend.script(500)
    assert send(http, email(), key="alert-1").status_code == 500
    assert send(http, email(subject="fixed"), key="alert-1").status_code == 200
    assert len(fake_resend.emails) == 1


# ------------------------------------------------------------------ faults


def test_a_scripted_429_carries_retry_after_and_rate_limit_headers(
    http: httpx.Client, fake_resend: FakeResendServer
) -> None:
    fake_resend.script(429)
    response = send(http, email())

    data = assert_error(response, 429, "rate_limit_exceeded")
    assert data["message"] == ERROR_MESSAGES["rate_limit_exceeded"]
    assert response.headers["retry-after"] == "1"
    assert response.headers["ratelimit-remaining"] == "0"
    assert response.headers["ratelimit-limit"] == "2"
    assert fake_resend.emails == []
    assert send(http, email()).status_code == 200  # the script is used up


@pytest.mark.parametrize("name", ["daily_quota_exceeded", "monthly_quota_exceeded"])
def test_quota_errors_are_429_without_retry_after(
    http: httpx.Client, fake_resend: FakeResendServer, name: str
) -> None:
    fake_resend.script(ScriptedFault(429, name=name))
    response = send(http, email())
    data = assert_error(response, 429, name)
    assert data["message"] == ERROR_MESSAGES[name]
    assert "retry-after" not in response.headers


def test_scripted_errors_map_to_the_sdk_exceptions(
    sdk: None, fake_resend: FakeResendServer
) -> None:
    fake_resend.script(
        ScriptedFault(429, headers={"retry-after": "7"}),
        ScriptedFault(429, name="daily_quota_exceeded"),
        500,
        422,
    )
    params: Any = email()
    with pytest.raises(RateLimitError) as limited:
        resend.Emails.send(params)
    assert (limited.value.error_type, limited.value.headers["retry-after"]) == (
        "rate_limit_exceeded",
        "7",
    )
    with pytest.raises(RateLimitError) as quota:
        resend.Emails.send(params)
    assert quota.value.error_type == "daily_quota_exceeded"
    with pytest.raises(ResendError) as server:
        resend.Emails.send(params)
    assert (server.value.code, server.value.error_type) == (500, "application_error")
    with pytest.raises(ValidationError):
        resend.Emails.send(params)


def test_a_hang_longer_than_the_timeout_times_the_client_out(
    fake_resend: FakeResendServer,
) -> None:
    fake_resend.script(ScriptedFault(hang_s=2.0, status=500))
    with (
        httpx.Client(base_url=fake_resend.base_url, timeout=0.2) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        send(client, email())
    (request,) = fake_resend.requests
    assert request.status is None  # still hanging, counted on arrival
    fake_resend.reset()  # ends the hang early


def test_hang_after_delivers_then_loses_the_answer(fake_resend: FakeResendServer) -> None:
    fake_resend.script(ScriptedFault(hang_s=2.0, hang="after"))
    with httpx.Client(base_url=fake_resend.base_url, timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            send(client, email(), key="alert-1")
        retried = send(client, email(), key="alert-1")

    (delivered,) = fake_resend.emails
    assert retried.json() == {"id": delivered.id}
    assert [r.replayed for r in fake_resend.requests] == [False, True]


def test_enforced_rate_limit_answers_429_past_the_budget() -> None:
    with (
        FakeResendServer(api_key=FAKE_RESEND_KEY, rate_limit=1, enforce_rate_limit=True) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        statuses = [send(client, email()).status_code for _ in range(3)]
    # Three requests span at most two one-second windows with a budget of 1 each.
    assert statuses[0] == 200
    assert 429 in statuses


@pytest.mark.parametrize(
    "bad",
    [
        {"status": 200},
        {"hang": "after", "status": 500, "hang_s": 1},
        {},
        {"status": 500, "colour": "red"},
    ],
)
def test_bad_faults_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"."):
        ScriptedFault.from_json(bad)


# ----------------------------------------------------------- control routes


def test_control_routes_script_inspect_and_reset(
    http: httpx.Client, fake_resend: FakeResendServer
) -> None:
    scripted = http.post(
        "/_fake/script", json={"faults": [429, {"status": 429, "name": "monthly_quota_exceeded"}]}
    )
    assert scripted.json() == {"pending": 2}
    assert send(http, email(), key="k").status_code == 429
    assert send(http, email(), key="k").json()["name"] == "monthly_quota_exceeded"
    ok = send(http, email(), key="k")
    send(http, email(), key="k")

    snapshot = http.get("/_fake/emails").json()
    assert snapshot["delivered"] == 1
    assert snapshot["received"] == 4
    assert snapshot["emails"][0]["id"] == ok.json()["id"]
    assert snapshot["emails"][0]["payload"]["subject"] == "hello"
    assert [r["status"] for r in snapshot["requests"]] == [429, 429, 200, 200]
    assert [r["replayed"] for r in snapshot["requests"]] == [False, False, False, True]

    assert http.post("/_fake/reset").json() == {"reset": True}
    assert http.get("/_fake/emails").json()["received"] == 0
    assert send(http, email(subject="new"), key="k").status_code == 200  # the key is forgotten


def test_bad_control_requests_are_400(http: httpx.Client) -> None:
    assert http.post("/_fake/script", json={"faults": [200]}).status_code == 400
    assert http.post("/_fake/kill_on_send", json={"pid": "x"}).status_code == 400
    assert http.post("/_fake/latency", json={"seconds": -1}).status_code == 400


def test_unknown_routes_answer_in_resends_shape(http: httpx.Client) -> None:
    assert_error(http.get("/nope", headers=AUTH), 404, "not_found")
    assert_error(http.get("/emails", headers=AUTH), 405, "method_not_allowed")


# --------------------------------------------------------------- kill hook


def test_kill_on_send_kills_the_sender_after_delivery_before_answering(
    http: httpx.Client, fake_resend: FakeResendServer
) -> None:
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        armed = http.post("/_fake/kill_on_send", json={"pid": victim.pid})
        assert armed.json() == {"kill_on_send": victim.pid}

        response = send(http, email(), key="alert-1")

        assert victim.wait(timeout=5) == -signal.SIGKILL
        assert response.status_code == 200
        assert len(fake_resend.emails) == 1
        # One shot: the restarted sender is not killed again.
        assert http.get("/_fake/emails").json()["kill_on_send"] is None
    finally:
        victim.kill()
        victim.wait(timeout=5)


def test_kill_on_send_refuses_the_fake_itself(http: httpx.Client) -> None:
    assert http.post("/_fake/kill_on_send", json={"pid": os.getpid()}).status_code == 400
    assert http.post("/_fake/kill_on_send", json={"pid": 1}).status_code == 400


@pytest.mark.slow
def test_cli_serves_in_another_process() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "continuous_eval.fakes.resend_server",
            "--port",
            "0",
            "--api-key",
            FAKE_RESEND_KEY,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match, line
        with httpx.Client(base_url=match.group(0), timeout=10) as client:
            client.post("/_fake/script", json=[429])
            assert send(client, email()).status_code == 429
            assert send(client, email(), key="k").status_code == 200
            assert client.get("/_fake/emails").json()["delivered"] == 1
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
