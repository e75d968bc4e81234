"""serve's fill of eval sets from feedback in the scheduler: every interval, or off at 0."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from continuous_eval.adapters.scheduler import (
    FEEDBACK_FILL_JOB_ID,
    RETENTION_JOB_ID,
    add_feedback_fill_job,
    add_retention_job,
)
from continuous_eval.settings import Settings

NOW = datetime(2025, 1, 1, tzinfo=UTC)


async def _fill() -> None:
    return None


def test_the_fill_runs_every_interval_from_the_start_up_delay() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    add_feedback_fill_job(scheduler, _fill, interval_s=300, startup_delay_s=30, jitter_s=0, now=NOW)
    job = scheduler.get_job(FEEDBACK_FILL_JOB_ID)
    assert job is not None
    assert isinstance(job.trigger, IntervalTrigger)
    assert job.trigger.interval == timedelta(minutes=5)
    assert job.trigger.start_date == NOW + timedelta(seconds=30)
    assert job.max_instances == 1
    assert job.coalesce is True


def test_an_interval_of_0_schedules_no_fill() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    add_feedback_fill_job(scheduler, _fill, interval_s=0, startup_delay_s=30, jitter_s=0, now=NOW)
    assert scheduler.get_job(FEEDBACK_FILL_JOB_ID) is None


def test_the_interval_setting_defaults_to_5_minutes() -> None:
    assert Settings.model_fields["feedback_fill_interval_s"].default == 300.0
    assert Settings(feedback_fill_interval_s=0).feedback_fill_interval_s == 0


class _AsyncCallable:
    """A job object whose ``__call__`` is async, as ``FeedbackFillTick`` and ``RetentionTick``."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1


async def test_a_job_object_with_an_async_call_is_awaited_on_the_loop() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    fill, retention = _AsyncCallable(), _AsyncCallable()
    add_feedback_fill_job(scheduler, fill, interval_s=300, startup_delay_s=0, jitter_s=0)
    add_retention_job(scheduler, retention, interval_s=300, startup_delay_s=0, jitter_s=0)
    for job_id, job in ((FEEDBACK_FILL_JOB_ID, fill), (RETENTION_JOB_ID, retention)):
        scheduled = scheduler.get_job(job_id)
        assert scheduled is not None
        # APScheduler runs a job on the loop only when this holds; else in a thread,
        # where the coroutine the object returns is never awaited.
        assert inspect.iscoroutinefunction(scheduled.func)
        await scheduled.func()
        assert job.calls == 1
