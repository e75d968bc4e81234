"""The ``JobStore`` contract on memory, SQLite and Postgres: claims, leases, fences, cancels."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from continuous_eval.core.jobs import JobFence, JobStatus
from continuous_eval.errors import JobFinished, JobLeaseLost, JobNotFound
from continuous_eval.ports.jobs import JobStore
from continuous_eval.testing import DEFAULT_START
from tests.fixtures.jobs import job_store

__all__ = ["job_store"]

T0 = DEFAULT_START
LEASE = 30.0


def test_an_enqueued_job_is_queued_and_read_back_whole(job_store: JobStore) -> None:
    job = job_store.enqueue("echo", {"n": 1, "tags": ["a"]}, T0, max_attempts=3)
    assert job.status is JobStatus.QUEUED
    assert job_store.get(job.id) == job
    assert (job.kind, job.params, job.max_attempts, job.attempt) == (
        "echo",
        {"n": 1, "tags": ["a"]},
        3,
        0,
    )
    assert job.created_at == T0


def test_a_missing_job_is_job_not_found(job_store: JobStore) -> None:
    with pytest.raises(JobNotFound):
        job_store.get(999)
    with pytest.raises(JobNotFound):
        job_store.events(999)
    with pytest.raises(JobNotFound):
        job_store.request_cancel(999, T0)


def test_an_idempotency_key_returns_the_job_already_enqueued(job_store: JobStore) -> None:
    first = job_store.enqueue("echo", {"n": 1}, T0, idempotency_key="k1")
    again = job_store.enqueue("echo", {"n": 2}, T0, idempotency_key="k1")
    assert again.id == first.id
    assert again.params == {"n": 1}
    assert len(job_store.list_jobs()) == 1


def test_list_is_newest_first_filtered_and_paginated(job_store: JobStore) -> None:
    ids = [job_store.enqueue("a" if n % 2 else "b", {}, T0).id for n in range(5)]
    assert [j.id for j in job_store.list_jobs()] == ids[::-1]
    assert [j.id for j in job_store.list_jobs(kind="a")] == [ids[3], ids[1]]
    page = job_store.list_jobs(limit=2)
    assert [j.id for j in page] == [ids[4], ids[3]]
    assert [j.id for j in job_store.list_jobs(limit=2, before_id=page[-1].id)] == [ids[2], ids[1]]
    job_store.claim_next("w", T0, LEASE)
    assert [j.id for j in job_store.list_jobs(status=JobStatus.RUNNING)] == [ids[0]]


def test_claim_takes_the_oldest_queued_job_under_a_lease(job_store: JobStore) -> None:
    first = job_store.enqueue("echo", {}, T0)
    job_store.enqueue("echo", {}, T0)
    job = job_store.claim_next("w1", T0, LEASE)
    assert job is not None
    assert job.id == first.id
    assert job.status is JobStatus.RUNNING
    assert (job.attempt, job.lease_owner) == (1, "w1")
    assert job.lease_expires_at == T0 + timedelta(seconds=LEASE)
    assert job.started_at == T0
    assert job_store.get(job.id) == job


def test_claim_with_nothing_queued_is_none(job_store: JobStore) -> None:
    assert job_store.claim_next("w1", T0, LEASE) is None


def test_steps_are_numbered_from_one_and_shown_on_the_job(job_store: JobStore) -> None:
    job_store.enqueue("echo", {}, T0)
    job = job_store.claim_next("w1", T0, LEASE)
    assert job is not None
    first = job_store.add_event(job.id, job.fence, "fetching examples", 0.1, "12 cases", T0)
    second = job_store.add_event(job.id, job.fence, "calling the model", 1.5, "", T0)
    assert (first.seq, second.seq) == (1, 2)
    assert second.progress == 1.0  # clamped
    assert [e.step for e in job_store.events(job.id)] == ["fetching examples", "calling the model"]
    assert [e.seq for e in job_store.events(job.id, after_seq=1)] == [2]
    shown = job_store.get(job.id)
    assert (shown.step, shown.progress) == ("calling the model", 1.0)


def test_finish_stores_the_result_and_then_refuses_writes(job_store: JobStore) -> None:
    job_store.enqueue("echo", {}, T0)
    job = job_store.claim_next("w1", T0, LEASE)
    assert job is not None
    done = job_store.finish(job.id, job.fence, JobStatus.SUCCEEDED, T0, result={"ok": [1, 2]})
    assert done.status is JobStatus.SUCCEEDED
    assert job_store.get(job.id).result == {"ok": [1, 2]}
    assert done.finished_at == T0
    assert done.lease_owner is None
    with pytest.raises(JobLeaseLost):
        job_store.add_event(job.id, job.fence, "late", 0.5, "", T0)
    with pytest.raises(JobFinished):
        job_store.request_cancel(job.id, T0)


def test_a_failure_keeps_its_reason(job_store: JobStore) -> None:
    job_store.enqueue("echo", {}, T0)
    job = job_store.claim_next("w1", T0, LEASE)
    assert job is not None
    job_store.finish(job.id, job.fence, JobStatus.FAILED, T0, error="ValueError: bad")
    stored = job_store.get(job.id)
    assert (stored.status, stored.error, stored.result) == (
        JobStatus.FAILED,
        "ValueError: bad",
        None,
    )


def test_writes_under_another_fence_are_refused(job_store: JobStore) -> None:
    job_store.enqueue("echo", {}, T0)
    job = job_store.claim_next("w1", T0, LEASE)
    assert job is not None
    stranger = JobFence("w2", job.attempt)
    with pytest.raises(JobLeaseLost):
        job_store.heartbeat(job.id, stranger, T0, LEASE)
    with pytest.raises(JobLeaseLost):
        job_store.finish(job.id, JobFence("w1", 2), JobStatus.SUCCEEDED, T0)


def test_a_heartbeat_keeps_the_job_from_being_taken_over(job_store: JobStore) -> None:
    job_store.enqueue("echo", {}, T0)
    job = job_store.claim_next("w1", T0, LEASE)
    assert job is not None
    later = T0 + timedelta(seconds=20)
    beat = job_store.heartbeat(job.id, job.fence, later, LEASE)
    assert beat.lease_expires_at == later + timedelta(seconds=LEASE)
    assert job_store.take_over_expired(T0 + timedelta(seconds=40)) == []
    assert job_store.get(job.id).status is JobStatus.RUNNING


def test_an_expired_lease_is_requeued_while_attempts_remain_then_failed(
    job_store: JobStore,
) -> None:
    job_store.enqueue("echo", {}, T0, max_attempts=2)
    first = job_store.claim_next("w1", T0, LEASE)
    assert first is not None
    t1 = T0 + timedelta(seconds=LEASE)
    [requeued] = job_store.take_over_expired(t1)
    assert requeued.status is JobStatus.QUEUED
    assert requeued.lease_owner is None
    second = job_store.claim_next("w2", t1, LEASE)
    assert second is not None
    assert (second.id, second.attempt) == (first.id, 2)
    with pytest.raises(JobLeaseLost):  # the first runner is fenced off
        job_store.finish(first.id, first.fence, JobStatus.SUCCEEDED, t1)
    t2 = t1 + timedelta(seconds=LEASE)
    [failed] = job_store.take_over_expired(t2)
    assert failed.status is JobStatus.FAILED
    assert failed.error == "serve stopped while the job ran (attempt 2 of 2)"
    assert job_store.get(first.id).finished_at == t2


def test_cancel_of_a_queued_job_is_immediate(job_store: JobStore) -> None:
    job = job_store.enqueue("echo", {}, T0)
    cancelled = job_store.request_cancel(job.id, T0)
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.finished_at == T0
    assert job_store.claim_next("w1", T0, LEASE) is None


def test_cancel_of_a_running_job_is_a_request_the_runner_sees(job_store: JobStore) -> None:
    job_store.enqueue("echo", {}, T0)
    job = job_store.claim_next("w1", T0, LEASE)
    assert job is not None
    flagged = job_store.request_cancel(job.id, T0)
    assert flagged.status is JobStatus.RUNNING
    assert flagged.cancel_requested_at == T0
    assert job_store.heartbeat(job.id, job.fence, T0, LEASE).cancel_requested_at == T0


def test_an_expired_job_whose_cancel_was_asked_is_cancelled_not_rerun(job_store: JobStore) -> None:
    job_store.enqueue("echo", {}, T0, max_attempts=3)
    job = job_store.claim_next("w1", T0, LEASE)
    assert job is not None
    job_store.request_cancel(job.id, T0)
    [after] = job_store.take_over_expired(T0 + timedelta(seconds=LEASE))
    assert after.status is JobStatus.CANCELLED


def test_two_claimers_never_get_the_same_job(job_store: JobStore) -> None:
    for n in range(20):
        job_store.enqueue("echo", {"n": n}, T0)
    got: dict[str, list[int]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def claim(owner: str) -> None:
        start.wait()
        while (job := job_store.claim_next(owner, T0, LEASE)) is not None:
            got[owner].append(job.id)

    threads = [threading.Thread(target=claim, args=(o,)) for o in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    claimed_ids = got["a"] + got["b"]
    assert sorted(claimed_ids) == sorted(set(claimed_ids))
    assert len(claimed_ids) == 20


def test_a_released_job_is_queued_again_without_counting_the_attempt(job_store: JobStore) -> None:
    job_store.enqueue("echo", {}, T0, max_attempts=1)
    job = job_store.claim_next("w1", T0, LEASE)
    assert job is not None
    released = job_store.release(job.id, job.fence)
    assert (released.status, released.attempt, released.lease_owner) == (JobStatus.QUEUED, 0, None)
    with pytest.raises(JobLeaseLost):
        job_store.release(job.id, job.fence)
    again = job_store.claim_next("w2", T0, LEASE)
    assert again is not None
    assert (again.id, again.attempt) == (job.id, 1)
