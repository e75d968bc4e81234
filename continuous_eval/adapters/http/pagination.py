"""Opaque cursors for keyset pagination.

A cursor is URL-safe base64 of a small JSON object naming the listing it
belongs to and the key of the last row sent. Opaque to clients on purpose:
they pass back what they got, so the key can change shape later without
breaking anyone. It is not signed; a forged cursor can only select a
different starting point of a listing the caller may read anyway.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from continuous_eval.adapters.http.errors import ApiError
from continuous_eval.core.reads import RunKey

MAX_CURSOR_CHARS = 512
"""Longer cursors are refused before decoding; ours are about 100 characters."""


def _encode(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(cursor: str, kind: str) -> dict[str, Any]:
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        if not isinstance(payload, dict) or payload.get("k") != kind:
            raise ValueError("not a cursor of this listing")
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise _invalid() from exc
    return payload


def _invalid() -> ApiError:
    return ApiError(
        422,
        "validation_error",
        "cursor: not a cursor of this listing; pass back a next_cursor unchanged",
        {"errors": [{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "cursor"}]},
    )


def encode_run_cursor(key: RunKey) -> str:
    """Return the cursor of the runs page that follows the run ``key``."""
    return _encode({"k": "runs", "t": key.created_at.isoformat(), "i": key.id})


def decode_run_cursor(cursor: str) -> RunKey:
    """Return the run key a runs cursor names.

    Raises:
        ApiError: 422 ``validation_error`` for anything that is not such a cursor.
    """
    payload = _decode(cursor, "runs")
    try:
        created = datetime.fromisoformat(payload["t"])
        run_id = payload["i"]
        if created.tzinfo is None or not isinstance(run_id, str) or "\x00" in run_id:
            raise ValueError("bad key")
        created = created.astimezone(UTC)  # a forged offset near year 1 overflows here, not in SQL
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise _invalid() from exc
    return RunKey(created, run_id)


def encode_result_cursor(result_id: int) -> str:
    """Return the cursor of the results page that follows result ``result_id``."""
    return _encode({"k": "results", "i": result_id})


def decode_result_cursor(cursor: str) -> int:
    """Return the result id a results cursor names.

    Raises:
        ApiError: 422 ``validation_error`` for anything that is not such a cursor.
    """
    value = _decode(cursor, "results").get("i")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise _invalid()
    return value


def encode_interaction_cursor(interaction_id: int) -> str:
    """Return the cursor of the interactions page that follows interaction ``interaction_id``."""
    return _encode({"k": "interactions", "i": interaction_id})


def decode_interaction_cursor(cursor: str) -> int:
    """Return the interaction id an interactions cursor names.

    Raises:
        ApiError: 422 ``validation_error`` for anything that is not such a cursor.
    """
    value = _decode(cursor, "interactions").get("i")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise _invalid()
    return value


def encode_job_cursor(job_id: int) -> str:
    """Return the cursor of the jobs page that follows job ``job_id`` (newest first)."""
    return _encode({"k": "jobs", "i": job_id})


def decode_job_cursor(cursor: str) -> int:
    """Return the job id a jobs cursor names (the next page has lower ids).

    Raises:
        ApiError: 422 ``validation_error`` for anything that is not such a cursor.
    """
    value = _decode(cursor, "jobs").get("i")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise _invalid()
    return value


def encode_case_cursor(case_id: str) -> str:
    """Return the cursor of the eval-set cases page that follows the case ``case_id``."""
    return _encode({"k": "eval_cases", "c": case_id})


def decode_case_cursor(cursor: str) -> str:
    """Return the case id a cases cursor names.

    Raises:
        ApiError: 422 ``validation_error`` when it is not such a cursor.
    """
    payload = _decode(cursor, "eval_cases")
    case_id = payload.get("c")
    if not isinstance(case_id, str):
        raise _invalid()
    return case_id
