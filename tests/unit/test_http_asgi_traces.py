"""Trace ingestion and its reads over the real app in process: OTLP, JSON, feedback, scopes."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from continuous_eval.adapters.http.app import create_app
from continuous_eval.core.interactions import Interaction
from continuous_eval.testing import InMemoryInteractionStore, InMemoryRunReader, InMemoryRunStore
from tests.fixtures.api_suite import AUTH, expect_error, make_settings
from tests.fixtures.asgi import BASE_URL, SUITES, UNUSED_DATABASE, _Idle
from tests.fixtures.otlp_requests import (
    as_json,
    chat_span,
    genai_request,
    http_span,
    request_of,
)

INGEST_TOKEN = "ingest-only-token"
INGEST_AUTH = {"Authorization": f"Bearer {INGEST_TOKEN}"}
PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
TRACE = f"{1:032x}"
INGEST_CAP = 64 * 1024


@dataclass
class TracesApi:
    client: httpx.AsyncClient
    ingest: httpx.AsyncClient
    store: InMemoryInteractionStore
    registry: CollectorRegistry

    @property
    def rows(self) -> list[Interaction]:
        return [row.interaction for row in self.store.interactions.values()]

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


@pytest.fixture
async def api() -> AsyncIterator[TracesApi]:
    settings = make_settings(
        UNUSED_DATABASE,
        ingest_tokens=[SecretStr(INGEST_TOKEN)],
        ingest_max_body_bytes=INGEST_CAP,
    )
    store = InMemoryRunStore()
    interactions = InMemoryInteractionStore()
    registry = CollectorRegistry()
    app = create_app(
        settings=settings,
        readiness=lambda: None,
        registry=registry,
        daemon=_Idle(),
        store=store,
        reader=InMemoryRunReader(store),
        suites=SUITES,
        interactions=interactions,
        dashboard=False,
    )
    transport = httpx.ASGITransport(app=app)
    token = [(name.encode(), value) for name, value in AUTH.items()]
    async with (
        httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=token) as client,
        httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=INGEST_AUTH) as ingest,
    ):
        yield TracesApi(client, ingest, interactions, registry)


def item(span: int, **overrides: Any) -> dict[str, Any]:
    body = {
        "trace_id": TRACE.upper(),
        "span_id": f"{span:016x}",
        "feature": "support-bot",
        "input": f"q{span}",
        "output": f"a{span}",
        "started_at": f"2026-01-01T00:00:{span:02d}Z",
        "steps": [{"kind": "tool_call", "name": "lookup", "arguments": {"id": span}}],
        "metadata": {"user": "u1"},
    }
    body.update(overrides)
    return body


# ------------------------------------------------------------------ OTLP/HTTP


async def test_otlp_protobuf_stores_genai_spans_once_and_skips_others(api: TracesApi) -> None:
    request = genai_request(3)
    request.resource_spans[0].scope_spans[0].spans.append(http_span(TRACE, "00000000000000ff"))
    body = request.SerializeToString()
    for _ in range(2):  # a re-sent batch
        response = await api.ingest.post("/v1/traces", content=body, headers=PROTOBUF)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/x-protobuf"
        answer = ExportTraceServiceResponse.FromString(response.content)
        assert not answer.HasField("partial_success")
    assert len(api.rows) == 3
    assert {r.feature for r in api.rows} == {"support-bot"}
    assert api.metric("continuous_eval_interactions_ingested_total", feature="support-bot") == 3
    assert api.metric("continuous_eval_spans_skipped_total") == 2


async def test_otlp_json_with_gzip_is_answered_in_json(api: TracesApi) -> None:
    body = gzip.compress(as_json(genai_request(2)))
    response = await api.ingest.post(
        "/v1/traces", content=body, headers={**JSON, "Content-Encoding": "gzip"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    assert [r.span_id for r in api.rows] == [f"{i:016x}" for i in (1, 2)]
    assert api.rows[0].trace_id == TRACE


async def test_otlp_partial_success_names_the_refused_spans(api: TracesApi) -> None:
    spans = [
        chat_span(TRACE, "0000000000000001", "q", "a"),
        chat_span("0" * 32, "0000000000000002", "q", "a"),
    ]
    request = request_of(spans)
    response = await api.ingest.post("/v1/traces", content=as_json(request), headers=JSON)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert "trace id" in partial["errorMessage"]
    assert len(api.rows) == 1
    assert api.metric("continuous_eval_interactions_rejected_total", reason="bad_trace_id") == 1


async def test_otlp_without_a_feature_is_rejected_no_feature(api: TracesApi) -> None:
    request = genai_request(1)
    request.resource_spans[0].resource.ClearField("attributes")
    response = await api.ingest.post(
        "/v1/traces", content=request.SerializeToString(), headers=PROTOBUF
    )
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert api.rows == []


@pytest.mark.parametrize(
    ("content", "headers", "status", "code"),
    [
        (b"\xff\xff", PROTOBUF, 400, "invalid_otlp"),
        (b"{", JSON, 400, "invalid_otlp"),
        (b"x", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        (b"x", {**PROTOBUF, "Content-Encoding": "br"}, 415, "unsupported_encoding"),
        (b"not gzip", {**PROTOBUF, "Content-Encoding": "gzip"}, 400, "invalid_body"),
        (
            gzip.compress(b"\0" * (INGEST_CAP * 4)),
            {**PROTOBUF, "Content-Encoding": "gzip"},
            413,
            "payload_too_large",
        ),
        (b"\0" * (INGEST_CAP + 1), PROTOBUF, 413, "payload_too_large"),
    ],
    ids=["bad-protobuf", "bad-json", "media-type", "encoding", "bad-gzip", "bomb", "over-cap"],
)
async def test_otlp_bad_bodies_get_clear_errors(
    api: TracesApi, content: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    response = await api.ingest.post("/v1/traces", content=content, headers=headers)
    expect_error(response, status, code)


async def test_the_ingest_cap_is_larger_than_the_admin_cap(api: TracesApi) -> None:
    body = genai_request(40).SerializeToString()
    assert 2048 < len(body) < INGEST_CAP
    response = await api.ingest.post("/v1/traces", content=body, headers=PROTOBUF)
    assert response.status_code == 200


# ----------------------------------------------------------------- plain JSON


async def test_plain_json_stores_once_and_counts_duplicates(api: TracesApi) -> None:
    body = {"interactions": [item(1), item(2), item(1)]}
    first = await api.ingest.post("/api/traces", json=body)
    assert first.status_code == 200, first.text
    assert first.json() == {"stored": 2, "duplicates": 1, "skipped": 0, "rejected": {}}
    again = await api.ingest.post("/api/traces", json=body)
    assert again.json()["stored"] == 0
    assert again.json()["duplicates"] == 3
    stored = api.rows[0]
    assert stored.trace_id == TRACE  # lowercased
    assert stored.steps[0].name == "lookup"
    assert stored.metadata == {"user": "u1"}


@pytest.mark.parametrize(
    "bad",
    [
        {"trace_id": "xyz"},
        {"span_id": "0" * 16},
        {"started_at": "2026-01-01T00:00:00"},  # no time zone
        {"feature": ""},
        {"unknown": 1},
        {"steps": [{"kind": "dance"}]},
    ],
)
async def test_plain_json_refuses_a_bad_item_whole(api: TracesApi, bad: dict[str, Any]) -> None:
    body = {"interactions": [item(1), item(2, **bad)]}
    expect_error(await api.ingest.post("/api/traces", json=body), 422, "validation_error")
    assert api.rows == []


async def test_plain_json_over_the_ingest_cap_is_413(api: TracesApi) -> None:
    huge = {"interactions": [item(1, input="x" * INGEST_CAP)]}
    expect_error(await api.ingest.post("/api/traces", json=huge), 413, "payload_too_large")


# ---------------------------------------------------------------------- reads


async def test_interactions_are_listed_by_feature_a_page_at_a_time(api: TracesApi) -> None:
    items = [item(i) for i in range(1, 6)] + [item(9, feature="other")]
    await api.client.post("/api/traces", json={"interactions": items})
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"feature": "support-bot", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await api.client.get("/api/interactions", params=params)).json()
        seen += [i["span_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"{i:016x}" for i in range(1, 6)]
    window = await api.client.get(
        "/api/interactions",
        params={"since": "2026-01-01T00:00:02Z", "until": "2026-01-01T00:00:04Z"},
    )
    assert [i["input"] for i in window.json()["items"]] == ["q2", "q3"]
    bad = await api.client.get("/api/interactions", params={"cursor": "nope"})
    expect_error(bad, 422, "validation_error")


async def test_a_trace_is_read_with_its_feedback(api: TracesApi) -> None:
    await api.client.post("/api/traces", json={"interactions": [item(2), item(1)]})
    posted = await api.client.post(
        f"/api/traces/{TRACE}/feedback",
        json={"author": "ana", "score": 0.5, "label": "wrong", "comment": "no"},
    )
    assert posted.status_code == 201, posted.text
    feedback = posted.json()
    assert feedback["trace_id"] == TRACE
    assert feedback["label"] == "wrong"
    trace = (await api.client.get(f"/api/traces/{TRACE.upper()}")).json()
    assert [i["span_id"] for i in trace["interactions"]] == [f"{i:016x}" for i in (1, 2)]
    assert trace["feedback"] == [feedback]
    listed = await api.client.get(f"/api/traces/{TRACE}/feedback")
    assert listed.json() == {"items": [feedback]}


async def test_feedback_on_an_unknown_trace_or_span_is_404(api: TracesApi) -> None:
    unknown = "f" * 32
    body = {"author": "ana", "score": 1}
    expect_error(
        await api.client.post(f"/api/traces/{unknown}/feedback", json=body), 404, "trace_not_found"
    )
    expect_error(await api.client.get(f"/api/traces/{unknown}"), 404, "trace_not_found")
    expect_error(await api.client.get(f"/api/traces/{unknown}/feedback"), 404, "trace_not_found")
    await api.client.post("/api/traces", json={"interactions": [item(1)]})
    on_span = {**body, "span_id": "00000000000000aa"}
    expect_error(
        await api.client.post(f"/api/traces/{TRACE}/feedback", json=on_span), 404, "span_not_found"
    )


@pytest.mark.parametrize(
    "bad", [{"author": "ana"}, {"author": "", "score": 1}, {"author": "a", "score": "nan"}]
)
async def test_feedback_needs_an_author_and_a_score_or_label(
    api: TracesApi, bad: dict[str, Any]
) -> None:
    await api.client.post("/api/traces", json={"interactions": [item(1)]})
    response = await api.client.post(
        f"/api/traces/{TRACE}/feedback", content=json.dumps(bad), headers=JSON
    )
    expect_error(response, 422, "validation_error")


# --------------------------------------------------------------------- scopes


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/interactions"),
        ("GET", f"/api/traces/{TRACE}"),
        ("POST", f"/api/traces/{TRACE}/feedback"),
        ("GET", "/api/runs"),
        ("GET", "/metrics"),
        ("GET", "/v1/traces"),
    ],
)
async def test_an_ingest_token_may_only_send_traces(api: TracesApi, method: str, path: str) -> None:
    response = await api.ingest.request(method, path)
    expect_error(response, 403, "forbidden")


async def test_an_admin_token_may_ingest_and_a_wrong_one_may_not(api: TracesApi) -> None:
    body = genai_request(1).SerializeToString()
    assert (await api.client.post("/v1/traces", content=body, headers=PROTOBUF)).status_code == 200
    stranger = {"Authorization": "Bearer nope", **PROTOBUF}
    response = await api.ingest.post("/v1/traces", content=body, headers=stranger)
    expect_error(response, 401, "unauthorized")
