"""A job survives a restart of ``serve``: two runners, one after the other, on one SQLite file.

The first runner (the first ``serve``) claims a job whose handler blocks and
is then stopped without finishing it, as a killed process would leave it: the
row stays ``running`` under its lease. A second runner on a new store over the
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


async def _first_serve_dies_mid_job(url: str, clock: FakeClock, max_attempts: int) -> int:
    store = SqlJobStore(make_engine(url))
    job = store.enqueue("generate", {"eval_set": 1}, clock.now(), max_attempts=max_attempts)
    handler = Blocks()
    first = JobRunner(store, {"generate": handler}, clock, "serve-1", lease_s=LEASE)
    await first.poll()
    await handler.entered.wait()
    await first.shutdown()  # no finish is written: the row is left running
    store.close()
    return job.id


async def test_a_restarted_serve_takes_the_job_over_and_finishes_it(
    migrated_sqlite_url: str, clock: FakeClock
) -> None:
    job_id = await _first_serve_dies_mid_job(migrated_sqlite_url, clock, max_attempts=2)
    store = SqlJobStore(make_engine(migrated_sqlite_url))
    try:
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
    finally:
        store.close()


async def test_a_job_out_of_attempts_fails_with_the_reason(
    migrated_sqlite_url: str, clock: FakeClock
) -> None:
    job_id = await _first_serve_dies_mid_job(migrated_sqlite_url, clock, max_attempts=1)
    store = SqlJobStore(make_engine(migrated_sqlite_url))
    try:
        second = JobRunner(store, {"generate": finishes}, clock, "serve-2", lease_s=LEASE)
        clock.advance(seconds=LEASE + 5)
        assert await second.poll() == []
        failed = store.get(job_id)
        assert failed.status is JobStatus.FAILED
        assert failed.error == "serve stopped while the job ran (attempt 1 of 1)"
        assert failed.finished_at == clock.now()
    finally:
        store.close()
