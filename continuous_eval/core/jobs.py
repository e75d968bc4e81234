"""Long jobs stored in the database: their records and the rules of their life cycle.

Pure: no clock is read here, ``now`` is always a parameter. Every store (in
memory, SQL) applies these rules, so they agree on what a claim, a takeover
or a cancel does:

- a job is ``queued`` until a runner claims it under a lease: it is then
  ``running``, its ``attempt`` counts the claim, and the lease names the
  owner and when it expires unless heartbeated;
- a runner finishes it ``succeeded`` (with a JSON result), ``failed`` (with a
  reason) or ``cancelled``; a finished job never changes again;
- a job whose lease expired lost its runner (``serve`` was killed or hung):
  it is taken over, i.e. re-queued while ``attempt < max_attempts``, else
  failed with a reason saying so, as runs are; a job whose cancel was asked
  for is cancelled instead of being run again;
- a runner that stops gracefully (SIGTERM) releases its jobs: queued again
  at once, the attempt not counted, so a deploy costs no attempt;
- a cancel of a queued job is immediate; of a running one it is a request
  (``cancel_requested_at``) the handler meets at its next step.

Writes by a runner are fenced by ``JobFence`` (owner and attempt), so a
runner that lost its lease to a takeover can no longer write to the job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import JsonValue

from continuous_eval.errors import JobFinished, JobLeaseLost


class JobStatus(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Finished: the job takes no more writes."""
        return self in TERMINAL_JOB_STATUSES


TERMINAL_JOB_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
"""Statuses a job never leaves."""

JOB_STATUSES = [s.value for s in JobStatus]
"""Every status, for the table's check constraint."""

TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset(
        {JobStatus.QUEUED, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
    ),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}
"""Which status may follow which (running -> queued is a takeover)."""

KIND_MAX = 100
"""Longest job kind, the column's width."""

MESSAGE_MAX = 2000
"""Longest step message or error kept; longer ones are cut (a traceback is not a reason)."""


@dataclass(frozen=True, slots=True)
class JobFence:
    """Who may write to a running job: the owner of the lease, at the attempt it claimed."""

    owner: str
    attempt: int


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One stored job."""

    id: int
    kind: str
    params: Mapping[str, JsonValue]
    status: JobStatus
    created_at: datetime
    max_attempts: int = 1
    attempt: int = 0
    step: str | None = None
    progress: float = 0.0
    message: str | None = None
    result: JsonValue = None
    error: str | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    heartbeat_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    idempotency_key: str | None = None

    @property
    def fence(self) -> JobFence:
        """The fence of the current attempt (meaningful while running)."""
        return JobFence(self.lease_owner or "", self.attempt)


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One step a handler reported, numbered from 1 within its job."""

    job_id: int
    seq: int
    step: str
    progress: float
    message: str
    at: datetime


def can_transition(old: JobStatus, new: JobStatus) -> bool:
    """Whether a job may go from ``old`` to ``new``."""
    return new in TRANSITIONS[old]


def clip(text: str, limit: int = MESSAGE_MAX) -> str:
    """``text`` cut to ``limit`` characters, marked when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clamp_progress(progress: float) -> float:
    """Progress kept within 0..1 (a handler's rounding must not break a progress bar)."""
    return min(1.0, max(0.0, float(progress)))


def lease_expired(job: JobRecord, now: datetime) -> bool:
    """A running job whose runner stopped renewing its lease."""
    return (
        job.status is JobStatus.RUNNING
        and job.lease_expires_at is not None
        and job.lease_expires_at <= now
    )


def claimed(job: JobRecord, owner: str, now: datetime, lease_s: float) -> JobRecord:
    """``job`` (queued) claimed by ``owner``: running, one more attempt, leased for ``lease_s``."""
    return dataclasses.replace(
        job,
        status=JobStatus.RUNNING,
        attempt=job.attempt + 1,
        lease_owner=owner,
        lease_expires_at=now + timedelta(seconds=lease_s),
        heartbeat_at=now,
        started_at=now,
        step=None,
        progress=0.0,
        message=None,
    )


def takeover_reason(attempt: int, max_attempts: int) -> str:
    """Why a job whose attempts ran out failed: its runner stopped while it ran."""
    return f"serve stopped while the job ran (attempt {attempt} of {max_attempts})"


def taken_over(job: JobRecord, now: datetime) -> JobRecord:
    """What becomes of a running job whose lease expired.

    Cancel asked for: cancelled. Attempts left: queued again, lease cleared,
    for any runner to claim. None left: failed with ``takeover_reason``.
    """
    released = dataclasses.replace(job, lease_owner=None, lease_expires_at=None, heartbeat_at=None)
    if job.cancel_requested_at is not None:
        return dataclasses.replace(released, status=JobStatus.CANCELLED, finished_at=now)
    if job.attempt < job.max_attempts:
        return dataclasses.replace(released, status=JobStatus.QUEUED)
    return dataclasses.replace(
        released,
        status=JobStatus.FAILED,
        error=takeover_reason(job.attempt, job.max_attempts),
        finished_at=now,
    )


def cancel_requested(job: JobRecord, now: datetime) -> JobRecord:
    """``job`` after a cancel request: queued -> cancelled now; running -> flagged.

    A second request on a running job keeps the first request's time.

    Raises:
        JobFinished: The job is over.
    """
    if job.status.terminal:
        raise JobFinished(job.id, job.status.value)
    if job.status is JobStatus.QUEUED:
        return dataclasses.replace(
            job, status=JobStatus.CANCELLED, cancel_requested_at=now, finished_at=now
        )
    return dataclasses.replace(job, cancel_requested_at=job.cancel_requested_at or now)


def check_fence(job: JobRecord, fence: JobFence) -> None:
    """Refuse a runner's write unless the job is running under ``fence``.

    Raises:
        JobLeaseLost: Another attempt owns the job, or it is no longer running.
    """
    if (
        job.status is not JobStatus.RUNNING
        or job.lease_owner != fence.owner
        or job.attempt != fence.attempt
    ):
        raise JobLeaseLost(
            f"job {job.id}: {fence.owner} (attempt {fence.attempt}) no longer owns it "
            f"(status {job.status.value}, attempt {job.attempt}, owner {job.lease_owner})"
        )


def released(job: JobRecord, fence: JobFence) -> JobRecord:
    """``job`` handed back by a runner that stops gracefully (fenced): queued, attempt undone.

    The attempt did not fail, its ``serve`` was stopped on purpose (a
    deploy), so it is not counted: the next claim runs the job at the same
    attempt number. A job whose cancel was asked for is not released but
    left to its runner to finish ``cancelled``.
    """
    check_fence(job, fence)
    return dataclasses.replace(
        job,
        status=JobStatus.QUEUED,
        attempt=job.attempt - 1,
        lease_owner=None,
        lease_expires_at=None,
        heartbeat_at=None,
    )


def heartbeated(job: JobRecord, fence: JobFence, now: datetime, lease_s: float) -> JobRecord:
    """``job`` with its lease renewed until now + lease (fenced)."""
    check_fence(job, fence)
    return dataclasses.replace(
        job, heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_s)
    )


def stepped(job: JobRecord, fence: JobFence, step: str, progress: float, message: str) -> JobRecord:
    """``job`` showing its newest step (fenced)."""
    check_fence(job, fence)
    return dataclasses.replace(
        job, step=clip(step, 200), progress=clamp_progress(progress), message=clip(message)
    )


def finished(
    job: JobRecord,
    fence: JobFence,
    status: JobStatus,
    now: datetime,
    *,
    result: JsonValue = None,
    error: str | None = None,
) -> JobRecord:
    """``job`` finished by its runner (fenced): succeeded with ``result``, failed or cancelled.

    Raises:
        ValueError: ``status`` is not a final status.
        JobLeaseLost: The runner no longer owns the job.
    """
    if not status.terminal:
        raise ValueError(f"a job finishes succeeded, failed or cancelled, not {status.value}")
    check_fence(job, fence)
    return dataclasses.replace(
        job,
        status=status,
        result=result if status is JobStatus.SUCCEEDED else None,
        error=None if error is None else clip(error),
        progress=1.0 if status is JobStatus.SUCCEEDED else job.progress,
        lease_owner=None,
        lease_expires_at=None,
        finished_at=now,
    )
