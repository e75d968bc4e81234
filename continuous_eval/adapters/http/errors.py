"""Every error the admin API answers, as one JSON envelope with a stable code and a request id.

What belongs here: ``ApiError`` (raised by routes), the envelope builder,
and the exception handlers that turn FastAPI's and Starlette's own errors
(422 validation, 404 unknown route, 405 wrong method) and the store's
errors into the same shape::

    {"error": {"code": "not_found", "message": "...", "details": {...}, "request_id": "..."}}

Clients branch on ``code``, never on ``message``; codes are part of the API
and are only ever added, never renamed.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from continuous_eval.adapters.http.schemas import ErrorResponse
from continuous_eval.errors import RunNotFound, StoreError

log = logging.getLogger(__name__)

STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}
"""The code of an error that has no more specific one, by HTTP status."""

DESCRIPTIONS: dict[int, str] = {
    400: "The body cannot be decoded (`invalid_otlp`, `invalid_body`).",
    401: "No valid bearer token (`unauthorized`).",
    403: "An ingest-only token on a route that is not ingestion (`forbidden`).",
    404: (
        "No such run, trace, job or eval set (`not_found`, `trace_not_found`, "
        "`span_not_found`, `job_not_found`, `eval_set_not_found`, `case_not_found`)."
    ),
    409: (
        "`conflict`: the run id is taken by a run with another spec (the stored run is in "
        "`details.run`); or `gate_busy`: the suite is already running (the request is "
        "refused, not queued: retry later); `job_finished`: the job is already over; or "
        "`eval_set_exists`: the name is taken."
    ),
    413: "The request body is larger than the configured cap (`payload_too_large`).",
    422: (
        "The request is invalid (`validation_error`, `unknown_suite`, `unknown_feature`, "
        "`invalid_suite`, `feature_required`, `label_off_scale`, `unknown_case`)."
    ),
    415: (
        "Not `application/x-protobuf` or `application/json` (`unsupported_media_type`), "
        "or a `Content-Encoding` other than gzip (`unsupported_encoding`)."
    ),
    500: "A bug (`internal_error`); quote the request id.",
    503: "The database cannot be used right now (`database_unavailable`).",
}
"""Descriptions of the error statuses the routes declare in the OpenAPI document."""


def error_responses(
    *statuses: int, media_type: str | None = None
) -> dict[int | str, dict[str, Any]]:
    """Return a route's ``responses`` entry declaring these error statuses with the envelope.

    500 is always declared: any route may meet a bug, and its answer has the
    same shape.

    Args:
        statuses: The error statuses the route may answer (besides 500).
        media_type: The route's own media type when it is not JSON (the
            live-progress stream): FastAPI would document the errors under it,
            so they are declared as explicit JSON content instead.
    """
    statuses = tuple(sorted({*statuses, 500}))
    if media_type is None:
        return {
            status: {"model": ErrorResponse, "description": DESCRIPTIONS[status]}
            for status in statuses
        }
    schema = {"$ref": "#/components/schemas/ErrorResponse"}
    return {
        status: {
            "description": DESCRIPTIONS[status],
            "content": {"application/json": {"schema": schema}},
        }
        for status in statuses
    }


class ApiError(Exception):
    """An error a route answers on purpose, with its status, stable code and details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}
        super().__init__(message)


def request_id_of(scope_state: Any) -> str:
    """Return the request id the middleware put in the request's state ("-" outside it)."""
    value = getattr(scope_state, "request_id", None)
    return value if isinstance(value, str) else "-"


def envelope(
    code: str, message: str, request_id: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Build the JSON body of an error response."""
    return {
        "error": {
            "code": code,
            "message": message,
            "details": jsonable_encoder(details or {}),
            "request_id": request_id,
        }
    }


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Build an error response for a request that reached the app's routing."""
    body = envelope(code, message, request_id_of(request.state), details)
    return JSONResponse(body, status_code=status, headers=headers)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, ApiError):  # pragma: no cover - registered for ApiError only
        raise exc
    return error_response(request, exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover
        raise exc
    status = exc.status_code
    code = STATUS_CODES.get(status, "http_error")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "HTTP error"
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else phrase
    if status == 404 and message == "Not Found":
        message = f"no route {request.url.path!r}"
    return error_response(request, status, code, message, headers=dict(exc.headers or {}))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # pragma: no cover
        raise exc
    # Only where and what: the input echoed back could be large or secret, and
    # ``ctx`` may hold exception objects that are not JSON.
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type"))}
        for e in exc.errors()
    ]
    first = errors[0] if errors else None
    where = ".".join(str(p) for p in first["loc"]) if first else "request"
    message = f"{where}: {first['msg']}" if first else "invalid request"
    return error_response(request, 422, "validation_error", message, {"errors": errors})


async def _run_not_found(request: Request, exc: Exception) -> JSONResponse:
    return error_response(request, 404, "not_found", str(exc))


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    # The message names the failed operation, never credentials, but the
    # client needs none of it: logged here with the request id instead.
    request_id = request_id_of(request.state)
    log.error(
        "database error: %s",
        exc,
        extra={"event": "api_store_error", "request_id": request_id},
    )
    return error_response(
        request, 503, "database_unavailable", "the database cannot be used right now"
    )


def install_error_handlers(app: FastAPI) -> None:
    """Make every error the app raises answer the envelope.

    Unexpected exceptions are not handled here but by ``RequestGuard``,
    which sits outside the routing and can still add the request id.
    """
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # RunNotFound before StoreError: Starlette picks the most specific class.
    app.add_exception_handler(RunNotFound, _run_not_found)
    app.add_exception_handler(StoreError, _store_error)
