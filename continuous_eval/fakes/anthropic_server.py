"""A fake Anthropic Messages API for tests and benchmarks.

It speaks the real API's wire format (``POST /v1/messages``: the same success
and error bodies, statuses, ``request-id`` and ``retry-after`` headers), so the
real ``anthropic`` SDK runs against it unchanged, retries included. Nothing is
mocked on the client side; only the model is replaced by deterministic rules.

What a request gets, in order:

1. ``401 authentication_error`` without a key (``x-api-key``, or
   ``Authorization: Bearer``, which is how SDK 2.x sends ``api_key``), or with
   a key other than the expected one when one is configured.
2. ``400 invalid_request_error`` without an ``anthropic-version`` header.
3. The next scripted error, if any (a FIFO; see ``FakeAnthropicServer.script``
   and ``POST /_fake/script``).
4. ``400 invalid_request_error`` for a body the real API would refuse.
5. Markers in the text of the last user message, so concurrent tests stay
   deterministic without sharing a script:

   - ``[[fail:STATUS]]``: always that error (a 4xx or 5xx, e.g. ``[[fail:500]]``).
   - ``[[sleep:SECONDS]]``: extra latency for this request only.
   - judge requests (``tools`` holding ``record_score``): ``[[score:N]]`` sets
     the score (passed through as is, so ``[[score:7]]`` tests range checks);
     ``[[judge:garbage]]`` answers a text block only, ``[[judge:string_score]]``
     a score of ``"high"``, ``[[judge:max_tokens]]`` a cut-off tool call,
     ``[[judge:two_tools]]`` two tool calls, ``[[judge:refusal]]`` a refusal.
     Without a marker the score is 1-5 from a sha256 of the message text.
   - requests offering ``write_evaluator``: one call of it with the next
     scripted evaluator (``script_evaluators``, ``POST /_fake/evaluators``
     with ``{"evaluators": [{"kind": "socket"}, {"code": "..."}]}``; kinds
     are ``evaluator_codes.CODES``), or ``evaluator_codes.GOOD`` when none.
   - other requests: ``[[reply:TEXT]]`` answers exactly TEXT; otherwise
     ``"Answer: " + text``. Text longer than ``max_tokens`` allows is cut and
     ``stop_reason`` is ``max_tokens``, as the real API does.

Tokens are estimated as ``ceil(chars / 4)`` (system, messages and tool
definitions in; text or tool input out), so usage and cost are
deterministic. Latency (``set_latency``, ``--latency-ms``) delays successful
answers only, as generation time; errors come back at once, as a real 429 does.

Control routes let a benchmark drive a fake running in another process:

- ``POST /_fake/script``: ``{"errors": [429, {"status": 529, "headers": {...}}]}``
- ``POST /_fake/evaluators``: code for the next ``write_evaluator`` answers
- ``POST /_fake/latency``: ``{"seconds": 0.2}``
- ``POST /_fake/reset``: forget the script, recorded requests and counters
- ``GET /_fake/stats``: request counts by status, judge requests, in flight

Started with::

    python -m continuous_eval.fakes.anthropic_server --port 8765 --latency-ms 200

it prints ``fake-anthropic listening on http://HOST:PORT`` (useful with
``--port 0``) and serves ~4,000 requests/s on one core (h11, no latency).

This module is the fake's entry point (the in-process server, the CLI, and
the names tests import); the rest lives beside it: ``anthropic_validation``
(step 4), ``anthropic_answers`` (the errors, markers and messages),
``anthropic_state`` (script, counters, records) and ``anthropic_app`` (routes),
over the plumbing every fake shares in ``server`` and ``control``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from continuous_eval.fakes.anthropic_answers import (
    ERROR_TYPES,
    JUDGE_TOOL_NAME,
    error_response,
    error_type_for,
    estimate_tokens,
)
from continuous_eval.fakes.anthropic_app import create_app
from continuous_eval.fakes.anthropic_state import (
    FakeState,
    RecordedRequest,
    ScriptedError,
    ScriptedEvaluator,
)
from continuous_eval.fakes.server import LOCALHOST, FakeServer, cli_parser, serve_forever

__all__ = [
    "ERROR_TYPES",
    "JUDGE_TOOL_NAME",
    "FakeAnthropicServer",
    "FakeState",
    "RecordedRequest",
    "ScriptedError",
    "ScriptedEvaluator",
    "create_app",
    "error_response",
    "error_type_for",
    "estimate_tokens",
    "main",
]

SERVER_NAME = "fake-anthropic"


class FakeAnthropicServer(FakeServer[FakeState]):
    """Run the fake under uvicorn on a free local port, in a background thread.

    Use it as a context manager; ``base_url`` is ready on entry and the port
    is released on exit. Tests script it in-process with ``script`` and read
    what it received from ``requests``.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        latency_s: float = 0.0,
        retry_after_ms: int | None = None,
        rate_limit_retry_after: str = "1",
        record_requests: bool = True,
        host: str = LOCALHOST,
    ) -> None:
        state = FakeState(
            api_key=api_key,
            latency_s=latency_s,
            retry_after_ms=retry_after_ms,
            rate_limit_retry_after=rate_limit_retry_after,
            record_requests=record_requests,
        )
        super().__init__(state, create_app(state), name=SERVER_NAME, host=host)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every ``/v1/messages`` request received since start or the last reset."""
        return self.state.requests

    def script(self, *errors: int | ScriptedError) -> None:
        """Queue errors (statuses, or ``ScriptedError`` with headers) for the next requests."""
        self.state.script([e if isinstance(e, ScriptedError) else ScriptedError(e) for e in errors])

    def script_evaluators(self, *codes: str | ScriptedEvaluator) -> None:
        """Queue the code of the next ``write_evaluator`` answers, in order."""
        self.state.script_evaluators(
            [c if isinstance(c, ScriptedEvaluator) else ScriptedEvaluator(c) for c in codes]
        )

    def set_latency(self, seconds: float) -> None:
        """Set the latency added to every successful answer."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        self.state.latency_s = seconds

    def set_judge_offset(self, offset: int) -> None:
        """Make the judge stricter (negative) or more lenient: added to every score, clipped."""
        self.state.judge_offset = offset

    def stats(self) -> dict[str, Any]:
        """Return the request counters, as ``GET /_fake/stats`` does."""
        return self.state.stats()


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the fake in the foreground until interrupted (for benchmarks and manual tests)."""
    parser = cli_parser(
        __doc__.splitlines()[0] if __doc__ else None,
        default_port=8765,
        api_key_help="refuse any other key",
    )
    parser.add_argument("--retry-after-ms", type=int, default=None)
    parser.add_argument("--record", action="store_true", help="keep request bodies (memory grows)")
    args = parser.parse_args(argv)

    state = FakeState(
        api_key=args.api_key,
        latency_s=args.latency_ms / 1000,
        retry_after_ms=args.retry_after_ms,
        record_requests=args.record,
    )
    serve_forever(create_app(state), name=SERVER_NAME, host=args.host, port=args.port)


if __name__ == "__main__":
    main(sys.argv[1:])
