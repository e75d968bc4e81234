"""Which send bodies the real Resend API refuses, and with what error.

Belongs here: the checks behind step 5 of ``resend_server``'s list. A body
that is not an object is a ``400 validation_error``; a missing field a
``422 missing_required_field``; a malformed one a ``422 validation_error``,
checked in the order Resend reports them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from continuous_eval.fakes.resend_errors import Answer, error_answer

MAX_RECIPIENTS: Final = 50
"""Resend's cap on addresses in ``to``."""

_EMAIL: Final = r"[^\s@<>,;\"]+@[^\s@<>,;\"]+\.[^\s@<>,;\"]+"
_ADDRESS: Final = re.compile(rf"^(?:{_EMAIL}|[^<>\r\n]*<{_EMAIL}>)$")
_ADDRESS_HELP: Final = (
    "The email address needs to follow the `email@example.com` or "
    "`Name <email@example.com>` format."
)


def validate_email(body: object) -> Answer | None:
    """Return the real API's complaint about a send request's body, or None when it is valid."""
    if not isinstance(body, dict):
        return error_answer(400, "validation_error", "The request body must be a JSON object.")
    missing = _missing_field(body)
    if missing is not None:
        return error_answer(422, "missing_required_field", missing)
    invalid = _invalid_field(body)
    if invalid is not None:
        return error_answer(422, "validation_error", invalid)
    return None


def _missing_field(body: Mapping[str, Any]) -> str | None:
    for required in ("from", "to", "subject"):
        if body.get(required) in (None, "", []):
            return f"Missing `{required}` field."
    if not any(body.get(part) not in (None, "") for part in ("html", "text", "template")):
        return "Missing `html` or `text` field."
    return None


def _invalid_field(body: Mapping[str, Any]) -> str | None:
    # Runs after _missing_field: ``from``, ``to`` and ``subject`` are present.
    return (
        _address_problem("from", body["from"])
        or _recipients_problem(body["to"])
        or _text_type_problem(body)
    )


def _address_problem(field_name: str, value: object) -> str | None:
    if not isinstance(value, str) or not _ADDRESS.match(value.strip()):
        return f"Invalid `{field_name}` field. {_ADDRESS_HELP}"
    return None


def _recipients_problem(to: object) -> str | None:
    recipients = to if isinstance(to, list) else [to]
    if len(recipients) > MAX_RECIPIENTS:
        return f"Too many recipients: `to` holds at most {MAX_RECIPIENTS}."
    for address in recipients:
        problem = _address_problem("to", address)
        if problem:
            return problem
    return None


def _text_type_problem(body: Mapping[str, Any]) -> str | None:
    for text_field in ("subject", "html", "text"):
        if text_field in body and not isinstance(body[text_field], str):
            return f"Invalid `{text_field}` field: expected a string."
    return None
