"""Long jobs (evaluator generation) that run in ``serve``, stored in the database.

A job handler is an async function of the job's parameters and a progress
reporter; the job runner (``service.jobs``) claims queued jobs under a lease,
calls the handler, and stores the result or the error. Handlers report steps
(``fetching examples``, ``calling the model``, ``validating``, ``testing``,
``saving``) that reach ``GET /api/jobs/{id}/events`` over SSE.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Protocol

from pydantic import JsonValue

from continuous_eval.core.jobs import JobEvent, JobFence, JobRecord, JobStatus


class JobCancelled(Exception):
    """Raised by ``JobProgress.step`` once cancellation of the job has been asked for."""


class JobProgress(Protocol):
    """What a handler tells the job's watchers."""

    @property
    def job_id(self) -> int | None:
        """The stored job being run; none when a handler runs outside the job runner
        (``evaluators generate`` in the terminal)."""
        ...

    async def step(self, name: str, progress: float, message: str = "") -> None:
        """Record a step (``progress`` from 0 to 1); raises ``JobCancelled`` when the job
        has been cancelled, so a handler stops at its next step."""
        ...


JobHandler = Callable[[Mapping[str, JsonValue], JobProgress], Awaitable[JsonValue]]
"""``handler(params, progress) -> result``: the result (JSON) is stored with the job;
an exception fails the job with its message as the reason."""


class JobStore(Protocol):
    """Where jobs, their leases and their steps are stored (``adapters.db.jobs``, ``testing.jobs``).

    Every time is a parameter: the runner passes its clock's now (in
    ``serve``, the database's, which replicas share). Writes by a runner are
    fenced (``JobFence``) and raise ``JobLeaseLost`` once another attempt
    owns the job. ``JobNotFound`` for an id that does not exist.
    """

    def enqueue(
        self,
        kind: str,
        params: Mapping[str, JsonValue],
        now: datetime,
        *,
        max_attempts: int = 1,
        idempotency_key: str | None = None,
    ) -> JobRecord:
        """Store a queued job; with an ``idempotency_key`` already used, return that job instead."""
        ...

    def get(self, job_id: int) -> JobRecord:
        """The job; raises ``JobNotFound``."""
        ...

    def list_jobs(
        self,
        *,
        status: JobStatus | None = None,
        kind: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[JobRecord]:
        """Jobs newest first (by id), of one status and kind if given, ids below ``before_id``."""
        ...

    def claim_next(self, owner: str, now: datetime, lease_s: float) -> JobRecord | None:
        """Atomically claim the oldest queued job (two claimers never get the same one)."""
        ...

    def heartbeat(self, job_id: int, fence: JobFence, now: datetime, lease_s: float) -> JobRecord:
        """Renew the lease; the record tells the runner whether a cancel was asked for."""
        ...

    def add_event(
        self, job_id: int, fence: JobFence, step: str, progress: float, message: str, now: datetime
    ) -> JobEvent:
        """Store the next step of the job (numbered from 1) and show it on the job."""
        ...

    def events(self, job_id: int, after_seq: int = 0, limit: int = 500) -> list[JobEvent]:
        """The job's steps numbered above ``after_seq``, in order; raises ``JobNotFound``."""
        ...

    def finish(
        self,
        job_id: int,
        fence: JobFence,
        status: JobStatus,
        now: datetime,
        *,
        result: JsonValue = None,
        error: str | None = None,
    ) -> JobRecord:
        """End the job succeeded (with ``result``), failed (with ``error``) or cancelled."""
        ...

    def release(self, job_id: int, fence: JobFence) -> JobRecord:
        """Hand a running job back (a graceful stop): queued again, the attempt not counted."""
        ...

    def request_cancel(self, job_id: int, now: datetime) -> JobRecord:
        """Cancel a queued job now, or flag a running one; raises ``JobFinished`` when over."""
        ...

    def take_over_expired(self, now: datetime) -> list[JobRecord]:
        """Re-queue (or fail, or cancel) every running job whose lease expired; return them."""
        ...
