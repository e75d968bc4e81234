"""APScheduler 3 wiring: the interval jobs of `serve`, the daemon's tick and retention.

Each process has its own in-memory job store (never a shared one: several
processes sharing an APScheduler 3 job store run jobs twice); coordination
between replicas is the database's job (advisory lock and slot claims).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
    JobExecutionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from continuous_eval.ports import JobEvents

log = logging.getLogger(__name__)

TICK_JOB_ID = "continuous-eval-tick"


def make_scheduler(
    tick: Callable[[], Awaitable[None]],
    *,
    check_interval_s: float,
    startup_delay_s: float,
    jitter_s: float,
    misfire_grace_s: float,
    events: JobEvents,
    now: datetime | None = None,
) -> AsyncIOScheduler:
    """Build a scheduler (not started) with the tick job.

    ``coalesce=True`` turns a backlog of missed checks into one; ``max_instances=1``
    keeps checks from overlapping; ``misfire_grace_time`` bounds how late a check
    may still run. The first check comes after the start-up delay plus a random
    jitter, so replicas started together spread out.
    """
    scheduler = AsyncIOScheduler(timezone=UTC)
    start = (now or datetime.now(UTC)) + timedelta(
        seconds=startup_delay_s + random.uniform(0, jitter_s)
    )
    scheduler.add_job(
        tick,
        IntervalTrigger(seconds=check_interval_s, start_date=start, timezone=UTC),
        id=TICK_JOB_ID,
        # The first check at `start` itself: left to the trigger, a start that
        # has passed by the time the scheduler starts (a zero delay) would put
        # the first check a whole interval later; a late first run is instead
        # still taken within the misfire grace.
        next_run_time=start,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=max(1, round(misfire_grace_s)),
        replace_existing=True,
    )

    def on_event(event: JobEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            kind = "missed"
            log.warning("scheduled check missed", extra={"event": "tick_missed"})
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            kind = "max_instances"
            log.warning(
                "check skipped: the previous one still runs", extra={"event": "tick_skipped"}
            )
        else:
            kind = "error"
            exc = event.exception if isinstance(event, JobExecutionEvent) else None
            log.error("scheduled check raised: %r", exc, extra={"event": "tick_error"})
        events.job_event(kind)

    scheduler.add_listener(on_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES)
    return scheduler


def as_coroutine_function(
    job: Callable[[], Awaitable[object]],
) -> Callable[[], Coroutine[Any, Any, object]]:
    """``job`` as an ``async def`` function, which APScheduler awaits on the loop.

    APScheduler 3 tells a coroutine job by ``inspect.iscoroutinefunction``,
    which is False for an object whose ``__call__`` is async (``RetentionTick``,
    ``FeedbackFillTick``): such a job was run in the thread pool, and the
    coroutine it returned was never awaited (a RuntimeWarning, and no pass).
    """

    async def run() -> object:
        return await job()

    return run


def _add_background_job(
    scheduler: AsyncIOScheduler,
    job: Callable[[], Awaitable[object]],
    job_id: str,
    interval_s: float,
    first_after_s: float,
    now: datetime | None,
) -> None:
    """Every ``interval_s``, first ``first_after_s`` after ``now``: overlaps skipped
    (``max_instances=1``), a backlog of missed passes run once (``coalesce``), and
    never too late to be worth running (no misfire grace)."""
    start = (now or datetime.now(UTC)) + timedelta(seconds=first_after_s)
    scheduler.add_job(
        as_coroutine_function(job),
        IntervalTrigger(seconds=interval_s, start_date=start, timezone=UTC),
        id=job_id,
        next_run_time=start,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=None,
        replace_existing=True,
    )


RETENTION_JOB_ID = "continuous-eval-retention"


def add_retention_job(
    scheduler: AsyncIOScheduler,
    job: Callable[[], Awaitable[object]],
    *,
    interval_s: float,
    startup_delay_s: float,
    jitter_s: float,
    now: datetime | None = None,
) -> None:
    """Add the retention pass, every ``interval_s``, first after the start-up delay and jitter.

    The first pass comes soon after start rather than an interval later, so
    a replica restarted more often than the interval still enforces
    retention; the jitter spreads replicas started together (and the lock
    makes one of them do the work). Overlaps are skipped (``max_instances=1``)
    and a backlog of missed passes is one (``coalesce``). The job never
    raises (``service.retention.RetentionTick``); the listener above still
    logs and counts it if it ever did.
    """
    _add_background_job(
        scheduler,
        job,
        RETENTION_JOB_ID,
        interval_s,
        startup_delay_s + random.uniform(0, jitter_s),
        now,
    )


FEEDBACK_FILL_JOB_ID = "continuous-eval-feedback-fill"


def add_feedback_fill_job(
    scheduler: AsyncIOScheduler,
    job: Callable[[], Awaitable[object]],
    *,
    interval_s: float,
    startup_delay_s: float,
    jitter_s: float,
    now: datetime | None = None,
) -> None:
    """Add the fill of eval sets from feedback, every ``interval_s`` (0: not added).

    Shaped as the retention job: first soon after start, overlaps skipped, a
    backlog coalesced. The job never raises (``service.feedback_fill.FeedbackFillTick``);
    replicas filling at once are safe, the store's cursor guard writes each batch once.
    """
    if interval_s <= 0:
        return
    _add_background_job(
        scheduler,
        job,
        FEEDBACK_FILL_JOB_ID,
        interval_s,
        startup_delay_s + random.uniform(0, jitter_s),
        now,
    )


JOBS_POLL_ID = "continuous-eval-jobs"


def add_jobs_poll(
    scheduler: AsyncIOScheduler,
    poll: Callable[[], Awaitable[object]],
    *,
    interval_s: float,
    now: datetime | None = None,
) -> None:
    """Add the job runner's poll (``service.jobs.JobRunner.poll``), every ``interval_s``.

    The first poll is at start, with no delay or jitter: it takes over the
    jobs a previous ``serve`` left behind and starts the queued ones, and a
    new job waits at most one interval. Polls never overlap
    (``max_instances=1``) and a backlog is one (``coalesce``); a late poll is
    still worth running. The poll never raises.
    """
    _add_background_job(scheduler, poll, JOBS_POLL_ID, interval_s, 0.0, now)
