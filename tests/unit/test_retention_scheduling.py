"""serve's retention job in the scheduler: every interval from the start-up delay, never twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from continuous_eval.adapters.scheduler import RETENTION_JOB_ID, add_retention_job

NOW = datetime(2025, 1, 1, tzinfo=UTC)


async def _pass() -> None:
    return None


def test_the_retention_job_runs_every_interval_from_the_start_up_delay() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    add_retention_job(scheduler, _pass, interval_s=3600, startup_delay_s=30, jitter_s=0, now=NOW)
    job = scheduler.get_job(RETENTION_JOB_ID)
    assert job is not None
    assert isinstance(job.trigger, IntervalTrigger)
    assert job.trigger.interval == timedelta(hours=1)
    assert job.trigger.start_date == NOW + timedelta(seconds=30)
    assert job.max_instances == 1
    assert job.coalesce is True
    assert job.misfire_grace_time is None
