"""What the fake Anthropic API knows: its configuration, script, counters and records.

Belongs here: the state the app (on the server's thread) and its driver (a
test, or ``/_fake/...`` routes) share, and the records that state keeps. How a
request is answered is ``anthropic_answers``'s business.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from continuous_eval.fakes.control import Script, check_error_status, headers_from_json, is_integer
from continuous_eval.fakes.evaluator_codes import CODES


@dataclass(frozen=True, slots=True)
class ScriptedError:
    """One error the fake returns to the next request, before looking at its body."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra response headers, e.g. ``retry-after`` or ``retry-after-ms``."""
    message: str | None = None
    """``error.message``; a generic one for the status when omitted."""

    def __post_init__(self) -> None:
        check_error_status(self.status)

    @classmethod
    def from_json(cls, data: object) -> ScriptedError:
        """Build from control-route JSON: a status, or ``{"status", "headers", "message"}``."""
        if is_integer(data):
            return cls(status=data)
        if not isinstance(data, dict) or not isinstance(data.get("status"), int):
            raise ValueError(
                "each scripted error is a status or an object with an integer 'status'"
            )
        headers = headers_from_json(data.get("headers"))
        message = data.get("message")
        if message is not None and not isinstance(message, str):
            raise ValueError("'message' must be a string")
        return cls(status=data["status"], headers=headers, message=message)


@dataclass(frozen=True, slots=True)
class ScriptedEvaluator:
    """The code the fake "writes" for the next ``write_evaluator`` request."""

    code: str
    explanation: str = "Scripted by the test."

    @classmethod
    def from_json(cls, data: object) -> ScriptedEvaluator:
        """Build from control-route JSON: ``{"kind": NAME}`` (``evaluator_codes.CODES``)
        or ``{"code": ..., "explanation": ...}``."""
        if not isinstance(data, dict):
            raise ValueError("each scripted evaluator is an object with 'kind' or 'code'")
        kind = data.get("kind")
        if kind is not None:
            if kind not in CODES:
                raise ValueError(f"unknown kind {kind!r}; one of {', '.join(sorted(CODES))}")
            return cls(code=CODES[kind], explanation=f"Scripted kind {kind}.")
        code = data.get("code")
        explanation = data.get("explanation", "Scripted by the test.")
        if not isinstance(code, str) or not isinstance(explanation, str):
            raise ValueError("'code' and 'explanation' must be strings")
        return cls(code=code, explanation=explanation)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake received on ``/v1/messages``, for tests to assert on."""

    headers: Mapping[str, str]
    """Request headers, names lower-cased."""
    body: Any
    """The parsed JSON body, or None when it was not JSON."""
    status: int
    """The status the fake answered."""


class FakeState:
    """Configuration, script and counters shared by the app and whoever drives it.

    The app runs on the server's event loop thread while tests script it from
    their own thread, so mutations of shared containers go through a lock.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        latency_s: float = 0.0,
        retry_after_ms: int | None = None,
        rate_limit_retry_after: str = "1",
        record_requests: bool = True,
    ) -> None:
        self.api_key = api_key
        """When set, any other key is refused with 401."""
        self.latency_s = latency_s
        """Added to every successful answer, as generation time."""
        self.retry_after_ms = retry_after_ms
        """When set, every retryable error carries ``retry-after-ms`` (tests use a tiny value
        so SDK retries are instant; the real API does not send this header)."""
        self.rate_limit_retry_after = rate_limit_retry_after
        """``retry-after`` (seconds) of a 429 scripted without one; the real API always sends it."""
        self.record_requests = record_requests
        """Keep every request in ``requests``; off in the CLI so a long benchmark stays flat."""
        self.judge_offset = 0
        """Added to every judge score (clipped to 1-5): a stricter (negative) or more
        lenient judge, as a model update can make one, for judge-drift tests."""
        self.requests: list[RecordedRequest] = []
        self._script: Script[ScriptedError] = Script()
        self._evaluators: Script[ScriptedEvaluator] = Script()
        self._lock = threading.Lock()
        self._total = 0
        self._by_status: dict[int, int] = {}
        self._judge = 0
        self._in_flight = 0
        self._max_in_flight = 0
        # Bumped by reset: a request still in flight across a reset (a test
        # that timed out on a slow answer) is not counted in the next test.
        self._epoch = 0

    def script(self, errors: Sequence[ScriptedError]) -> int:
        """Queue errors for the next requests, in order; return how many are pending."""
        return self._script.extend(errors)

    def next_scripted(self) -> ScriptedError | None:
        """Take the next scripted error, if any."""
        return self._script.take()

    def script_evaluators(self, evaluators: Sequence[ScriptedEvaluator]) -> int:
        """Queue the code of the next ``write_evaluator`` answers; return how many are pending."""
        return self._evaluators.extend(evaluators)

    def next_evaluator(self) -> ScriptedEvaluator | None:
        """Take the next scripted evaluator, if any."""
        return self._evaluators.take()

    def reset(self) -> None:
        """Forget the script, the recorded requests and the counters (not the configuration)."""
        with self._lock:
            self._script.clear()
            self._evaluators.clear()
            self.requests.clear()
            self._total = 0
            self._by_status.clear()
            self._judge = 0
            self._max_in_flight = self._in_flight
            self._epoch += 1

    def begin(self) -> int:
        """Count a request as arrived and in flight; return the token ``end`` needs."""
        with self._lock:
            self._total += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            return self._epoch

    def end(
        self, token: int, status: int, headers: Mapping[str, str], body: Any, *, judge: bool
    ) -> None:
        """Count a request as answered, and record it when recording is on."""
        with self._lock:
            self._in_flight -= 1
            if token != self._epoch:
                return
            self._by_status[status] = self._by_status.get(status, 0) + 1
            self._judge += judge
            if self.record_requests:
                self.requests.append(RecordedRequest(headers=headers, body=body, status=status))

    def stats(self) -> dict[str, Any]:
        """Return the counters as JSON-ready data (the body of ``GET /_fake/stats``)."""
        with self._lock:
            return {
                "requests": self._total,
                "by_status": {str(k): v for k, v in sorted(self._by_status.items())},
                "judge_requests": self._judge,
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
                "scripted_pending": len(self._script),
                "latency_s": self.latency_s,
            }
