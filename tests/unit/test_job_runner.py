"""``JobRunner`` on the in-memory store and a fake clock: claims, steps, results, failures, cancel.

Handlers here are the tests' own; a blocking one waits on an ``asyncio.Event``
the test sets, so nothing sleeps and every outcome is decided by the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest
from pydantic import JsonValue

from continuous_eval.core.jobs import JobStatus
from continuous_eval.ports.jobs import JobHandler, JobProgress
from continuous_eval.service.jobs import JobRunner
from continuous_eval.testing import FakeClock
from continuous_eval.testing.jobs import InMemoryJobStore

LEASE = 30.0


async def echo(params: Mapping[str, JsonValue], progress: JobProgress) -> JsonValue:
    await progress.step("fetching examples", 0.25, "4 examples")
    await progress.step("saving", 0.75)
    return {"echo": params.get("value")}


async def explode(params: Mapping[str, JsonValue], progress: JobProgress) -> JsonValue:
    await progress.step("calling the model", 0.5)
    raise RuntimeError("the model said no")


async def not_json(params: Mapping[str, JsonValue], progress: JobProgress) -> JsonValue:
    return {"set": {1, 2}}  # type: ignore[dict-item]


class Gate:
    """A handler that reports a step, then waits until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.open = asyncio.Event()

    async def __call__(self, params: Mapping[str, JsonValue], progress: JobProgress) -> JsonValue:
        await progress.step("testing", 0.5)
        self.entered.set()
        await self.open.wait()
        await progress.step("saving", 0.9)
        return "done"


def runner(
    store: InMemoryJobStore,
    clock: FakeClock,
    handlers: Mapping[str, JobHandler],
    *,
    owner: str = "replica-a",
    concurrency: int = 1,
) -> JobRunner:
    return JobRunner(store, handlers, clock, owner, lease_s=LEASE, concurrency=concurrency)


async def test_a_job_runs_its_handler_stores_steps_and_the_result(clock: FakeClock) -> None:
    store = InMemoryJobStore()
    job = store.enqueue("echo", {"value": 7}, clock.now())
    jobs = runner(store, clock, {"echo": echo})
    started = await jobs.poll()
    assert [j.id for j in started] == [job.id]
    await jobs.wait_idle()
    done = store.get(job.id)
    assert done.status is JobStatus.SUCCEEDED
    assert done.result == {"echo": 7}
    assert done.progress == 1.0
    assert [(e.seq, e.step, e.message) for e in store.events(job.id)] == [
        (1, "fetching examples", "4 examples"),
        (2, "saving", ""),
    ]
    assert jobs.running == []


async def test_a_handler_exception_fails_the_job_and_the_runner_goes_on(clock: FakeClock) -> None:
    store = InMemoryJobStore()
    bad = store.enqueue("explode", {}, clock.now())
    good = store.enqueue("echo", {}, clock.now())
    jobs = runner(store, clock, {"explode": explode, "echo": echo})
    await jobs.poll()
    await jobs.wait_idle()
    await jobs.poll()
    await jobs.wait_idle()
    failed = store.get(bad.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error == "RuntimeError: the model said no"
    assert store.get(good.id).status is JobStatus.SUCCEEDED


async def test_an_unknown_kind_fails_with_a_reason(clock: FakeClock) -> None:
    store = InMemoryJobStore()
    job = store.enqueue("mystery", {}, clock.now())
    jobs = runner(store, clock, {"echo": echo})
    await jobs.poll()
    await jobs.wait_idle()
    failed = store.get(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error == "no handler for job kind 'mystery' (known: echo)"


async def test_a_result_that_is_not_json_fails_the_job(clock: FakeClock) -> None:
    store = InMemoryJobStore()
    job = store.enqueue("bad", {}, clock.now())
    jobs = runner(store, clock, {"bad": not_json})
    await jobs.poll()
    await jobs.wait_idle()
    failed = store.get(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error.startswith("the handler's result is not JSON")


async def test_concurrency_bounds_the_jobs_running_at_once(clock: FakeClock) -> None:
    store = InMemoryJobStore()
    gates = [Gate(), Gate(), Gate()]
    for n in range(3):
        store.enqueue(f"gate{n}", {}, clock.now())
    jobs = runner(store, clock, {f"gate{n}": g for n, g in enumerate(gates)}, concurrency=2)
    assert len(await jobs.poll()) == 2
    assert await jobs.poll() == []  # full: the third stays queued
    assert [j.status for j in store.list_jobs()] == [
        JobStatus.QUEUED,
        JobStatus.RUNNING,
        JobStatus.RUNNING,
    ]
    first = jobs.running[0]
    gates[0].open.set()
    await jobs.wait_for(first)
    assert len(jobs.running) == 1
    assert len(await jobs.poll()) == 1
    for gate in gates:
        gate.open.set()
    await jobs.wait_idle()
    assert {j.status for j in store.list_jobs()} == {JobStatus.SUCCEEDED}


async def test_a_queued_job_is_cancelled_at_once(clock: FakeClock) -> None:
    store = InMemoryJobStore()
    job = store.enqueue("echo", {}, clock.now())
    store.request_cancel(job.id, clock.now())
    jobs = runner(store, clock, {"echo": echo})
    assert await jobs.poll() == []
    assert store.get(job.id).status is JobStatus.CANCELLED


async def test_a_running_job_is_cancelled_at_its_next_step(clock: FakeClock) -> None:
    store = InMemoryJobStore()
    gate = Gate()
    job = store.enqueue("gate", {}, clock.now())
    jobs = runner(store, clock, {"gate": gate})
    await jobs.poll()
    await gate.entered.wait()
    store.request_cancel(job.id, clock.now())
    assert store.get(job.id).status is JobStatus.RUNNING
    gate.open.set()
    await jobs.wait_idle()
    cancelled = store.get(job.id)
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.result is None
    assert [e.step for e in store.events(job.id)] == ["testing", "saving"]


async def test_the_poll_heartbeats_running_jobs_so_they_are_not_taken_over(
    clock: FakeClock,
) -> None:
    store = InMemoryJobStore()
    gate = Gate()
    job = store.enqueue("gate", {}, clock.now())
    jobs = runner(store, clock, {"gate": gate})
    await jobs.poll()
    await gate.entered.wait()
    for _ in range(3):  # 60 s in all, twice the lease, with a poll every 20 s
        clock.advance(seconds=20)
        await jobs.poll()
    assert store.get(job.id).status is JobStatus.RUNNING
    assert store.get(job.id).attempt == 1
    gate.open.set()
    await jobs.wait_idle()
    assert store.get(job.id).status is JobStatus.SUCCEEDED


async def test_a_runner_whose_job_was_taken_over_stands_down_without_writing(
    clock: FakeClock,
) -> None:
    store = InMemoryJobStore()
    stalled, fresh = Gate(), Gate()
    job = store.enqueue("gate", {}, clock.now(), max_attempts=2)
    a = runner(store, clock, {"gate": stalled}, owner="a")
    b = runner(store, clock, {"gate": fresh}, owner="b")
    await a.poll()
    await stalled.entered.wait()
    clock.advance(seconds=LEASE + 1)  # a stopped polling: its lease expired
    assert [j.id for j in await b.poll()] == [job.id]
    await fresh.entered.wait()
    await a.poll()  # a's heartbeat is refused: it stops its handler
    await a.wait_idle()
    fresh.open.set()
    await b.wait_idle()
    done = store.get(job.id)
    assert (done.status, done.attempt, done.lease_owner) == (JobStatus.SUCCEEDED, 2, None)
    assert [e.step for e in store.events(job.id)] == ["testing", "testing", "saving"]


async def test_shutdown_hands_running_jobs_back_and_claims_no_more(clock: FakeClock) -> None:
    store = InMemoryJobStore()
    gate = Gate()
    job = store.enqueue("gate", {}, clock.now())
    jobs = runner(store, clock, {"gate": gate})
    await jobs.poll()
    await gate.entered.wait()
    await jobs.shutdown()
    back = store.get(job.id)
    assert (back.status, back.attempt, back.lease_owner) == (JobStatus.QUEUED, 0, None)
    assert jobs.running == []
    assert await jobs.poll() == []
    assert store.get(job.id).status is JobStatus.QUEUED


async def test_shutdown_ends_a_job_whose_cancel_was_asked_cancelled(clock: FakeClock) -> None:
    store = InMemoryJobStore()
    gate = Gate()
    job = store.enqueue("gate", {}, clock.now())
    jobs = runner(store, clock, {"gate": gate})
    await jobs.poll()
    await gate.entered.wait()
    store.request_cancel(job.id, clock.now())
    await jobs.shutdown()
    assert store.get(job.id).status is JobStatus.CANCELLED


@pytest.mark.parametrize("concurrency", [0, -1])
def test_concurrency_must_be_positive(clock: FakeClock, concurrency: int) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        runner(InMemoryJobStore(), clock, {}, concurrency=concurrency)
