"""``JobRunner``: claim stored jobs, run their handlers, and keep their leases while they run.

``serve`` calls ``poll`` on a timer. One poll:

1. takes over the jobs whose lease expired (a ``serve`` that died mid-job):
   re-queued while attempts remain, else failed with a reason
   (``core.jobs.taken_over``); after a restart the first poll does it;
2. heartbeats the leases of the jobs this runner is running, and stops a
   job whose lease another runner took;
3. claims queued jobs while fewer than ``concurrency`` run here, and starts
   each in a task of its own.

Heartbeats ride on the poll instead of a timer per job: the poll interval is
well below the lease, and no sleeping task per job means tests drive
everything with a fake clock and ``poll``/``wait_idle``.

At shutdown (SIGTERM) the runner stops its jobs and hands them back:
queued again at once, the attempt not counted, so a deploy neither waits
for a lease to expire nor costs an attempt.

A job's task never raises into the runner: a handler's exception fails the
job with its message; an unknown kind fails it with a reason; a lost lease
(taken over elsewhere) makes it stand down without writing. Cancel: a
running job's ``JobProgress.step`` raises ``JobCancelled`` once a cancel was
asked for, and the job ends ``cancelled``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from functools import partial
from typing import TypeVar

from pydantic import JsonValue

from continuous_eval.core.jobs import JobRecord, JobStatus, clip
from continuous_eval.errors import JobLeaseLost
from continuous_eval.ports import Clock
from continuous_eval.ports.jobs import JobCancelled, JobHandler, JobStore
from continuous_eval.service.blocking import run_blocking

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class _Progress:
    """The ``JobProgress`` a handler gets: each step is stored, then the cancel flag is read."""

    def __init__(self, runner: JobRunner, job: JobRecord) -> None:
        self._runner = runner
        self._job = job

    @property
    def job_id(self) -> int:
        """The job this reports on."""
        return self._job.id

    async def step(self, name: str, progress: float, message: str = "") -> None:
        """Store the step; raise ``JobCancelled`` if a cancel was asked for."""
        r, job = self._runner, self._job
        await r.blocking(
            lambda: r.store.add_event(job.id, job.fence, name, progress, message, r.clock.now())
        )
        current = await r.blocking(lambda: r.store.get(job.id))
        if current.cancel_requested_at is not None:
            raise JobCancelled(f"job {job.id} was cancelled")


class JobRunner:
    """Run stored jobs of the kinds in ``handlers``, at most ``concurrency`` at once.

    Args:
        store: Where jobs are claimed and written.
        handlers: The handler of each job kind; a job of another kind fails.
        clock: Every time the runner writes (in ``serve``, the database's).
        owner: This replica's name, written as the lease owner.
        lease_s: How long a claim or heartbeat holds a job; a runner that
            stops polling for longer loses its jobs to a takeover.
        concurrency: Jobs running at once in this runner.
        io_executor: Where the store's blocking calls run (the loop's default when None).
    """

    def __init__(
        self,
        store: JobStore,
        handlers: Mapping[str, JobHandler],
        clock: Clock,
        owner: str,
        *,
        lease_s: float = 60.0,
        concurrency: int = 1,
        io_executor: Executor | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.store = store
        self.clock = clock
        self._handlers = dict(handlers)
        self._owner = owner
        self._lease_s = lease_s
        self._concurrency = concurrency
        self._io = io_executor
        self._running: dict[int, tuple[JobRecord, asyncio.Task[None]]] = {}
        self._closed = False

    @property
    def running(self) -> list[int]:
        """Ids of the jobs running in this runner."""
        return sorted(self._running)

    async def blocking(self, fn: Callable[[], _T]) -> _T:
        """Run a blocking store call off the event loop."""
        return await run_blocking(self._io, fn)

    async def poll(self) -> list[JobRecord]:
        """Take over expired jobs, heartbeat ours, claim new ones; return the jobs started.

        Never raises: a store error is logged and the next poll tries again.
        """
        if self._closed:
            return []
        try:
            await self._take_over()
            await self._heartbeat()
            return await self._claim()
        except Exception:
            log.exception("job poll failed", extra={"event": "job_poll_failed"})
            return []

    async def wait_idle(self) -> None:
        """Wait until the jobs running now have ended (tests; a graceful stop)."""
        tasks = [task for _, task in self._running.values()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_for(self, job_id: int) -> None:
        """Wait until job ``job_id`` has ended here (returns at once if it is not running here)."""
        entry = self._running.get(job_id)
        if entry is not None:
            await asyncio.gather(entry[1], return_exceptions=True)

    async def shutdown(self) -> None:
        """Stop claiming, stop the jobs running here, and hand them back (a graceful stop).

        Each is queued again at once, its attempt not counted, for another
        ``serve`` (or this one, restarted) to run from the start; a job
        whose cancel was asked for ends ``cancelled`` instead. A job that
        cannot be handed back (the database is down) is left to the
        takeover once its lease expires, as a killed ``serve`` leaves it.
        """
        self._closed = True
        running = list(self._running.values())
        for _, task in running:
            task.cancel()
        await asyncio.gather(*(task for _, task in running), return_exceptions=True)
        for job, _ in running:
            try:
                await self.blocking(partial(self._hand_back, job))
            except JobLeaseLost:
                pass  # taken over meanwhile: no longer ours
            except Exception:
                log.exception(
                    "job %d could not be handed back; it is taken over once its lease expires",
                    job.id,
                    extra={"event": "job_release_failed", "job_id": job.id},
                )

    def _hand_back(self, job: JobRecord) -> None:
        current = self.store.get(job.id)
        if current.cancel_requested_at is not None:
            self.store.finish(
                job.id, job.fence, JobStatus.CANCELLED, self.clock.now(), error="cancelled"
            )
        else:
            self.store.release(job.id, job.fence)
        log.info(
            "job %d handed back at shutdown",
            job.id,
            extra={"event": "job_released", "job_id": job.id},
        )

    async def _take_over(self) -> None:
        taken = await self.blocking(lambda: self.store.take_over_expired(self.clock.now()))
        for job in taken:
            log.warning(
                "job %d (%s) lost its runner: %s%s",
                job.id,
                job.kind,
                job.status.value,
                f" ({job.error})" if job.error else "",
                extra={"event": "job_taken_over", "job_id": job.id, "status": job.status.value},
            )

    async def _heartbeat(self) -> None:
        for job_id, (job, task) in list(self._running.items()):
            try:
                await self.blocking(partial(self._beat, job))
            except JobLeaseLost:
                log.warning(
                    "job %d was taken over elsewhere; this runner stands down",
                    job_id,
                    extra={"event": "job_lease_lost", "job_id": job_id},
                )
                task.cancel()

    async def _claim(self) -> list[JobRecord]:
        started = []
        while len(self._running) < self._concurrency:
            job = await self.blocking(
                lambda: self.store.claim_next(self._owner, self.clock.now(), self._lease_s)
            )
            if job is None:
                break
            if self._closed:  # shutdown began while this claim was in flight
                await self.blocking(partial(self.store.release, job.id, job.fence))
                break
            task = asyncio.create_task(self._run(job), name=f"job-{job.id}")
            self._running[job.id] = (job, task)
            task.add_done_callback(partial(self._forget, job.id))
            started.append(job)
        return started

    def _beat(self, job: JobRecord) -> JobRecord:
        # In the worker thread: the clock may be the database's, which is a query.
        return self.store.heartbeat(job.id, job.fence, self.clock.now(), self._lease_s)

    def _forget(self, job_id: int, _: asyncio.Task[None]) -> None:
        self._running.pop(job_id, None)

    async def _run(self, job: JobRecord) -> None:
        log.info(
            "job %d (%s) started, attempt %d of %d",
            job.id,
            job.kind,
            job.attempt,
            job.max_attempts,
            extra={"event": "job_started", "job_id": job.id},
        )
        try:
            status, result, error = await self._outcome(job)
            await self.blocking(
                lambda: self.store.finish(
                    job.id, job.fence, status, self.clock.now(), result=result, error=error
                )
            )
        except JobLeaseLost:
            log.warning(
                "job %d was taken over before it finished here; its outcome is dropped",
                job.id,
                extra={"event": "job_lease_lost", "job_id": job.id},
            )
            return
        except Exception:
            log.exception(
                "job %d: its outcome could not be stored", job.id, extra={"event": "job_failed"}
            )
            return
        log.info(
            "job %d (%s) %s%s",
            job.id,
            job.kind,
            status.value,
            f": {error}" if error else "",
            extra={"event": "job_finished", "job_id": job.id, "status": status.value},
        )

    async def _outcome(self, job: JobRecord) -> tuple[JobStatus, JsonValue, str | None]:
        """Run the handler: (succeeded, result) or (failed or cancelled, reason)."""
        handler = self._handlers.get(job.kind)
        if handler is None:
            known = ", ".join(sorted(self._handlers)) or "none"
            return JobStatus.FAILED, None, f"no handler for job kind {job.kind!r} (known: {known})"
        try:
            result = await handler(job.params, _Progress(self, job))
        except JobCancelled:
            return JobStatus.CANCELLED, None, "cancelled"
        except JobLeaseLost:
            raise  # taken over: the job is no longer ours to fail
        except Exception as exc:
            return JobStatus.FAILED, None, clip(f"{type(exc).__name__}: {exc}")
        try:
            json.dumps(result, allow_nan=False)
        except (TypeError, ValueError) as exc:
            return JobStatus.FAILED, None, f"the handler's result is not JSON: {exc}"
        return JobStatus.SUCCEEDED, result, None
