"""The fake Messages API over real HTTP: shapes, validation, scripting, markers, control routes."""

from __future__ import annotations

import asyncio
import math
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from continuous_eval.fakes.anthropic_server import (
    FakeAnthropicServer,
    ScriptedError,
    error_type_for,
)
from tests.fixtures.anthropic import FAKE_API_KEY

HEADERS = {"x-api-key": FAKE_API_KEY, "anthropic-version": "2023-06-01"}
JUDGE_TOOLS = {
    "tools": [{"name": "record_score", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "tool", "name": "record_score"},
}


def body(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


@pytest.fixture
def http(fake_anthropic: FakeAnthropicServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake_anthropic.base_url, timeout=10) as client:
        yield client


def post(http: httpx.Client, payload: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return http.post("/v1/messages", json=payload, headers=HEADERS if headers is None else headers)


def assert_error(response: httpx.Response, status: int, error_type: str) -> dict[str, Any]:
    assert response.status_code == status
    data: dict[str, Any] = response.json()
    assert data["type"] == "error"
    assert data["error"]["type"] == error_type
    assert data["error"]["message"]
    assert data["request_id"].startswith("req_")
    assert response.headers["request-id"] == data["request_id"]
    return data


# --------------------------------------------------------------------- shapes


def test_success_has_the_real_message_shape(http: httpx.Client) -> None:
    response = post(http, body("hello", system="Be brief."))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["request-id"].startswith("req_")
    data = response.json()
    assert set(data) == {
        "id",
        "type",
        "role",
        "model",
        "content",
        "stop_reason",
        "stop_sequence",
        "usage",
    }
    assert data["id"].startswith("msg_")
    assert (data["type"], data["role"], data["model"]) == (
        "message",
        "assistant",
        "claude-haiku-4-5",
    )
    assert data["content"] == [{"type": "text", "text": "Answer: hello"}]
    assert (data["stop_reason"], data["stop_sequence"]) == ("end_turn", None)
    assert data["usage"] == {
        "input_tokens": math.ceil(len("Be brief.hello") / 4),
        "output_tokens": math.ceil(len("Answer: hello") / 4),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def test_content_blocks_and_conversation_use_the_last_user_message(http: httpx.Client) -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "reply"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "sec"}, {"type": "text", "text": "ond"}],
        },
    ]
    data = post(http, {**body(), "messages": messages}).json()

    assert data["content"][0]["text"] == "Answer: second"
    assert data["usage"]["input_tokens"] == math.ceil(len("firstreplysecond") / 4)


def test_ids_are_unique(http: httpx.Client) -> None:
    first, second = post(http, body()), post(http, body())
    assert first.json()["id"] != second.json()["id"]
    assert first.headers["request-id"] != second.headers["request-id"]


def test_bearer_authorization_is_accepted_as_sdk_2_sends_it(http: httpx.Client) -> None:
    headers = {"authorization": f"Bearer {FAKE_API_KEY}", "anthropic-version": "2023-06-01"}
    assert post(http, body(), headers).status_code == 200


# --------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "headers",
    [
        {"anthropic-version": "2023-06-01"},
        {"x-api-key": "", "anthropic-version": "2023-06-01"},
        {"x-api-key": "sk-ant-wrong", "anthropic-version": "2023-06-01"},
        {"authorization": "Bearer sk-ant-wrong", "anthropic-version": "2023-06-01"},
    ],
    ids=["missing", "empty", "wrong", "wrong-bearer"],
)
def test_bad_key_is_401(http: httpx.Client, headers: dict[str, str]) -> None:
    assert_error(post(http, body(), headers), 401, "authentication_error")


def test_missing_version_header_is_400(http: httpx.Client) -> None:
    data = assert_error(
        post(http, body(), {"x-api-key": FAKE_API_KEY}), 400, "invalid_request_error"
    )
    assert "anthropic-version" in data["error"]["message"]


def test_unparsable_body_is_400(http: httpx.Client) -> None:
    response = http.post("/v1/messages", content=b"{not json", headers=HEADERS)
    assert_error(response, 400, "invalid_request_error")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ([1, 2], "object"),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
        (body(model=""), "model"),
        (body(model=3), "model"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        (body(max_tokens=0), "max_tokens"),
        (body(max_tokens="10"), "max_tokens"),
        (body(max_tokens=True), "max_tokens"),
        (body(max_tokens=1.5), "max_tokens"),
        ({"model": "m", "max_tokens": 5}, "messages"),
        (body(messages=[]), "messages"),
        (body(messages="hi"), "messages"),
        (body(messages=[{"role": "system", "content": "x"}]), "role"),
        (body(messages=[{"role": "user"}]), "content"),
        (body(stream=True), "stream"),
        (body(tools=[{"input_schema": {}}]), "tools"),
        (body(tool_choice={"type": "tool", "name": "record_score"}), "tool_choice"),
    ],
)
def test_invalid_body_is_400(http: httpx.Client, payload: Any, field: str) -> None:
    data = assert_error(post(http, payload), 400, "invalid_request_error")
    assert field in data["error"]["message"]


def test_unknown_route_is_a_json_404(http: httpx.Client) -> None:
    assert_error(http.get("/v1/nothing", headers=HEADERS), 404, "not_found_error")
    assert_error(http.get("/v1/messages", headers=HEADERS), 405, "invalid_request_error")


# --------------------------------------------------------------------- scripting


def test_script_is_a_fifo_consumed_by_the_next_requests(
    fake_anthropic: FakeAnthropicServer, http: httpx.Client
) -> None:
    fake_anthropic.script(429, 500, ScriptedError(529, {"x-extra": "1"}, "busy"))

    rate_limited = post(http, body())
    assert_error(rate_limited, 429, "rate_limit_error")
    assert rate_limited.headers["retry-after"] == "1"
    assert rate_limited.headers["retry-after-ms"] == "1"
    assert_error(post(http, body()), 500, "api_error")
    overloaded = assert_error(post(http, body()), 529, "overloaded_error")
    assert overloaded["error"]["message"] == "busy"
    assert post(http, body()).status_code == 200
    assert [r.status for r in fake_anthropic.requests] == [429, 500, 529, 200]


def test_scripted_headers_override_the_defaults(
    fake_anthropic: FakeAnthropicServer, http: httpx.Client
) -> None:
    fake_anthropic.state.retry_after_ms = None
    fake_anthropic.script(ScriptedError(429, {"Retry-After": "7"}), 503)

    first = post(http, body())
    assert first.headers["retry-after"] == "7"
    assert "retry-after-ms" not in first.headers
    second = post(http, body())
    assert_error(second, 503, "api_error")
    assert "retry-after" not in second.headers


def test_scripted_error_comes_before_body_validation_but_after_auth(
    fake_anthropic: FakeAnthropicServer, http: httpx.Client
) -> None:
    fake_anthropic.script(529)
    assert_error(
        post(http, body(), {"anthropic-version": "2023-06-01"}), 401, "authentication_error"
    )
    assert_error(post(http, {"model": "m"}), 529, "overloaded_error")


def test_script_and_stats_over_http(http: httpx.Client) -> None:
    scripted = http.post(
        "/_fake/script",
        json={"errors": [{"status": 529, "headers": {"retry-after": "0"}}, 400]},
    )
    assert scripted.json() == {"pending": 2}
    assert http.get("/_fake/stats").json()["scripted_pending"] == 2

    assert post(http, body()).status_code == 529
    assert post(http, body()).status_code == 400
    assert post(http, body("x", **JUDGE_TOOLS)).status_code == 200

    stats = http.get("/_fake/stats").json()
    assert stats["requests"] == 3
    assert stats["by_status"] == {"200": 1, "400": 1, "529": 1}
    assert stats["judge_requests"] == 1
    assert stats["scripted_pending"] == 0
    assert stats["in_flight"] == 0


@pytest.mark.parametrize(
    "script",
    [
        {"errors": "429"},
        {"errors": [{"status": "429"}]},
        [{"status": 429, "headers": {"a": 1}}],
        [{"status": 429, "message": 3}],
        [200],
        "not json",
    ],
)
def test_bad_script_is_400(http: httpx.Client, script: Any) -> None:
    content = script.encode() if isinstance(script, str) else None
    response = http.post("/_fake/script", json=None if content else script, content=content)
    assert_error(response, 400, "invalid_request_error")


def test_scripted_error_must_be_an_error_status() -> None:
    with pytest.raises(ValueError, match="4xx or 5xx"):
        ScriptedError(200)


def test_reset_over_http(fake_anthropic: FakeAnthropicServer, http: httpx.Client) -> None:
    fake_anthropic.script(500)
    post(http, body())
    fake_anthropic.script(500)

    assert http.post("/_fake/reset").json() == {"reset": True}
    assert fake_anthropic.requests == []
    assert fake_anthropic.stats()["requests"] == 0
    assert post(http, body()).status_code == 200


def test_requests_record_body_headers_and_status(
    fake_anthropic: FakeAnthropicServer, http: httpx.Client
) -> None:
    post(http, body("recorded"))
    (recorded,) = fake_anthropic.requests
    assert recorded.body == body("recorded")
    assert recorded.headers["x-api-key"] == FAKE_API_KEY
    assert recorded.status == 200


# --------------------------------------------------------------------- markers


@pytest.mark.parametrize("status", [400, 401, 429, 500, 503, 529])
def test_fail_marker_always_fails(http: httpx.Client, status: int) -> None:
    for _ in range(2):
        response = post(http, body(f"please [[fail:{status}]] now"))
        assert_error(response, status, error_type_for(status))
    assert ("retry-after" in response.headers) == (status == 429)


def test_reply_marker_answers_exactly(http: httpx.Client) -> None:
    data = post(http, body("x [[reply:The refund takes\n5 days.]] y")).json()
    assert data["content"] == [{"type": "text", "text": "The refund takes\n5 days."}]


def test_long_answer_is_cut_at_max_tokens(http: httpx.Client) -> None:
    data = post(http, body("x" * 100, max_tokens=5)).json()
    assert data["stop_reason"] == "max_tokens"
    assert data["content"][0]["text"] == ("Answer: " + "x" * 100)[:20]
    assert data["usage"]["output_tokens"] == 5


def judge(http: httpx.Client, text: str, **extra: Any) -> dict[str, Any]:
    response = post(http, body(text, **JUDGE_TOOLS, **extra))
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    return data


def test_judge_answers_a_record_score_tool_call(http: httpx.Client) -> None:
    data = judge(http, "grade this [[score:4]]")

    assert data["stop_reason"] == "tool_use"
    (block,) = data["content"]
    assert block["type"] == "tool_use"
    assert block["id"].startswith("toolu_")
    assert block["name"] == "record_score"
    assert block["input"]["score"] == 4
    assert isinstance(block["input"]["rationale"], str)
    assert block["input"]["rationale"]


def test_judge_score_without_marker_is_deterministic(http: httpx.Client) -> None:
    scores = {
        text: judge(http, text)["content"][0]["input"]["score"] for text in map(str, range(40))
    }

    assert {judge(http, "7")["content"][0]["input"]["score"]} == {scores["7"]}
    assert set(scores.values()) == {1, 2, 3, 4, 5}


def test_judge_score_marker_is_passed_through_out_of_range(http: httpx.Client) -> None:
    assert judge(http, "[[score:7]]")["content"][0]["input"]["score"] == 7


@pytest.mark.parametrize(
    ("marker", "stop_reason", "check"),
    [
        ("garbage", "end_turn", lambda c: [b["type"] for b in c] == ["text"]),
        ("string_score", "tool_use", lambda c: c[0]["input"]["score"] == "high"),
        ("max_tokens", "max_tokens", lambda c: c[0]["input"] == {}),
        ("two_tools", "tool_use", lambda c: len(c) == 2),
        ("refusal", "refusal", lambda c: c == []),
    ],
)
def test_judge_markers_answer_unusable_verdicts(
    http: httpx.Client, marker: str, stop_reason: str, check: Any
) -> None:
    data = judge(http, f"[[judge:{marker}]]")
    assert data["stop_reason"] == stop_reason
    assert check(data["content"])


def test_judge_cut_off_when_max_tokens_is_too_small(http: httpx.Client) -> None:
    data = judge(http, "[[score:3]]", max_tokens=2)
    assert data["stop_reason"] == "max_tokens"


# --------------------------------------------------------------------- latency


def test_latency_delays_answers(fake_anthropic: FakeAnthropicServer, http: httpx.Client) -> None:
    fake_anthropic.set_latency(0.2)
    started = time.monotonic()
    assert post(http, body()).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_latency_over_http_and_sleep_marker(http: httpx.Client) -> None:
    assert http.post("/_fake/latency", json={"seconds": 0.1}).json() == {"latency_s": 0.1}
    started = time.monotonic()
    post(http, body("[[sleep:0.1]]"))
    assert time.monotonic() - started >= 0.2
    assert_error(http.post("/_fake/latency", json={"seconds": -1}), 400, "invalid_request_error")


async def test_concurrent_requests_stay_deterministic(fake_anthropic: FakeAnthropicServer) -> None:
    fake_anthropic.set_latency(0.05)
    async with httpx.AsyncClient(base_url=fake_anthropic.base_url, timeout=10) as client:
        texts = [f"[[reply:r{i}]]" if i % 3 else f"[[fail:{500 + i % 2}]]" for i in range(30)]
        responses = await asyncio.gather(
            *(client.post("/v1/messages", json=body(t), headers=HEADERS) for t in texts)
        )
    for i, response in enumerate(responses):
        if i % 3:
            assert response.json()["content"][0]["text"] == f"r{i}"
        else:
            assert response.status_code == 500 + i % 2
    assert fake_anthropic.stats()["max_in_flight"] > 1


def test_request_in_flight_across_reset_is_not_counted(fake_anthropic: FakeAnthropicServer) -> None:
    with (
        httpx.Client(base_url=fake_anthropic.base_url, timeout=0.05) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        post(client, body("[[sleep:0.2]]"))
    fake_anthropic.reset()
    # The request the client gave up on is still being answered: wait for it to end.
    deadline = time.monotonic() + 10
    while fake_anthropic.stats()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake_anthropic.stats()["in_flight"] == 0
    assert fake_anthropic.requests == []
    assert fake_anthropic.stats()["by_status"] == {}


# --------------------------------------------------------------------- lifecycle


def test_server_releases_its_port_on_exit() -> None:
    with FakeAnthropicServer() as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        with httpx.Client(base_url=server.base_url) as client:
            assert client.get("/_fake/stats").status_code == 200
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))


def test_without_expected_key_any_key_is_accepted() -> None:
    with FakeAnthropicServer() as server, httpx.Client(base_url=server.base_url) as client:
        headers = {"x-api-key": "anything", "anthropic-version": "2023-06-01"}
        assert post(client, body(), headers).status_code == 200


@pytest.mark.slow
def test_cli_serves_in_another_process() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "continuous_eval.fakes.anthropic_server", "--port", "0"],
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
            assert post(client, body()).status_code == 429
            assert post(client, body()).status_code == 200
            assert client.get("/_fake/stats").json()["by_status"] == {"200": 1, "429": 1}
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
