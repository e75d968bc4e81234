"""A job survives a restart of ``serve``: two runners, one after the other, on one SQLite file.

The first runner (the first ``serve``) claims a job whose handler blocks and
then never polls again, as a killed process would leave it: the row stays
``running`` under its lease. A second runner on a new store over the
same file (the restarted ``serve``) takes it over once the lease has expired:
it runs it again while attempts remain, or fails it with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from pydantic import JsonValue

from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.jobs import SqlJobStore
from continuous_eval.core.jobs import JobStatus
from continuous_eval.ports.jobs import JobProgress
from continuous_eval.service.jobs import JobRunner
from continuous_eval.testing import FakeClock

LEASE = 30.0


class Blocks:
    """Reports a step, then waits forever (until the task is cancelled)."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()

    async def __call__(self, params: Mapping[str, JsonValue], progress: JobProgress) -> JsonValue:
        await progress.step("calling the model", 0.3)
        self.entered.set()
        await asyncio.Event().wait()
        return None


async def finishes(params: Mapping[str, JsonValue], progress: JobProgress) -> JsonValue:
    await progress.step("saving", 0.9)
    return {"attempt": "second"}


async def _first_serve_hangs_mid_job(url: str, clock: FakeClock, max_attempts: int) -> JobRunner:
    """The first ``serve``: claims the job, reports a step, then never polls again (killed)."""
    store = SqlJobStore(make_engine(url))
    store.enqueue("generate", {"eval_set": 1}, clock.now(), max_attempts=max_attempts)
    handler = Blocks()
    first = JobRunner(store, {"generate": handler}, clock, "serve-1", lease_s=LEASE)
    await first.poll()
    await handler.entered.wait()
    return first


async def _bury(first: JobRunner) -> None:
    """End the first runner's task; its job was taken over, so it hands nothing back."""
    await first.shutdown()
    assert isinstance(first.store, SqlJobStore)
    first.store.close()


async def test_a_restarted_serve_takes_the_job_over_and_finishes_it(
    migrated_sqlite_url: str, clock: FakeClock
) -> None:
    first = await _first_serve_hangs_mid_job(migrated_sqlite_url, clock, max_attempts=2)
    store = SqlJobStore(make_engine(migrated_sqlite_url))
    try:
        [job_id] = [j.id for j in store.list_jobs()]
        second = JobRunner(store, {"generate": finishes}, clock, "serve-2", lease_s=LEASE)
        assert await second.poll() == []  # the lease is still live: nobody steals it
        assert store.get(job_id).status is JobStatus.RUNNING
        clock.advance(seconds=LEASE)
        [job] = await second.poll()
        assert (job.id, job.attempt, job.lease_owner) == (job_id, 2, "serve-2")
        await second.wait_idle()
        done = store.get(job_id)
        assert done.status is JobStatus.SUCCEEDED
        assert done.result == {"attempt": "second"}
        assert [e.step for e in store.events(job_id)] == ["calling the model", "saving"]
        await _bury(first)
        assert store.get(job_id) == done  # the stale runner wrote nothing
    finally:
        store.close()


async def test_a_job_out_of_attempts_fails_with_the_reason(
    migrated_sqlite_url: str, clock: FakeClock
) -> None:
    first = await _first_serve_hangs_mid_job(migrated_sqlite_url, clock, max_attempts=1)
    store = SqlJobStore(make_engine(migrated_sqlite_url))
    try:
        [job_id] = [j.id for j in store.list_jobs()]
        second = JobRunner(store, {"generate": finishes}, clock, "serve-2", lease_s=LEASE)
        clock.advance(seconds=LEASE + 5)
        assert await second.poll() == []
        failed = store.get(job_id)
        assert failed.status is JobStatus.FAILED
        assert failed.error == "serve stopped while the job ran (attempt 1 of 1)"
        assert failed.finished_at == clock.now()
        await _bury(first)
        assert store.get(job_id) == failed
    finally:
        store.close()


async def test_a_graceful_stop_hands_the_job_back_without_counting_the_attempt(
    migrated_sqlite_url: str, clock: FakeClock
) -> None:
    first = await _first_serve_hangs_mid_job(migrated_sqlite_url, clock, max_attempts=1)
    await first.shutdown()  # SIGTERM: the job is queued again at once
    assert isinstance(first.store, SqlJobStore)
    first.store.close()
    store = SqlJobStore(make_engine(migrated_sqlite_url))
    try:
        [job_id] = [j.id for j in store.list_jobs()]
        queued = store.get(job_id)
        assert (queued.status, queued.attempt, queued.lease_owner) == (JobStatus.QUEUED, 0, None)
        second = JobRunner(store, {"generate": finishes}, clock, "serve-2", lease_s=LEASE)
        [job] = await second.poll()  # no wait for a lease to expire
        assert job.attempt == 1
        await second.wait_idle()
        assert store.get(job_id).status is JobStatus.SUCCEEDED
    finally:
        store.close()
