"""The job resource: list, read, cancel, and follow a job's steps live over SSE.

What belongs here: the ``/api/jobs`` routes, ``JobsContext`` they are built
over, and ``enqueue_job``, the in-process helper a route that starts a job
(``POST /api/eval-sets/{id}/generate``) calls before answering 202 with
``JobOut``. Routes that only read are plain ``def``: FastAPI runs them in
its thread pool, where the blocking store calls belong.

The stream polls the database, as a run's does (``events``): the job may run
in another replica. Step numbers (``seq``) only grow and are the SSE ids,
so a client reconnecting with ``Last-Event-ID`` gets exactly the steps it
missed. Events, in order: ``snapshot`` (the job now), ``step`` for each
stored step after the client's last id (all of them from the start), a
``status`` when the status or attempt changes, then ``end`` once the job is
over; then the stream closes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Annotated, TypeVar

import anyio
from fastapi import APIRouter, Header, Path, Query, Response, Security
from pydantic import BaseModel, JsonValue
from sse_starlette import ServerSentEvent

from continuous_eval.adapters.http.auth import bearer_scheme
from continuous_eval.adapters.http.errors import ApiError, error_responses
from continuous_eval.adapters.http.events import RETRY_MS, EventStream, EventStreams
from continuous_eval.adapters.http.job_schemas import (
    JobEndEvent,
    JobOut,
    JobPage,
    JobStatusEvent,
    job_out,
    step_event,
)
from continuous_eval.adapters.http.pagination import decode_job_cursor, encode_job_cursor
from continuous_eval.core.jobs import KIND_MAX, JobRecord, JobStatus
from continuous_eval.errors import JobFinished, JobNotFound
from continuous_eval.ports import Clock
from continuous_eval.ports.jobs import JobStore

_T = TypeVar("_T")

JobId = Annotated[int, Path(ge=1, le=2**63 - 1)]
"""A job id in a path: a positive 64-bit integer (422 otherwise, before the database sees it)."""


@dataclass(frozen=True)
class JobsContext:
    """What the job routes use, injected by ``create_app``."""

    store: JobStore
    streams: EventStreams
    clock: Clock
    """The time a cancel request is stamped with (``serve``: the database's)."""


def enqueue_job(
    store: JobStore,
    kind: str,
    params: Mapping[str, JsonValue],
    clock: Clock,
    *,
    max_attempts: int = 2,
    idempotency_key: str | None = None,
) -> JobRecord:
    """Queue a job for the runners of ``serve`` (blocking: call it in a worker thread).

    Two attempts by default: a ``serve`` killed mid-job is one lost attempt, and
    the job runs again in the next; a second loss fails it with the reason.
    Answer 202 with ``job_out(job)`` and ``Location: /api/jobs/{id}``.
    """
    return store.enqueue(
        kind, params, clock.now(), max_attempts=max_attempts, idempotency_key=idempotency_key
    )


def _not_found(job_id: int) -> ApiError:
    return ApiError(404, "job_not_found", f"no job {job_id}", {"job_id": job_id})


def jobs_router(ctx: JobsContext) -> APIRouter:
    """Build the ``/api/jobs`` routes over ``ctx``."""
    router = APIRouter(prefix="/api", dependencies=[Security(bearer_scheme)])
    job_errors = error_responses(401, 404, 422, 503)

    @router.get(
        "/jobs", response_model=JobPage, tags=["jobs"], responses=error_responses(401, 422, 503)
    )
    def list_jobs(
        status: JobStatus | None = None,
        kind: Annotated[str | None, Query(max_length=KIND_MAX, pattern=r"^[^\x00]*$")] = None,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> JobPage:
        """List jobs newest first, a page at a time (pass ``next_cursor`` back as ``cursor``)."""
        before = decode_job_cursor(cursor) if cursor is not None else None
        rows = ctx.store.list_jobs(status=status, kind=kind, before_id=before, limit=limit + 1)
        page = rows[:limit]
        next_cursor = encode_job_cursor(page[-1].id) if len(rows) > limit else None
        return JobPage(items=[job_out(j) for j in page], next_cursor=next_cursor)

    @router.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"], responses=job_errors)
    def get_job(job_id: JobId) -> JobOut:
        """Read a job: status, step, progress, attempt, and its result or error."""
        try:
            return job_out(ctx.store.get(job_id))
        except JobNotFound:
            raise _not_found(job_id) from None

    @router.post(
        "/jobs/{job_id}/cancel",
        status_code=202,
        response_model=JobOut,
        tags=["jobs"],
        responses=error_responses(401, 404, 409, 422, 503),
    )
    def cancel_job(job_id: JobId, response: Response) -> JobOut:
        """Cancel a job: a queued one at once, a running one at its next step (202 either way).

        409 ``job_finished`` when the job is already over.
        """
        try:
            job = ctx.store.request_cancel(job_id, ctx.clock.now())
        except JobNotFound:
            raise _not_found(job_id) from None
        except JobFinished as exc:
            raise ApiError(
                409,
                "job_finished",
                f"job {job_id} is already {exc.status}",
                {"job_id": job_id, "status": exc.status},
            ) from None
        response.headers["Location"] = f"/api/jobs/{job_id}"
        return job_out(job)

    @router.get(
        "/jobs/{job_id}/events",
        response_class=EventStream,
        tags=["jobs"],
        responses={
            200: {
                "description": (
                    "Server-Sent Events: `snapshot` (the job now), `step` for each step the "
                    "handler reported (id = its number), `status` when the status or attempt "
                    "changes, and `end` once the job is over (the stream then closes). "
                    "Reconnect with `Last-Event-ID` to get only the steps after it."
                ),
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            **error_responses(401, 404, 422, 503, media_type=EventStream.media_type),
        },
    )
    async def job_events(
        job_id: JobId,
        last_event_id: Annotated[
            str | None, Header(alias="Last-Event-ID", pattern=r"^[0-9]{1,9}$")
        ] = None,
    ) -> EventStream:
        """Follow a job live (see the 200 response for the events)."""
        try:
            job = await _in_thread(partial(ctx.store.get, job_id))
        except JobNotFound:
            raise _not_found(job_id) from None
        after = int(last_event_id) if last_event_id is not None else 0
        s = ctx.streams.settings
        return EventStream(
            _follow(ctx, job, after), ping=s.keepalive_s, send_timeout=s.send_timeout_s
        )

    return router


async def _follow(ctx: JobsContext, job: JobRecord, after: int) -> AsyncIterator[ServerSentEvent]:
    """The job's events from step ``after`` on, until it ends (or the server stops)."""
    s = ctx.streams.settings
    yield _event("snapshot", job_out(job), retry=RETRY_MS)
    status = JobStatusEvent(status=job.status, attempt=job.attempt)
    while True:
        last_look = ctx.streams.closing
        # The job row before its steps: every step is stored before the job
        # ends, so once the row read is final the steps read after it are all
        # of them, and none is lost between the two reads.
        job = await _in_thread(partial(ctx.store.get, job.id))
        steps = await _in_thread(partial(ctx.store.events, job.id, after, s.batch))
        for step in steps:
            after = step.seq
            yield _event("step", step_event(step), id=step.seq)
        current = JobStatusEvent(status=job.status, attempt=job.attempt)
        if current != status:
            status = current
            yield _event("status", current)
        if len(steps) >= s.batch:
            continue
        if job.status.terminal:
            yield _event("end", JobEndEvent(status=job.status, error=job.error, job=job_out(job)))
            return
        if last_look:
            return
        await anyio.sleep(s.poll_s)


async def _in_thread(fn: Callable[[], _T]) -> _T:
    return await anyio.to_thread.run_sync(fn)


def _event(
    name: str, data: BaseModel, *, id: int | None = None, retry: int | None = None
) -> ServerSentEvent:
    return ServerSentEvent(
        data=data.model_dump_json(),
        event=name,
        id=None if id is None else str(id),
        retry=retry,
    )
