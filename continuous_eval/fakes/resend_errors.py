"""How the fake Resend API words an error: Resend's documented names, messages and shape.

Belongs here: the ``{"statusCode", "message", "name"}`` body and the table of
names behind it, and ``Answer``, what a request is answered before it becomes
an HTTP response. Everything else about the fake builds on these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

ERROR_MESSAGES: Final[Mapping[str, str]] = {
    "invalid_idempotency_key": "The key must be between 1-256 chars.",
    "validation_error": "We found an error with one or more fields in the request.",
    "missing_api_key": "Missing API key in the authorization header.",
    "restricted_api_key": "This API key is restricted to only send emails.",
    "invalid_api_key": "API key is invalid",
    "not_found": "The requested endpoint does not exist.",
    "method_not_allowed": "Method is not allowed for the requested path.",
    "invalid_idempotent_request": "Same idempotency key used with a different request payload.",
    "concurrent_idempotent_requests": (
        "Same idempotency key used while original request is still in progress."
    ),
    "missing_required_field": "The request body is missing one or more required fields.",
    "daily_quota_exceeded": "You have reached your daily email sending quota.",
    "monthly_quota_exceeded": "You have reached your monthly email sending quota.",
    "rate_limit_exceeded": (
        "Too many requests. Please limit the number of requests per second. "
        "Or contact support to increase rate limit."
    ),
    "application_error": "An unexpected error occurred.",
    "internal_server_error": "An unexpected error occurred.",
}
"""Resend's documented error names and their messages (api-reference/errors)."""

NAME_FOR_STATUS: Final[Mapping[int, str]] = {
    400: "validation_error",
    401: "missing_api_key",
    403: "invalid_api_key",
    404: "not_found",
    405: "method_not_allowed",
    409: "invalid_idempotent_request",
    422: "validation_error",
    429: "rate_limit_exceeded",
    500: "application_error",
}
"""The ``name`` a scripted error gets when the script gives a status only."""


def name_for(status: int) -> str:
    """Return the error ``name`` Resend uses for a status when nothing more specific applies."""
    if status in NAME_FOR_STATUS:
        return NAME_FOR_STATUS[status]
    return "internal_server_error" if status >= 500 else "validation_error"


@dataclass(frozen=True, slots=True)
class Answer:
    """What one ``/emails`` request is answered, before it becomes an HTTP response."""

    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    email_id: str | None = None
    replayed: bool = False


def error_answer(
    status: int,
    name: str | None = None,
    message: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """Build an error in Resend's shape: ``{"statusCode", "message", "name"}``."""
    error_name = name or name_for(status)
    text = message or ERROR_MESSAGES.get(error_name, f"fake error (status {status})")
    return Answer(
        status=status,
        body={"statusCode": status, "message": text, "name": error_name},
        headers=dict(headers or {}),
    )
