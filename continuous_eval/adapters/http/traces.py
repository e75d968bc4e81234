"""Recorded traffic over HTTP: OTLP and plain JSON ingestion, interactions, traces, feedback.

``POST /v1/traces`` is OTLP/HTTP as the OpenTelemetry SDK and Collector send
it: protobuf or JSON, gzip or not; it answers an ``ExportTraceServiceResponse``
in the request's encoding, with ``partial_success`` when some spans were
refused (the others are stored: a client must not resend the batch for
them). ``POST /api/traces`` takes plain JSON and is valid whole or refused
whole (422). Both may be called with an ingest token
(``settings.ingest_tokens``), which can call nothing else; the guard
(``middleware.RequestGuard``) enforces that and their larger body cap.

Decoding, mapping and storing block, so they run in the thread pool, never
on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, Security
from pydantic import AwareDatetime
from starlette.concurrency import run_in_threadpool

from continuous_eval.adapters import otlp
from continuous_eval.adapters.http.auth import bearer_scheme
from continuous_eval.adapters.http.errors import ApiError, error_responses
from continuous_eval.adapters.http.pagination import (
    decode_interaction_cursor,
    encode_interaction_cursor,
)
from continuous_eval.adapters.http.schemas import NO_NUL
from continuous_eval.adapters.http.trace_schemas import (
    FeedbackIn,
    FeedbackList,
    FeedbackOut,
    IngestOut,
    InteractionPage,
    TraceOut,
    TracesIn,
    feedback_out,
    ingest_out,
    interaction_out,
)
from continuous_eval.adapters.ingest import Ingestor
from continuous_eval.core.interactions import IngestOutcome, StoredInteraction
from continuous_eval.ports.interactions import InteractionStore

OTLP_PATH = "/v1/traces"
JSON_INGEST_PATH = "/api/traces"
INGEST_ROUTES = (("POST", OTLP_PATH), ("POST", JSON_INGEST_PATH))
"""The (method, path) pairs an ingest-only token may call."""

TraceId = Annotated[str, Path(pattern=r"^[0-9a-fA-F]{32}$")]
"""A trace id in a path: 32 hex digits, any case."""


@dataclass(frozen=True)
class TracesContext:
    """What the trace routes use, injected by ``create_app``."""

    store: InteractionStore
    ingestor: Ingestor
    max_body_bytes: int
    """The ingest body cap, also applied to a gzip body once inflated."""


def traces_router(ctx: TracesContext) -> APIRouter:
    """The ingestion, interaction, trace and feedback routes."""
    router = APIRouter(dependencies=[Security(bearer_scheme)])
    _otlp_route(router, ctx)
    _json_routes(router, ctx)
    _feedback_routes(router, ctx)
    return router


OTLP_BODY = {
    "requestBody": {
        "required": True,
        "description": "An OTLP ExportTraceServiceRequest; `Content-Encoding: gzip` accepted.",
        "content": {
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


def _otlp_route(router: APIRouter, ctx: TracesContext) -> None:
    @router.post(
        OTLP_PATH,
        tags=["traces"],
        response_class=Response,
        openapi_extra=OTLP_BODY,
        responses={
            200: {
                "description": "An ExportTraceServiceResponse in the request's encoding.",
                "content": {
                    "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
                    "application/json": {"schema": {"type": "object"}},
                },
            },
            **error_responses(400, 401, 403, 413, 415),
        },
    )
    async def export_traces(request: Request) -> Response:
        """OTLP/HTTP trace export: GenAI spans are stored once each, others skipped."""
        try:
            encoding = otlp.encoding_of(request.headers.get("content-type"))
            body = await request.body()
            outcome = await run_in_threadpool(
                _export, ctx, body, encoding, request.headers.get("content-encoding")
            )
        except otlp.OtlpError as exc:
            raise ApiError(exc.status, exc.code, str(exc)) from None
        return Response(
            otlp.encode_response(outcome, encoding),
            media_type=otlp.RESPONSE_MEDIA_TYPES[encoding],
        )


def _export(
    ctx: TracesContext, body: bytes, encoding: otlp.Encoding, content_encoding: str | None
) -> IngestOutcome:
    payload = otlp.inflate(body, content_encoding, ctx.max_body_bytes)
    request = otlp.decode_request(payload, encoding)
    return ctx.ingestor.ingest_spans(otlp.spans_of(request))


def _json_routes(router: APIRouter, ctx: TracesContext) -> None:
    @router.post(
        JSON_INGEST_PATH,
        tags=["traces"],
        response_model=IngestOut,
        responses=error_responses(401, 403, 413, 422),
    )
    def ingest_json(body: TracesIn) -> IngestOut:
        """Store interactions sent as plain JSON; a re-sent one is stored once."""
        outcome = ctx.ingestor.ingest([item.to_interaction() for item in body.interactions])
        return ingest_out(outcome)

    @router.get(
        "/api/interactions",
        tags=["traces"],
        response_model=InteractionPage,
        responses=error_responses(401, 422),
    )
    def list_interactions(
        feature: Annotated[str | None, Query(min_length=1, max_length=200, pattern=NO_NUL)] = None,
        since: AwareDatetime | None = None,
        until: AwareDatetime | None = None,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> InteractionPage:
        """List interactions oldest first, started in ``[since, until)``, a page at a time."""
        after = decode_interaction_cursor(cursor) if cursor is not None else None
        rows = ctx.store.list_interactions(
            feature=feature, since=since, until=until, after_id=after, limit=limit + 1
        )
        page = rows[:limit]
        next_cursor = encode_interaction_cursor(page[-1].id) if len(rows) > limit else None
        return InteractionPage(items=[interaction_out(r) for r in page], next_cursor=next_cursor)

    @router.get(
        "/api/traces/{trace_id}",
        tags=["traces"],
        response_model=TraceOut,
        responses=error_responses(401, 404, 422),
    )
    def get_trace(trace_id: TraceId) -> TraceOut:
        """A trace's interactions by start time, and the feedback on it."""
        trace_id = trace_id.lower()
        interactions = _known(ctx, trace_id)
        feedback = ctx.store.list_feedback(trace_id)
        return TraceOut(
            trace_id=trace_id,
            interactions=[interaction_out(i) for i in interactions],
            feedback=[feedback_out(f) for f in feedback],
        )


def _feedback_routes(router: APIRouter, ctx: TracesContext) -> None:
    @router.post(
        "/api/traces/{trace_id}/feedback",
        tags=["traces"],
        status_code=201,
        response_model=FeedbackOut,
        responses=error_responses(401, 404, 422),
    )
    def add_feedback(trace_id: TraceId, body: FeedbackIn) -> FeedbackOut:
        """Record a score and/or label of a trace (or of one of its spans)."""
        trace_id = trace_id.lower()
        if body.span_id is not None:
            spans = {i.interaction.span_id for i in _known(ctx, trace_id)}
            if body.span_id not in spans:
                raise ApiError(
                    404, "span_not_found", f"trace {trace_id} has no span {body.span_id}"
                )
        try:
            stored = ctx.store.add_feedback(body.to_feedback(trace_id))
        except LookupError:
            raise _unknown_trace(trace_id) from None
        return feedback_out(stored)

    @router.get(
        "/api/traces/{trace_id}/feedback",
        tags=["traces"],
        response_model=FeedbackList,
        responses=error_responses(401, 404, 422),
    )
    def list_feedback(trace_id: TraceId) -> FeedbackList:
        """A trace's feedback, oldest first."""
        trace_id = trace_id.lower()
        feedback = ctx.store.list_feedback(trace_id)
        if not feedback:
            _known(ctx, trace_id)
        return FeedbackList(items=[feedback_out(f) for f in feedback])


def _known(ctx: TracesContext, trace_id: str) -> list[StoredInteraction]:
    interactions = ctx.store.trace(trace_id)
    if not interactions:
        raise _unknown_trace(trace_id)
    return interactions


def _unknown_trace(trace_id: str) -> ApiError:
    return ApiError(404, "trace_not_found", f"no interaction of trace {trace_id} is stored")
