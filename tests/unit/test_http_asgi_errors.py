"""Errors of the admin API, in process: the envelope, the request id, the body cap, a 500.

Framework errors (unknown route, wrong method, bad JSON) come in the same
envelope as the API's own; the body cap holds for a declared and for a
streamed body; an unexpected exception is a 500 that says nothing of it but
is logged with the request id.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from continuous_eval.core.models import ControlAction
from tests.fixtures.api_suite import expect_error
from tests.fixtures.asgi import InProcessApi


async def test_framework_errors_use_the_envelope(asgi: InProcessApi) -> None:
    client = asgi.client
    missing = expect_error(await client.get("/no/such/route"), 404, "not_found")
    assert "/no/such/route" in missing["message"]
    wrong = await client.delete("/api/runs")
    expect_error(wrong, 405, "method_not_allowed")
    assert wrong.headers["allow"]  # Starlette names the first matching route's methods
    invalid = expect_error(
        await client.get("/api/runs", params={"limit": 0}), 422, "validation_error"
    )
    assert invalid["details"]["errors"][0]["loc"] == ["query", "limit"]
    expect_error(
        await client.post(
            "/api/runs", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
        "validation_error",
    )
    expect_error(await client.get("/api/runs/no-such-run"), 404, "not_found")
    expect_error(await client.get("/api/runs", params={"status": "bogus"}), 422, "validation_error")


async def test_the_request_id_is_echoed_or_generated(asgi: InProcessApi) -> None:
    client = asgi.client
    mine = await client.get("/api/runs", headers={"X-Request-ID": "trace-123:abc"})
    assert mine.headers["x-request-id"] == "trace-123:abc"
    error = await client.get("/api/runs/nope", headers={"X-Request-ID": "trace-456"})
    assert error.headers["x-request-id"] == "trace-456"
    assert error.json()["error"]["request_id"] == "trace-456"
    for insane in ("has spaces", "x" * 200, "semi;colon"):
        replaced = await client.get("/api/runs", headers={"X-Request-ID": insane})
        assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])
    a, b = await client.get("/healthz"), await client.get("/healthz")
    assert a.headers["x-request-id"] != b.headers["x-request-id"]
    async with asgi.client_with(headers={}) as anonymous:
        refused = await anonymous.get("/api/runs", headers={"X-Request-ID": "anon-1"})
        assert refused.headers["x-request-id"] == "anon-1"


async def test_the_body_cap_is_enforced_before_the_body_is_read(asgi: InProcessApi) -> None:
    client = asgi.client
    big = b'{"suite": "fast", "pad": "' + b"x" * 5000 + b'"}'
    declared = expect_error(
        await client.post("/api/runs", content=big, headers={"content-type": "application/json"}),
        413,
        "payload_too_large",
    )
    assert declared["details"] == {"max_bytes": 2048}

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"suite": "fast", "pad": "'
        for _ in range(20):
            yield b"x" * 500
        yield b'"}'

    streamed = await client.post(
        "/api/runs", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in streamed.request.headers
    expect_error(streamed, 413, "payload_too_large")

    # Under the cap, the same route works.
    small = await client.post("/api/runs", json={"suite": "fast", "features": ["answers"] * 100})
    assert small.status_code == 202, small.text

    async with asgi.client_with(headers={}) as anonymous:
        # Auth comes first: a stranger's large body is not even looked at.
        expect_error(
            await anonymous.post(
                "/api/runs", content=big, headers={"content-type": "application/json"}
            ),
            401,
            "unauthorized",
        )


async def test_an_unexpected_error_is_a_500_envelope_and_is_logged(
    asgi: InProcessApi, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(run_id: str, action: ControlAction) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(asgi.daemon, "control", broken)
    response = await asgi.client.post(
        "/api/runs/some-run/cancel", headers={"X-Request-ID": "bug-1"}
    )
    error = expect_error(response, 500, "internal_error")
    assert error["request_id"] == "bug-1"
    assert "a bug" not in error["message"]  # internals stay in the log
    logged = [r for r in caplog.records if getattr(r, "event", None) == "api_error"]
    assert [getattr(r, "request_id", None) for r in logged] == ["bug-1"]
