"""``InMemoryJobStore``: the ``JobStore`` port in a dict, for service tests and the contract tests.

It applies the same ``core.jobs`` rules as the SQL store, under one lock,
so the contract tests run unchanged on both and a claim is atomic here too.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime

from pydantic import JsonValue

from continuous_eval.core.jobs import (
    JobEvent,
    JobFence,
    JobRecord,
    JobStatus,
    cancel_requested,
    claimed,
    clamp_progress,
    clip,
    finished,
    heartbeated,
    lease_expired,
    released,
    stepped,
    taken_over,
)
from continuous_eval.errors import JobNotFound


class InMemoryJobStore:
    """Jobs and their events in memory; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[int, JobRecord] = {}
        self._events: dict[int, list[JobEvent]] = {}

    def enqueue(
        self,
        kind: str,
        params: Mapping[str, JsonValue],
        now: datetime,
        *,
        max_attempts: int = 1,
        idempotency_key: str | None = None,
    ) -> JobRecord:
        """Store a queued job, or return the one holding ``idempotency_key``."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        with self._lock:
            if idempotency_key is not None:
                for job in self._jobs.values():
                    if job.idempotency_key == idempotency_key:
                        return job
            job_id = len(self._jobs) + 1
            job = JobRecord(
                id=job_id,
                kind=kind,
                params=dict(params),
                status=JobStatus.QUEUED,
                created_at=now,
                max_attempts=max_attempts,
                idempotency_key=idempotency_key,
            )
            self._jobs[job_id] = job
            self._events[job_id] = []
            return job

    def get(self, job_id: int) -> JobRecord:
        """The job; raises ``JobNotFound``."""
        with self._lock:
            return self._get(job_id)

    def list_jobs(
        self,
        *,
        status: JobStatus | None = None,
        kind: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[JobRecord]:
        """Jobs newest first, filtered."""
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j.id, reverse=True)
        return [
            j
            for j in jobs
            if (status is None or j.status is status)
            and (kind is None or j.kind == kind)
            and (before_id is None or j.id < before_id)
        ][:limit]

    def claim_next(self, owner: str, now: datetime, lease_s: float) -> JobRecord | None:
        """Claim the oldest queued job."""
        with self._lock:
            queued = [j for j in self._jobs.values() if j.status is JobStatus.QUEUED]
            if not queued:
                return None
            job = claimed(min(queued, key=lambda j: j.id), owner, now, lease_s)
            self._jobs[job.id] = job
            return job

    def heartbeat(self, job_id: int, fence: JobFence, now: datetime, lease_s: float) -> JobRecord:
        """Renew the lease (fenced)."""
        with self._lock:
            job = heartbeated(self._get(job_id), fence, now, lease_s)
            self._jobs[job_id] = job
            return job

    def add_event(
        self, job_id: int, fence: JobFence, step: str, progress: float, message: str, now: datetime
    ) -> JobEvent:
        """Store the next step (fenced)."""
        with self._lock:
            job = stepped(self._get(job_id), fence, step, progress, message)
            self._jobs[job_id] = job
            events = self._events[job_id]
            event = JobEvent(
                job_id=job_id,
                seq=len(events) + 1,
                step=clip(step, 200),
                progress=clamp_progress(progress),
                message=clip(message),
                at=now,
            )
            events.append(event)
            return event

    def events(self, job_id: int, after_seq: int = 0, limit: int = 500) -> list[JobEvent]:
        """The steps after ``after_seq``."""
        with self._lock:
            self._get(job_id)
            return [e for e in self._events[job_id] if e.seq > after_seq][:limit]

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
        """End the job (fenced)."""
        with self._lock:
            job = finished(self._get(job_id), fence, status, now, result=result, error=error)
            self._jobs[job_id] = job
            return job

    def release(self, job_id: int, fence: JobFence) -> JobRecord:
        """Queue the job again, the attempt not counted (fenced)."""
        with self._lock:
            job = released(self._get(job_id), fence)
            self._jobs[job_id] = job
            return job

    def request_cancel(self, job_id: int, now: datetime) -> JobRecord:
        """Cancel now (queued) or flag (running)."""
        with self._lock:
            job = cancel_requested(self._get(job_id), now)
            self._jobs[job_id] = job
            return job

    def take_over_expired(self, now: datetime) -> list[JobRecord]:
        """Re-queue, fail or cancel the running jobs whose lease expired."""
        with self._lock:
            out = []
            for job in list(self._jobs.values()):
                if lease_expired(job, now):
                    after = taken_over(job, now)
                    self._jobs[job.id] = after
                    out.append(after)
            return out

    def _get(self, job_id: int) -> JobRecord:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job
