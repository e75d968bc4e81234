"""A fake Resend email API for tests and end-to-end runs.

It speaks the real API's wire format for ``POST /emails`` (the same success
body, error bodies ``{"statusCode", "message", "name"}``, statuses, error
names and rate-limit headers), so the real ``resend`` SDK runs against it
unchanged and raises the same exception classes it would in production.
Nothing is mocked on the client side; only the mail delivery is replaced by a
list of delivered emails that tests assert on ("exactly one email per key").

What a ``POST /emails`` gets, in order:

1. ``401 missing_api_key`` without ``Authorization: Bearer <key>``;
   ``403 invalid_api_key`` for a key other than the configured one (or, with
   none configured, a key that does not start with ``re_``, as Resend keys do).
2. ``400 invalid_idempotency_key`` for an ``Idempotency-Key`` that is empty or
   longer than 256 characters.
3. The next scripted fault, if any (a FIFO; ``FakeResendServer.script`` or
   ``POST /_fake/script``): an error, a hang, or both (see ``ScriptedFault``).
4. ``429 rate_limit_exceeded`` when rate limiting is enforced (off by default)
   and this second's requests are used up.
5. ``400 validation_error`` for a body that is not a JSON object;
   ``422 missing_required_field`` for a missing ``from``, ``to``, ``subject``,
   or body (``html`` / ``text`` / ``template``); ``422 validation_error`` for
   a malformed address, more than 50 recipients or a field of the wrong type.
6. Idempotency, keyed by ``Idempotency-Key`` for 24 hours: the same key with
   the same payload (compared as parsed JSON) answers the first answer again,
   ``200`` with the same id, and delivers nothing; the same key with another
   payload answers ``409 invalid_idempotent_request``; a key whose first
   request is still being processed answers ``409
   concurrent_idempotent_requests`` (Resend's documented errors). Only a
   delivered email stores its key: an error of steps 1-5 stores nothing, so a
   retry after a 429 or a 500 is processed afresh (the documented behaviour
   of Resend's peers, which Resend does not contradict).
7. Delivery: a new id (a UUID, as Resend's are), recorded in ``emails``;
   then, if armed, the kill hook SIGKILLs a process before the answer leaves
   (``kill_on_send``); then ``200 {"id": ...}``.

Every ``/emails`` answer carries ``ratelimit-limit``, ``ratelimit-remaining``
and ``ratelimit-reset``; a ``rate_limit_exceeded`` 429 also ``retry-after``
(seconds), as Resend documents. Quota errors (``daily_quota_exceeded``,
``monthly_quota_exceeded``) are 429s too, without ``retry-after``: waiting a
second does not help, and a client must tell them apart by ``name``.

Every request is recorded with its raw body bytes (``requests``), so a test
can check that retries were byte-identical; ``emails`` holds only real
deliveries, so "2 requests, 1 email" is directly assertable.

Control routes, for a fake running in another process:

- ``POST /_fake/script``: ``{"faults": [429, {"status": 429, "name":
  "daily_quota_exceeded"}, {"hang_s": 5}, {"hang_s": 2, "hang": "after"}]}``
- ``GET /_fake/emails``: deliveries and requests (raw bodies as text)
- ``POST /_fake/reset``: forget script, records, idempotency keys, hook
- ``POST /_fake/kill_on_send``: ``{"pid": N}`` (``null`` disarms)
- ``POST /_fake/latency``: ``{"seconds": 0.2}``, processing time of each send

Started with::

    python -m continuous_eval.fakes.resend_server --port 8766 --api-key re_test

it prints ``fake-resend listening on http://HOST:PORT`` (useful with ``--port 0``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

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

MAX_RECIPIENTS: Final = 50
"""Resend's cap on addresses in ``to``."""

MAX_IDEMPOTENCY_KEY_CHARS: Final = 256
IDEMPOTENCY_TTL_S: Final = 24 * 3600.0
"""How long Resend remembers an idempotency key."""

KILLED_STATUS: Final = 499
"""Recorded for a request whose handler never answered (the client went away, or a reset)."""

_EMAIL: Final = r"[^\s@<>,;\"]+@[^\s@<>,;\"]+\.[^\s@<>,;\"]+"
_ADDRESS: Final = re.compile(rf"^(?:{_EMAIL}|[^<>\r\n]*<{_EMAIL}>)$")
_ADDRESS_HELP: Final = (
    "The email address needs to follow the `email@example.com` or "
    "`Name <email@example.com>` format."
)

HangWhen = Literal["before", "after"]


def name_for(status: int) -> str:
    """Return the error ``name`` Resend uses for a status when nothing more specific applies."""
    if status in NAME_FOR_STATUS:
        return NAME_FOR_STATUS[status]
    return "internal_server_error" if status >= 500 else "validation_error"


def _fingerprint(body: object) -> str:
    # Resend compares payloads, not bytes: the same fields in another key
    # order are the same request.
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


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
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError(f"a scripted error needs a 4xx or 5xx status, not {self.status}")
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
        if isinstance(data, int) and not isinstance(data, bool):
            return cls(status=data)
        if not isinstance(data, dict):
            raise ValueError("each scripted fault is a status or an object")
        unknown = set(data) - {"status", "name", "message", "headers", "hang_s", "hang"}
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        status = data.get("status")
        if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
            raise ValueError("'status' must be an integer")
        headers = data.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ValueError("'headers' must map strings to strings")
        for text in ("name", "message"):
            if data.get(text) is not None and not isinstance(data[text], str):
                raise ValueError(f"{text!r} must be a string")
        hang_s = data.get("hang_s", 0.0)
        if not isinstance(hang_s, int | float) or isinstance(hang_s, bool):
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


@dataclass(frozen=True, slots=True)
class _Stored:
    fingerprint: str
    email_id: str
    at: float


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


class FakeResendState:
    """Configuration, script, records and idempotency keys, shared by the app and its driver.

    The app runs on the server's event loop thread while tests script and read
    it from theirs, so every mutation of a shared container holds the lock.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        latency_s: float = 0.0,
        rate_limit: int = 2,
        enforce_rate_limit: bool = False,
        rate_limit_retry_after: str = "1",
        idempotency_ttl_s: float = IDEMPOTENCY_TTL_S,
    ) -> None:
        self.api_key = api_key
        """When set, only this key is accepted; otherwise any ``re_`` key is."""
        self.latency_s = latency_s
        """Processing time of each send, during which its idempotency key is in progress."""
        self.rate_limit = rate_limit
        """Requests per second, reported in ``ratelimit-limit`` (Resend's default is 2)."""
        self.enforce_rate_limit = enforce_rate_limit
        """Answer 429 beyond ``rate_limit`` requests in a second (off: tests script 429s)."""
        self.rate_limit_retry_after = rate_limit_retry_after
        """``retry-after`` of a ``rate_limit_exceeded`` 429 (Resend always sends one)."""
        self.idempotency_ttl_s = idempotency_ttl_s
        self.requests: list[RecordedRequest] = []
        self.emails: list[DeliveredEmail] = []
        self._script: deque[ScriptedFault] = deque()
        self._keys: dict[str, _Stored] = {}
        self._in_progress: set[str] = set()
        self._kill_pid: int | None = None
        self._window = (0, 0)  # (second, requests counted in it)
        self._lock = threading.Lock()
        # Bumped by reset: a request in flight across a reset (a hang a test
        # left behind) records and delivers nothing in the next test.
        self.epoch = 0

    # ------------------------------------------------------------- driving

    def script(self, faults: Sequence[ScriptedFault]) -> int:
        """Queue faults for the next requests, in order; return how many are pending."""
        with self._lock:
            self._script.extend(faults)
            return len(self._script)

    def next_fault(self) -> ScriptedFault | None:
        """Take the next scripted fault, if any."""
        with self._lock:
            return self._script.popleft() if self._script else None

    def kill_on_send(self, pid: int | None) -> None:
        """Arm (or, with None, disarm) the one-shot hook that SIGKILLs ``pid`` on the next delivery.

        Raises:
            ValueError: for this process or a pid below 2, which would kill the fake or init.
        """
        if pid is not None and (pid < 2 or pid == os.getpid()):
            raise ValueError(f"refusing to arm the kill hook for pid {pid}")
        with self._lock:
            self._kill_pid = pid

    def take_kill_pid(self) -> int | None:
        """Disarm the kill hook and return the pid it held (one shot: a restart is not killed)."""
        with self._lock:
            pid, self._kill_pid = self._kill_pid, None
            return pid

    def reset(self) -> None:
        """Forget the script, records, idempotency keys and kill hook (not the configuration)."""
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.emails.clear()
            self._keys.clear()
            self._in_progress.clear()
            self._kill_pid = None
            self._window = (0, 0)
            self.epoch += 1

    # ------------------------------------------------------------ requests

    def arrive(self, headers: Mapping[str, str], raw: bytes) -> tuple[RecordedRequest, int]:
        """Record a request on arrival (so a hung one counts); return it and the epoch."""
        record = RecordedRequest(
            headers=headers, raw=raw, idempotency_key=headers.get("idempotency-key")
        )
        with self._lock:
            self.requests.append(record)
            return record, self.epoch

    def complete(self, record: RecordedRequest, answer: Answer | None) -> None:
        """Fill in what a recorded request was answered (``KILLED_STATUS`` when it never was)."""
        with self._lock:
            if answer is None:
                record.status = KILLED_STATUS
                return
            record.status = answer.status
            name = answer.body.get("name")
            record.name = name if isinstance(name, str) else None
            record.email_id = answer.email_id
            record.replayed = answer.replayed

    def rate(self) -> tuple[int, bool]:
        """Count a request in this second's window; return (remaining, over the limit)."""
        second = int(time.monotonic())
        with self._lock:
            start, used = self._window
            used = used + 1 if start == second else 1
            self._window = (second, used)
        return max(0, self.rate_limit - used), used > self.rate_limit

    def claim_key(self, key: str, fingerprint: str) -> Answer | None:
        """Check a key before sending; None means "go on" and the key is now in progress."""
        now = time.monotonic()
        with self._lock:
            stored = self._keys.get(key)
            if stored is not None and now - stored.at > self.idempotency_ttl_s:
                del self._keys[key]
                stored = None
            if stored is not None:
                if stored.fingerprint != fingerprint:
                    return error_answer(409, "invalid_idempotent_request")
                return Answer(200, {"id": stored.email_id}, email_id=stored.email_id, replayed=True)
            if key in self._in_progress:
                return error_answer(409, "concurrent_idempotent_requests")
            self._in_progress.add(key)
            return None

    def release_key(self, key: str) -> None:
        """End a key's in-progress state (after a delivery, or a send that failed midway)."""
        with self._lock:
            self._in_progress.discard(key)

    def deliver(
        self, key: str | None, fingerprint: str, payload: Mapping[str, Any], raw: bytes, epoch: int
    ) -> str:
        """Record one delivered email (and its key), and return its new id."""
        email_id = str(uuid.uuid4())
        with self._lock:
            if epoch != self.epoch:
                return email_id  # reset while in flight: belongs to a finished test
            self.emails.append(
                DeliveredEmail(id=email_id, idempotency_key=key, payload=payload, raw=raw)
            )
            if key is not None:
                self._keys[key] = _Stored(fingerprint, email_id, time.monotonic())
                self._in_progress.discard(key)
        return email_id

    def snapshot(self) -> dict[str, Any]:
        """Return deliveries and requests as JSON-ready data (the body of ``GET /_fake/emails``)."""
        with self._lock:
            return {
                "delivered": len(self.emails),
                "received": len(self.requests),
                "emails": [e.to_json() for e in self.emails],
                "requests": [r.to_json() for r in self.requests],
                "scripted_pending": len(self._script),
                "kill_on_send": self._kill_pid,
            }


# ------------------------------------------------------------------ validation


def _address_problem(field_name: str, value: object) -> str | None:
    if not isinstance(value, str) or not _ADDRESS.match(value.strip()):
        return f"Invalid `{field_name}` field. {_ADDRESS_HELP}"
    return None


def validate_email(body: object) -> Answer | None:
    """Return the real API's complaint about a send request's body, or None when it is valid."""
    if not isinstance(body, dict):
        return error_answer(400, "validation_error", "The request body must be a JSON object.")
    for required in ("from", "to", "subject"):
        if body.get(required) in (None, "", []):
            return error_answer(422, "missing_required_field", f"Missing `{required}` field.")
    if not any(body.get(part) not in (None, "") for part in ("html", "text", "template")):
        return error_answer(422, "missing_required_field", "Missing `html` or `text` field.")
    problem = _address_problem("from", body["from"])
    if problem:
        return error_answer(422, "validation_error", problem)
    to = body["to"]
    recipients = to if isinstance(to, list) else [to]
    if len(recipients) > MAX_RECIPIENTS:
        return error_answer(
            422, "validation_error", f"Too many recipients: `to` holds at most {MAX_RECIPIENTS}."
        )
    for address in recipients:
        problem = _address_problem("to", address)
        if problem:
            return error_answer(422, "validation_error", problem)
    for text_field in ("subject", "html", "text"):
        if text_field in body and not isinstance(body[text_field], str):
            return error_answer(
                422, "validation_error", f"Invalid `{text_field}` field: expected a string."
            )
    return None


# ------------------------------------------------------------------------ app


async def _hang(state: FakeResendState, seconds: float, epoch: int) -> bool:
    """Sleep ``seconds``, or less if the fake is reset; return whether the full hang elapsed."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if state.epoch != epoch:
            return False
        await asyncio.sleep(min(0.05, left))
    return state.epoch == epoch


def _process_alive(pid: int) -> bool:
    # A killed child stays a zombie until its parent reaps it; it is dead all the same.
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


async def _kill(pid: int) -> None:
    """SIGKILL ``pid`` and wait (up to 2 s) until it is gone, so it can never read the answer."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    # Polling: a process's death in another process tree raises no event to await.
    while _process_alive(pid) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)


def _rate_headers(state: FakeResendState, remaining: int) -> dict[str, str]:
    return {
        "ratelimit-limit": str(state.rate_limit),
        "ratelimit-remaining": str(remaining),
        "ratelimit-reset": "1",
    }


def _scripted_error(state: FakeResendState, fault: ScriptedFault, status: int) -> Answer:
    headers = {k.lower(): v for k, v in fault.headers.items()}
    name = fault.name or name_for(status)
    if status == 429 and name == "rate_limit_exceeded":
        # Resend always tells a rate-limited client when to come back.
        headers.setdefault("retry-after", state.rate_limit_retry_after)
        headers.setdefault("ratelimit-remaining", "0")
    return error_answer(status, name, fault.message, headers)


async def answer_email(
    state: FakeResendState,
    headers: Mapping[str, str],
    raw: bytes,
    epoch: int,
    *,
    over_rate_limit: bool = False,
) -> Answer:
    """Answer one ``POST /emails``, in the order the module docstring lists.

    ``over_rate_limit`` says whether this request went past this second's
    budget (counted on arrival); it only matters when limiting is enforced.
    """
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return error_answer(401, "missing_api_key")
    if (state.api_key is not None and token != state.api_key) or (
        state.api_key is None and not token.startswith("re_")
    ):
        return error_answer(403, "invalid_api_key")
    key = headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        return error_answer(400, "invalid_idempotency_key")

    fault = state.next_fault()
    if fault is not None and fault.hang == "before":
        if fault.hang_s and not await _hang(state, fault.hang_s, epoch):
            return error_answer(500, "application_error", "the fake was reset during a hang")
        if fault.status is not None:
            return _scripted_error(state, fault, fault.status)

    if state.enforce_rate_limit and over_rate_limit:
        return error_answer(
            429,
            "rate_limit_exceeded",
            headers={"retry-after": state.rate_limit_retry_after},
        )

    try:
        body = json.loads(raw)
    except ValueError:
        return error_answer(400, "validation_error", "The request body is not valid JSON.")
    problem = validate_email(body)
    if problem is not None:
        return problem

    fingerprint = _fingerprint(body)
    if key is not None:
        settled = state.claim_key(key, fingerprint)
        if settled is not None:
            return settled
    try:
        if state.latency_s > 0:
            await asyncio.sleep(state.latency_s)
        email_id = state.deliver(key, fingerprint, body, raw, epoch)
    finally:
        if key is not None:
            state.release_key(key)

    pid = state.take_kill_pid()
    if pid is not None:
        await _kill(pid)
    if fault is not None and fault.hang == "after":
        await _hang(state, fault.hang_s, epoch)
    return Answer(200, {"id": email_id}, email_id=email_id)


def create_app(state: FakeResendState) -> Starlette:
    """Build the Starlette app serving ``POST /emails`` and the control routes."""

    async def emails(request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        raw = await request.body()
        record, epoch = state.arrive(headers, raw)
        remaining, over = state.rate()
        answer: Answer | None = None
        try:
            answer = await answer_email(state, headers, raw, epoch, over_rate_limit=over)
        finally:
            state.complete(record, answer)
        merged = {**_rate_headers(state, remaining), **answer.headers}
        return JSONResponse(dict(answer.body), status_code=answer.status, headers=merged)

    async def script(request: Request) -> Response:
        try:
            data = json.loads(await request.body())
            items = data.get("faults", data.get("errors")) if isinstance(data, dict) else data
            if not isinstance(items, list):
                raise ValueError('send a list of faults, or {"faults": [...]}')
            faults = [ScriptedFault.from_json(item) for item in items]
        except ValueError as exc:
            return _control_error(f"bad script: {exc}")
        return JSONResponse({"pending": state.script(faults)})

    async def list_emails(request: Request) -> Response:
        return JSONResponse(state.snapshot())

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({"reset": True})

    async def kill_on_send(request: Request) -> Response:
        try:
            data = json.loads(await request.body())
            pid = data.get("pid") if isinstance(data, dict) else None
            if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool)):
                raise ValueError("'pid' must be an integer or null")
            state.kill_on_send(pid)
        except ValueError as exc:
            return _control_error(f"bad kill_on_send: {exc}")
        return JSONResponse({"kill_on_send": pid})

    async def latency(request: Request) -> Response:
        try:
            data = json.loads(await request.body())
            seconds = data.get("seconds") if isinstance(data, dict) else None
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
                raise ValueError("'seconds' must be a number >= 0")
        except ValueError as exc:
            return _control_error(f"bad latency: {exc}")
        state.latency_s = float(seconds)
        return JSONResponse({"latency_s": state.latency_s})

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        answer = error_answer(status, name_for(status) if status in (404, 405) else None)
        return JSONResponse(dict(answer.body), status_code=status)

    return Starlette(
        routes=[
            Route("/emails", emails, methods=["POST"]),
            Route("/_fake/script", script, methods=["POST"]),
            Route("/_fake/emails", list_emails, methods=["GET"]),
            Route("/_fake/reset", reset, methods=["POST"]),
            Route("/_fake/kill_on_send", kill_on_send, methods=["POST"]),
            Route("/_fake/latency", latency, methods=["POST"]),
        ],
        exception_handlers={404: not_found, 405: not_found},
    )


def _control_error(message: str) -> JSONResponse:
    return JSONResponse(
        {"statusCode": 400, "message": message, "name": "validation_error"}, status_code=400
    )


# ---------------------------------------------------------------------- server


def listening_socket(host: str, port: int) -> socket.socket:
    """Bind a TCP socket for uvicorn to serve on (port 0 picks a free one)."""
    # proto must be IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY
    # only on sockets that say they are TCP, and without it uvicorn's separate
    # header and body writes meet Nagle and delayed ACKs (+40 ms per answer).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class BackgroundServer:
    """Serve any ASGI app under uvicorn on a free local port, in a background thread.

    Shared by the fakes (and usable for a test's own small receiver), so each
    does not reinvent start-up, readiness and shutdown.
    """

    def __init__(self, app: ASGIApp, *, name: str, host: str = "127.0.0.1") -> None:
        self._app = app
        self._name = name
        self._host = host
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""
        """``http://127.0.0.1:PORT``, set once started."""

    def start(self, timeout_s: float = 10.0) -> None:
        """Bind a free port and serve; return once the server accepts requests."""
        if self._thread is not None:
            raise RuntimeError(f"{self._name} is already started")
        # Binding the socket ourselves gives a free port with no race between
        # picking it and uvicorn binding it.
        sock = listening_socket(self._host, 0)
        self._socket = sock
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            access_log=False,
            log_config=None,  # in-process, leave the host's logging configuration alone
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=self._name, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self._name} did not start")
            time.sleep(0.005)
        self.base_url = f"http://{self._host}:{port}"

    def stop(self) -> None:
        """Ask uvicorn to exit, wait for the thread and release the port."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None


class FakeResendServer:
    """Run the fake Resend API in a background thread on a free local port.

    Use it as a context manager; ``base_url`` is ready on entry (give it to the
    SDK as ``resend.api_url`` or to settings as ``resend_api_url``) and the port
    is released on exit. Tests script it with ``script`` and assert on
    ``emails`` (deliveries) and ``requests`` (everything received).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        latency_s: float = 0.0,
        rate_limit: int = 2,
        enforce_rate_limit: bool = False,
        rate_limit_retry_after: str = "1",
        host: str = "127.0.0.1",
    ) -> None:
        self.state = FakeResendState(
            api_key=api_key,
            latency_s=latency_s,
            rate_limit=rate_limit,
            enforce_rate_limit=enforce_rate_limit,
            rate_limit_retry_after=rate_limit_retry_after,
        )
        self._server = BackgroundServer(create_app(self.state), name="fake-resend", host=host)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` once started."""
        return self._server.base_url

    @property
    def emails(self) -> list[DeliveredEmail]:
        """Emails delivered since start or the last reset (replays deliver none)."""
        return list(self.state.emails)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every ``POST /emails`` received since start or the last reset, in order of arrival."""
        return list(self.state.requests)

    def emails_for(self, key: str) -> list[DeliveredEmail]:
        """Emails delivered with this idempotency key: at most one, if idempotency works."""
        return [e for e in self.state.emails if e.idempotency_key == key]

    def requests_for(self, key: str) -> list[RecordedRequest]:
        """Requests received with this idempotency key (every retry of one alert)."""
        return [r for r in self.state.requests if r.idempotency_key == key]

    def script(self, *faults: int | ScriptedFault) -> None:
        """Queue faults (statuses, or ``ScriptedFault``) for the next requests."""
        self.state.script([f if isinstance(f, ScriptedFault) else ScriptedFault(f) for f in faults])

    def kill_on_send(self, pid: int | None) -> None:
        """SIGKILL ``pid`` after the next delivery, before answering (None disarms)."""
        self.state.kill_on_send(pid)

    def set_latency(self, seconds: float) -> None:
        """Set the processing time of each send (its key is in progress meanwhile)."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError("latency must be a finite number >= 0")
        self.state.latency_s = seconds

    def reset(self) -> None:
        """Forget script, records, keys and kill hook; keep the configuration."""
        self.state.reset()

    def start(self, timeout_s: float = 10.0) -> None:
        """Start serving; return once requests are accepted."""
        self._server.start(timeout_s)

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.stop()

    def __enter__(self) -> FakeResendServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the fake in the foreground until interrupted (for end-to-end tests)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766, help="0 picks a free port")
    parser.add_argument("--api-key", default=None, help="accept only this key")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rate-limit", type=int, default=2, help="requests per second")
    parser.add_argument("--enforce-rate-limit", action="store_true")
    args = parser.parse_args(argv)

    state = FakeResendState(
        api_key=args.api_key,
        latency_s=args.latency_ms / 1000,
        rate_limit=args.rate_limit,
        enforce_rate_limit=args.enforce_rate_limit,
    )
    sock = listening_socket(args.host, args.port)
    # Printed (and flushed) so a parent process can read the port when it asked for 0.
    print(f"fake-resend listening on http://{args.host}:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(
        create_app(state),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


if __name__ == "__main__":
    main(sys.argv[1:])
