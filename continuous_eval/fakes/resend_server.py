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

This module is the fake's entry point (the in-process server, the CLI, and
the names tests import); the rest lives beside it: ``resend_errors`` (error
names and shape), ``resend_records`` (faults and records),
``resend_validation`` (step 5), ``resend_state`` (keys, window, records),
``resend_answers`` (the steps in order) and ``resend_app`` (routes), over the
plumbing every fake shares in ``server`` and ``control``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

from continuous_eval.fakes.resend_answers import MAX_IDEMPOTENCY_KEY_CHARS, answer_email
from continuous_eval.fakes.resend_app import create_app
from continuous_eval.fakes.resend_errors import (
    ERROR_MESSAGES,
    NAME_FOR_STATUS,
    Answer,
    error_answer,
    name_for,
)
from continuous_eval.fakes.resend_records import (
    KILLED_STATUS,
    DeliveredEmail,
    HangWhen,
    RecordedRequest,
    ScriptedFault,
)
from continuous_eval.fakes.resend_state import IDEMPOTENCY_TTL_S, FakeResendState
from continuous_eval.fakes.resend_validation import MAX_RECIPIENTS, validate_email
from continuous_eval.fakes.server import (
    LOCALHOST,
    BackgroundServer,
    FakeServer,
    cli_parser,
    listening_socket,
    serve_forever,
)

__all__ = [
    "ERROR_MESSAGES",
    "IDEMPOTENCY_TTL_S",
    "KILLED_STATUS",
    "MAX_IDEMPOTENCY_KEY_CHARS",
    "MAX_RECIPIENTS",
    "NAME_FOR_STATUS",
    "Answer",
    "BackgroundServer",
    "DeliveredEmail",
    "FakeResendServer",
    "FakeResendState",
    "HangWhen",
    "RecordedRequest",
    "ScriptedFault",
    "answer_email",
    "create_app",
    "error_answer",
    "listening_socket",
    "main",
    "name_for",
    "validate_email",
]

SERVER_NAME = "fake-resend"


class FakeResendServer(FakeServer[FakeResendState]):
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
        host: str = LOCALHOST,
    ) -> None:
        state = FakeResendState(
            api_key=api_key,
            latency_s=latency_s,
            rate_limit=rate_limit,
            enforce_rate_limit=enforce_rate_limit,
            rate_limit_retry_after=rate_limit_retry_after,
        )
        super().__init__(state, create_app(state), name=SERVER_NAME, host=host)

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


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the fake in the foreground until interrupted (for end-to-end tests)."""
    parser = cli_parser(
        __doc__.splitlines()[0] if __doc__ else None,
        default_port=8766,
        api_key_help="accept only this key",
    )
    parser.add_argument("--rate-limit", type=int, default=2, help="requests per second")
    parser.add_argument("--enforce-rate-limit", action="store_true")
    args = parser.parse_args(argv)

    state = FakeResendState(
        api_key=args.api_key,
        latency_s=args.latency_ms / 1000,
        rate_limit=args.rate_limit,
        enforce_rate_limit=args.enforce_rate_limit,
    )
    serve_forever(create_app(state), name=SERVER_NAME, host=args.host, port=args.port)


if __name__ == "__main__":
    main(sys.argv[1:])
