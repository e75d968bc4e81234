"""The API's shapes of jobs: a job, a page of jobs, and the events of a job's stream."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, JsonValue

from continuous_eval.core.jobs import JobEvent, JobRecord, JobStatus


class JobOut(BaseModel):
    """A job: what it does, where it is, and its result or the reason it failed."""

    id: int
    kind: str
    params: dict[str, JsonValue]
    status: JobStatus
    step: str | None
    """The newest step its handler reported (``fetching examples``, ``calling the model``...)."""
    progress: float
    """0 to 1."""
    message: str | None
    result: JsonValue
    """The handler's result once ``succeeded``; null otherwise."""
    error: str | None
    """Why it failed (or ``cancelled``)."""
    attempt: int
    max_attempts: int
    lease_owner: str | None
    """The ``serve`` running it."""
    lease_expires_at: datetime | None
    cancel_requested_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def job_out(job: JobRecord) -> JobOut:
    """The API's view of a stored job."""
    return JobOut(
        id=job.id,
        kind=job.kind,
        params=dict(job.params),
        status=job.status,
        step=job.step,
        progress=job.progress,
        message=job.message,
        result=job.result,
        error=job.error,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        lease_owner=job.lease_owner,
        lease_expires_at=job.lease_expires_at,
        cancel_requested_at=job.cancel_requested_at,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


class JobPage(BaseModel):
    """A page of jobs, newest first."""

    items: list[JobOut]
    next_cursor: str | None
    """Pass as ``cursor`` for the next page; null on the last page."""


class JobStepEvent(BaseModel):
    """``step``: one step the handler reported; its SSE id is ``seq``."""

    seq: int
    step: str
    progress: float
    message: str
    at: datetime


def step_event(event: JobEvent) -> JobStepEvent:
    """The stream's view of a stored step."""
    return JobStepEvent(
        seq=event.seq, step=event.step, progress=event.progress, message=event.message, at=event.at
    )


class JobStatusEvent(BaseModel):
    """``status``: the job's status or attempt changed (a claim, a takeover)."""

    status: JobStatus
    attempt: int


class JobEndEvent(BaseModel):
    """``end``: the job is over; the stream closes after it."""

    status: JobStatus
    error: str | None
    job: JobOut
