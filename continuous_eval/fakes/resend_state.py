"""What the fake Resend API knows: configuration, script, records, idempotency keys.

Belongs here: the state the app (on the server's thread) and its driver (a
test, or ``/_fake/...`` routes) share, with the rules that need its lock:
the per-second rate window, claiming and storing idempotency keys, and
delivering an email. The order of the checks a request goes through is
``resend_answers``'s.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from continuous_eval.fakes.control import Script
from continuous_eval.fakes.resend_errors import Answer, error_answer
from continuous_eval.fakes.resend_records import (
    KILLED_STATUS,
    DeliveredEmail,
    RecordedRequest,
    ScriptedFault,
)

IDEMPOTENCY_TTL_S: Final = 24 * 3600.0
"""How long Resend remembers an idempotency key."""


@dataclass(frozen=True, slots=True)
class _Stored:
    fingerprint: str
    email_id: str
    at: float


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
        self._script: Script[ScriptedFault] = Script()
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
        return self._script.extend(faults)

    def next_fault(self) -> ScriptedFault | None:
        """Take the next scripted fault, if any."""
        return self._script.take()

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
