"""What the fake Resend API is scripted with and what it records.

Belongs here: ``ScriptedFault`` (an error, a hang, or both, for the next
request) and the records tests assert on: every request received
(``RecordedRequest``) and every email delivered (``DeliveredEmail``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from continuous_eval.fakes.control import (
    check_error_status,
    headers_from_json,
    is_integer,
    is_number,
)

KILLED_STATUS: Final = 499
"""Recorded for a request whose handler never answered (the client went away, or a reset)."""

HangWhen = Literal["before", "after"]

_FAULT_FIELDS: Final = frozenset({"status", "name", "message", "headers", "hang_s", "hang"})


@dataclass(frozen=True, slots=True)
class ScriptedFault:
    """What the fake does to the next request that passes authentication.

    - ``status`` alone: that error at once (``name`` defaults per status; a
      ``rate_limit_exceeded`` 429 gets ``retry-after`` unless headers give one).
    - ``hang_s`` (``hang="before"``): stall before the API sees the request,
      then answer ``status`` if given, or process it normally (a slow path to
      the API: the request holds no idempotency key while it stalls). Longer
      than the client's timeout, the client sees a timeout.
    - ``hang_s`` with ``hang="after"``: process and deliver the email, then
      stall before answering: the lost-response case, where a retry must get
      the same id back and no second email.
    """

    status: int | None = None
    name: str | None = None
    message: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    hang_s: float = 0.0
    hang: HangWhen = "before"

    def __post_init__(self) -> None:
        if self.status is not None:
            check_error_status(self.status)
        if not math.isfinite(self.hang_s) or self.hang_s < 0:
            raise ValueError("hang_s must be a finite number >= 0")
        if self.hang not in ("before", "after"):
            raise ValueError("hang must be 'before' or 'after'")
        if self.hang == "after" and self.status is not None:
            raise ValueError("hang='after' delivers the email; it cannot also fail with a status")
        if self.status is None and self.hang_s == 0:
            raise ValueError("a scripted fault needs a status, a hang_s, or both")

    @classmethod
    def from_json(cls, data: object) -> ScriptedFault:
        """Build from control-route JSON: a status, or an object of this class's fields."""
        if is_integer(data):
            return cls(status=data)
        if not isinstance(data, dict):
            raise ValueError("each scripted fault is a status or an object")
        unknown = set(data) - _FAULT_FIELDS
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        status = data.get("status")
        if status is not None and not is_integer(status):
            raise ValueError("'status' must be an integer")
        headers = headers_from_json(data.get("headers"))
        for text in ("name", "message"):
            if data.get(text) is not None and not isinstance(data[text], str):
                raise ValueError(f"{text!r} must be a string")
        hang_s = data.get("hang_s", 0.0)
        if not is_number(hang_s):
            raise ValueError("'hang_s' must be a number")
        hang = data.get("hang", "before")
        if hang not in ("before", "after"):
            raise ValueError("'hang' must be 'before' or 'after'")
        return cls(
            status=status,
            name=data.get("name"),
            message=data.get("message"),
            headers=headers,
            hang_s=float(hang_s),
            hang=hang,
        )


@dataclass(slots=True)
class RecordedRequest:
    """One ``POST /emails`` the fake received, recorded on arrival and completed on answer."""

    headers: Mapping[str, str]
    """Request headers, names lower-cased."""
    raw: bytes
    """The body exactly as received: compare it across retries for byte-identity."""
    idempotency_key: str | None
    status: int | None = None
    """The status answered; None while the request is still in flight."""
    name: str | None = None
    """The error ``name`` answered, for an error."""
    email_id: str | None = None
    """The id answered, new or replayed, for a success."""
    replayed: bool = False
    """Whether the answer was an idempotent replay (no email delivered)."""

    def to_json(self) -> dict[str, Any]:
        """Return JSON-ready data (the raw body as UTF-8 text)."""
        return {
            "idempotency_key": self.idempotency_key,
            "status": self.status,
            "name": self.name,
            "email_id": self.email_id,
            "replayed": self.replayed,
            "raw": self.raw.decode("utf-8", errors="replace"),
        }


@dataclass(frozen=True, slots=True)
class DeliveredEmail:
    """One email the fake delivered: one per new send, never one per replay."""

    id: str
    idempotency_key: str | None
    payload: Mapping[str, Any]
    """The parsed request body."""
    raw: bytes

    def to_json(self) -> dict[str, Any]:
        """Return JSON-ready data (the raw body as UTF-8 text)."""
        return {
            "id": self.id,
            "idempotency_key": self.idempotency_key,
            "payload": dict(self.payload),
            "raw": self.raw.decode("utf-8", errors="replace"),
        }
