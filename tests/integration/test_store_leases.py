"""The daemon's half of the ``RunStore`` contract, on every backend (memory, SQLite, Postgres).

Leases, fences, adoption, admin control and the scheduler's queries. Lease
expiry is arranged by writing an expiry in the past (``expire``) or by
advancing the store's fake clock, which every backend's leases run on; nothing
waits for time to pass. The SQL-only tests at the end show that a store with
no clock, as in production, is on the database's clock instead.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, event, insert, text, update

from continuous_eval.adapters.db.engine import for_writes, make_engine
from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.adapters.db.tables import eval_results, eval_runs
from continuous_eval.core.models import (
    CaseResult,
    ControlAction,
    Fence,
    Lease,
    ProgressDelta,
    ResultStatus,
    RunRecord,
    RunStatus,
    ScoreAggregate,
    Usage,
)
from continuous_eval.errors import DuplicateRun, LeaseLost, RunFinished, RunNotFound
from continuous_eval.ports import RunStore
from continuous_eval.testing import FakeClock, InMemoryRunStore
from continuous_eval.testing.builders import SLOT, all_scores, failed, new_run, ok
from tests.fixtures.database import database_clock

LEASE = Lease("worker-1", 30.0)
FENCE = Fence(1, "worker-1")
AGG = ScoreAggregate("refunds", "judge", mean=4.0, stderr=None, n=1, errors=0)


def leased(store: RunStore, run_id: str = "run-1", **overrides: object) -> RunRecord:
    """Create a running run owned by worker-1 (attempt 1)."""
    return store.create_run(new_run(run_id, **overrides), lease=LEASE)


def expire(store: RunStore, run_id: str) -> None:
    """Put the run's lease an hour in the past on the store's own (database) clock."""
    past = store.db_now() - timedelta(hours=1)
    if isinstance(store, InMemoryRunStore):
        store.runs[run_id] = replace(store.runs[run_id], lease_expires_at=past)
        return
    assert isinstance(store, SqlRunStore)
    with store.engine.begin() as conn:
        conn.execute(
            update(eval_runs).where(eval_runs.c.id == run_id).values(lease_expires_at=past)
        )


def counters(run: RunRecord) -> tuple[int, int, int, Usage]:
    return (run.cases_done, run.scored, run.errored, run.judge_usage)


# ------------------------------------------------------------------ create


def test_db_now_is_aware_utc(store: RunStore, clock: FakeClock) -> None:
    now = store.db_now()

    assert now.tzinfo is UTC
    assert now == clock.now()  # the store's one clock (the database's: see the SQL-only tests)


def test_create_run_with_a_lease_is_owned_from_the_start(store: RunStore) -> None:
    before = store.db_now()
    created = leased(store)
    after = store.db_now()

    assert created.status is RunStatus.RUNNING
    assert created.attempt == 1
    assert created.lease_owner == "worker-1"
    assert created.lease_expires_at is not None
    assert created.heartbeat_at is not None
    assert before + timedelta(seconds=30) <= created.lease_expires_at
    assert created.lease_expires_at <= after + timedelta(seconds=30)
    assert before <= created.heartbeat_at <= after
    assert store.get_run("run-1") == created
    assert store.adoptable_run("support") is None


def test_create_run_queued_waits_for_a_worker(store: RunStore, clock: FakeClock) -> None:
    created = store.create_run(new_run(), status=RunStatus.QUEUED)

    assert created.status is RunStatus.QUEUED
    assert created.attempt == 0
    assert created.lease_owner is None
    assert created.finished_at is None
    assert created.started_at == clock.now()
    assert store.adoptable_run("support") == created


def test_create_run_skipped_records_the_slot_as_done(store: RunStore, clock: FakeClock) -> None:
    created = store.create_run(
        new_run(run_type="scheduled", scheduled_for=SLOT, reason="daily judge budget reached"),
        status=RunStatus.SKIPPED,
    )

    assert created.status is RunStatus.SKIPPED
    assert created.status_reason == "daily judge budget reached"
    assert created.status.terminal
    assert created.attempt == 0
    assert created.finished_at == created.started_at == clock.now()
    assert store.adoptable_run("support") is None
    assert store.newest_scheduled("support") == created
    with pytest.raises(RunFinished):
        store.save_results("run-1", [ok("1", 1.0)], ProgressDelta(scored=1))
    # The slot is taken: a second replica's claim of it, skipped or not, is refused.
    for status in (RunStatus.SKIPPED, RunStatus.RUNNING):
        with pytest.raises(DuplicateRun) as caught:
            store.create_run(
                new_run("again", run_type="scheduled", scheduled_for=SLOT),
                lease=LEASE if status is RunStatus.RUNNING else None,
                status=status,
            )
        assert (caught.value.conflict, caught.value.existing_id) == ("scheduled_for", "run-1")
    assert [run.id for run in store.list_runs()] == ["run-1"]


@pytest.mark.parametrize(
    ("status", "lease", "message"),
    [
        (RunStatus.PAUSED, None, "create_run takes status"),
        (RunStatus.SUCCEEDED, None, "create_run takes status"),
        (RunStatus.QUEUED, LEASE, "a lease needs status 'running'"),
        (RunStatus.RUNNING, Lease("w", 0.0), "more than 0 seconds"),
    ],
)
def test_create_run_refuses_what_it_cannot_store(
    store: RunStore, status: RunStatus, lease: Lease | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        store.create_run(new_run(), lease=lease, status=status)
    assert store.list_runs() == []


# ------------------------------------------------------------------ fences


STALE_FENCES = [Fence(1, "worker-2"), Fence(2, "worker-1"), Fence(0, "worker-1")]


@pytest.mark.parametrize("stale", STALE_FENCES, ids=["owner", "attempt-ahead", "attempt-behind"])
def test_a_stale_fence_writes_nothing(store: RunStore, stale: Fence) -> None:
    leased(store)
    store.save_results(
        "run-1",
        [ok("1", 4.0)],
        ProgressDelta(cases_done=1, scored=1, judge_usage=Usage(1, 1, 0.5)),
        fence=FENCE,
    )
    before = store.get_run("run-1")

    with pytest.raises(LeaseLost, match="no longer held"):
        store.save_results(
            "run-1",
            [ok("1", 0.0), ok("2", 0.0)],
            ProgressDelta(cases_done=2, scored=2, judge_usage=Usage(9, 9, 9.0)),
            fence=stale,
        )
    with pytest.raises(LeaseLost):
        store.finish_run("run-1", RunStatus.SUCCEEDED, "stale", [AGG], fence=stale)
    with pytest.raises(LeaseLost):
        store.renew_lease("run-1", stale, 60)
    with pytest.raises(LeaseLost):
        store.release_run("run-1", stale, RunStatus.INTERRUPTED)

    assert store.get_run("run-1") == before
    assert all_scores(store, "run-1") == [("refunds", "judge", ResultStatus.OK, 4.0)]
    assert store.get_aggregates("run-1") == []


def test_a_fenced_write_to_an_unknown_run_is_run_not_found(store: RunStore) -> None:
    with pytest.raises(RunNotFound):
        store.save_results("nope", [], ProgressDelta(), fence=FENCE)
    with pytest.raises(RunNotFound):
        store.finish_run("nope", RunStatus.SUCCEEDED, None, [], fence=FENCE)
    with pytest.raises(RunNotFound):
        store.renew_lease("nope", FENCE, 30)
    with pytest.raises(RunNotFound):
        store.release_run("nope", FENCE, RunStatus.INTERRUPTED)


def test_the_fenced_owner_writes_and_finishes(store: RunStore, clock: FakeClock) -> None:
    leased(store)
    store.save_results("run-1", [ok("1", 4.0), failed("2")], ProgressDelta(2, 1, 1), fence=FENCE)
    clock.advance(seconds=5)

    done = store.finish_run("run-1", RunStatus.SUCCEEDED, None, [AGG], fence=FENCE)

    assert (done.status, done.cases_done, done.scored, done.errored) == (
        RunStatus.SUCCEEDED,
        2,
        1,
        1,
    )
    assert done.finished_at == clock.now()
    assert (done.lease_owner, done.lease_expires_at) == (None, None)
    assert store.get_aggregates("run-1") == [AGG]
    with pytest.raises(LeaseLost):  # fenced: finished is no longer "ours"
        store.save_results("run-1", [ok("3", 1.0)], ProgressDelta(1, 1), fence=FENCE)
    with pytest.raises(RunFinished):  # unfenced: the old rule
        store.save_results("run-1", [ok("3", 1.0)], ProgressDelta(1, 1))


def test_a_taken_over_worker_is_fenced_off(store: RunStore) -> None:
    leased(store)
    store.save_results("run-1", [ok("1", 4.0)], ProgressDelta(1, 1), fence=FENCE)
    expire(store, "run-1")
    adopted = store.adopt_run("run-1", 1, Lease("worker-2", 30), max_attempts=3)
    assert adopted is not None

    # The old worker wakes up: every write it tries is refused and changes nothing.
    with pytest.raises(LeaseLost, match="attempt 2"):
        store.save_results("run-1", [ok("2", 1.0)], ProgressDelta(1, 1), fence=FENCE)
    with pytest.raises(LeaseLost):
        store.renew_lease("run-1", FENCE, 30)
    with pytest.raises(LeaseLost):
        store.finish_run("run-1", RunStatus.FAILED, "old worker", [], fence=FENCE)
    assert store.get_run("run-1") == adopted

    new_fence = Fence(2, "worker-2")
    store.save_results("run-1", [ok("2", 5.0)], ProgressDelta(1, 1), fence=new_fence)
    done = store.finish_run("run-1", RunStatus.SUCCEEDED, None, [AGG], fence=new_fence)
    assert (done.attempt, done.cases_done, done.scored) == (2, 2, 2)


# ------------------------------------------------------------ renew/release


def test_renew_lease_extends_it_and_stamps_the_heartbeat(store: RunStore, clock: FakeClock) -> None:
    created = leased(store)
    clock.advance(seconds=10)

    renewed = store.renew_lease("run-1", FENCE, 120)

    assert renewed.status is RunStatus.RUNNING
    assert created.lease_expires_at is not None
    assert renewed.lease_expires_at is not None
    assert created.heartbeat_at is not None
    assert renewed.heartbeat_at is not None
    assert renewed.heartbeat_at > created.heartbeat_at
    assert renewed.lease_expires_at == renewed.heartbeat_at + timedelta(seconds=120)
    assert store.get_run("run-1") == renewed
    with pytest.raises(ValueError, match="more than 0 seconds"):
        store.renew_lease("run-1", FENCE, 0)


def test_a_lease_expires_on_the_stores_clock(store: RunStore, clock: FakeClock) -> None:
    store.create_run(new_run(), lease=Lease("worker-1", 0.2))
    assert store.adoptable_run("support") is None

    clock.advance(seconds=0.25)

    orphan = store.adoptable_run("support")
    assert orphan is not None
    assert orphan.id == "run-1"
    # A late heartbeat from the owner still lands while nobody took the run over.
    store.renew_lease("run-1", FENCE, 30)
    assert store.adoptable_run("support") is None


def test_renew_reports_an_admin_pause(store: RunStore) -> None:
    leased(store)
    store.control_run("run-1", "pause")

    renewed = store.renew_lease("run-1", FENCE, 30)
    # The paused worker stores the cases it had in flight, then releases the run.
    store.save_results("run-1", [ok("1", 3.0)], ProgressDelta(1, 1), fence=FENCE)
    released = store.release_run("run-1", FENCE, RunStatus.PAUSED, "paused by an admin")

    assert renewed.status is RunStatus.PAUSED
    assert renewed.lease_owner == "worker-1"
    assert released.status is RunStatus.PAUSED
    assert (released.lease_owner, released.lease_expires_at) == (None, None)
    assert released.cases_done == 1
    assert store.adoptable_run("support") is None  # paused waits for a resume
    with pytest.raises(LeaseLost):
        store.save_results("run-1", [ok("2", 3.0)], ProgressDelta(1, 1), fence=FENCE)


@pytest.mark.parametrize("status", [RunStatus.INTERRUPTED, RunStatus.QUEUED])
def test_a_released_run_is_adoptable_at_once(store: RunStore, status: RunStatus) -> None:
    leased(store)

    released = store.release_run("run-1", FENCE, status, "shutting down")

    assert (released.status, released.status_reason) == (status, "shutting down")
    assert (released.lease_owner, released.lease_expires_at) == (None, None)
    assert released.heartbeat_at is not None  # the last sign of life is kept
    assert store.adoptable_run("support") == released


@pytest.mark.parametrize("status", [RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.CANCELLED])
def test_release_run_takes_only_unfinished_statuses(store: RunStore, status: RunStatus) -> None:
    created = leased(store)
    with pytest.raises(ValueError, match="release_run takes status"):
        store.release_run("run-1", FENCE, status)
    assert store.get_run("run-1") == created


# ---------------------------------------------------------------- adoption


def test_adoptable_run_is_the_oldest_candidate(store: RunStore, clock: FakeClock) -> None:
    leased(store, "live")  # running, lease valid
    clock.advance(seconds=1)
    store.create_run(new_run("cli"))  # running without a lease: never adopted
    clock.advance(seconds=1)
    leased(store, "paused")
    store.control_run("paused", "pause")
    leased(store, "done")
    store.finish_run("done", RunStatus.FAILED, None, [])
    store.create_run(new_run("elsewhere", suite="search"), status=RunStatus.QUEUED)
    clock.advance(seconds=1)
    store.create_run(new_run("queued-b"), status=RunStatus.QUEUED)
    store.create_run(new_run("queued-a"), status=RunStatus.QUEUED)  # same created_at
    clock.advance(seconds=1)
    leased(store, "interrupted")
    store.release_run("interrupted", FENCE, RunStatus.INTERRUPTED)

    def oldest() -> str | None:
        run = store.adoptable_run("support")
        return None if run is None else run.id

    assert oldest() == "queued-a"
    store.control_run("queued-a", "cancel")
    assert oldest() == "queued-b"
    store.control_run("queued-b", "pause")
    assert oldest() == "interrupted"
    expire(store, "live")  # the oldest of all, once its worker is gone
    assert oldest() == "live"
    assert store.adoptable_run("nowhere") is None


def test_adopt_run_takes_over_with_the_next_attempt(store: RunStore, clock: FakeClock) -> None:
    created = leased(store)
    expire(store, "run-1")
    clock.advance(seconds=60)
    before = store.db_now()

    adopted = store.adopt_run("run-1", 1, Lease("worker-2", 45), max_attempts=3)

    assert adopted is not None
    assert (adopted.status, adopted.attempt, adopted.lease_owner) == (
        RunStatus.RUNNING,
        2,
        "worker-2",
    )
    assert adopted.lease_expires_at is not None
    assert adopted.heartbeat_at is not None
    assert adopted.lease_expires_at >= before + timedelta(seconds=45)
    assert adopted.heartbeat_at >= before
    assert adopted.started_at == created.started_at  # charged to the day it started
    assert adopted.status_reason is None
    assert store.get_run("run-1") == adopted
    assert store.adoptable_run("support") is None


def test_only_one_of_two_adopters_wins(store: RunStore) -> None:
    store.create_run(new_run(), status=RunStatus.QUEUED)

    first = store.adopt_run("run-1", 0, Lease("worker-1", 30), max_attempts=3)
    second = store.adopt_run("run-1", 0, Lease("worker-2", 30), max_attempts=3)

    assert first is not None
    assert (first.attempt, first.lease_owner) == (1, "worker-1")
    assert second is None
    assert store.get_run("run-1") == first


def test_adopt_run_refuses_a_run_that_is_not_adoptable(store: RunStore) -> None:
    created = leased(store)  # live lease

    assert store.adopt_run("run-1", 1, Lease("worker-2", 30), max_attempts=3) is None
    expire(store, "run-1")
    assert store.adopt_run("run-1", 7, Lease("worker-2", 30), max_attempts=9) is None
    store.control_run("run-1", "pause")
    assert store.adopt_run("run-1", 1, Lease("worker-2", 30), max_attempts=3) is None
    assert store.get_run("run-1").attempt == created.attempt
    with pytest.raises(RunNotFound):
        store.adopt_run("nope", 1, Lease("worker-2", 30), max_attempts=3)
    with pytest.raises(ValueError, match="max_attempts"):
        store.adopt_run("run-1", 1, Lease("worker-2", 30), max_attempts=0)


def test_adoption_gives_up_after_max_attempts(store: RunStore, clock: FakeClock) -> None:
    leased(store)
    for attempt in (1, 2):
        expire(store, "run-1")
        adopted = store.adopt_run("run-1", attempt, Lease(f"w{attempt + 1}", 30), 3)
        assert adopted is not None
        assert adopted.attempt == attempt + 1
    store.save_results("run-1", [ok("1", 4.0)], ProgressDelta(5, 5), fence=Fence(3, "w3"))
    expire(store, "run-1")
    clock.advance(seconds=30)

    ended = store.adopt_run("run-1", 3, Lease("w4", 30), max_attempts=3)

    assert ended is not None
    assert ended.status is RunStatus.FAILED
    assert ended.status_reason == "gave up after 3 attempts; the last worker's lease expired"
    assert ended.attempt == 3
    assert ended.finished_at == clock.now()
    assert (ended.lease_owner, ended.lease_expires_at) == (None, None)
    assert (ended.cases_done, ended.scored) == (1, 1)  # recounted, not 5
    assert store.get_run("run-1") == ended
    assert store.adoptable_run("support") is None
    assert store.adopt_run("run-1", 3, Lease("w4", 30), max_attempts=9) is None


def test_an_interrupted_run_at_max_attempts_says_so(store: RunStore) -> None:
    leased(store)
    store.release_run("run-1", FENCE, RunStatus.INTERRUPTED)

    ended = store.adopt_run("run-1", 1, Lease("w2", 30), max_attempts=1)

    assert ended is not None
    assert ended.status is RunStatus.FAILED
    assert ended.status_reason == "gave up after 1 attempts; the last worker was interrupted"


def test_adoption_recounts_the_counters_from_the_stored_results(store: RunStore) -> None:
    leased(store)
    spent = Usage(100, 10, 0.5)
    # Case 1 on two scorers, case 2 errored, case 3 skipped: three cases done.
    store.save_results(
        "run-1",
        [
            ok("1", 4.0),
            ok("1", 1.0, scorer="contains"),
            failed("2"),
            CaseResult("tone", "3", "judge", ResultStatus.SKIPPED),
        ],
        ProgressDelta(cases_done=3, scored=2, errored=1, judge_usage=spent),
        fence=FENCE,
    )
    # The old worker also counted a case whose results it never stored.
    store.save_results("run-1", [], ProgressDelta(cases_done=1, scored=2), fence=FENCE)
    assert counters(store.get_run("run-1")) == (4, 4, 1, spent)
    expire(store, "run-1")

    adopted = store.adopt_run("run-1", 1, Lease("worker-2", 30), max_attempts=3)

    assert adopted is not None
    # Tokens and cost are money already spent and are kept as they were.
    assert counters(adopted) == (3, 2, 1, spent)
    assert store.case_result_counts("run-1") == {
        ("refunds", "1"): 2,
        ("refunds", "2"): 1,
        ("tone", "3"): 1,
    }


def test_case_result_counts(store: RunStore) -> None:
    store.create_run(new_run())
    assert store.case_result_counts("run-1") == {}

    store.save_results(
        "run-1",
        [ok("a", 1.0), ok("a", 1.0, scorer="contains"), ok("a", 0.0, feature="tone")],
        ProgressDelta(),
    )

    assert store.case_result_counts("run-1") == {("refunds", "a"): 2, ("tone", "a"): 1}
    with pytest.raises(RunNotFound):
        store.case_result_counts("nope")


# ------------------------------------------------------------------ control

_ALL = [
    RunStatus.QUEUED,
    RunStatus.RUNNING,
    RunStatus.PAUSED,
    RunStatus.INTERRUPTED,
    RunStatus.SUCCEEDED,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
    RunStatus.SKIPPED,
]

_EXPECTED: dict[ControlAction, dict[RunStatus, RunStatus]] = {
    "cancel": {
        RunStatus.QUEUED: RunStatus.CANCELLED,
        RunStatus.RUNNING: RunStatus.CANCELLED,
        RunStatus.PAUSED: RunStatus.CANCELLED,
        RunStatus.INTERRUPTED: RunStatus.CANCELLED,
    },
    "pause": {
        RunStatus.RUNNING: RunStatus.PAUSED,
        RunStatus.QUEUED: RunStatus.PAUSED,
        RunStatus.INTERRUPTED: RunStatus.PAUSED,
    },
    "resume": {RunStatus.PAUSED: RunStatus.QUEUED},
}
"""What each action does; any pair missing here leaves the run unchanged."""


def in_status(store: RunStore, status: RunStatus) -> RunRecord:
    """Create run-1 and bring it to ``status`` through the store's own operations."""
    if status is RunStatus.QUEUED:
        return store.create_run(new_run(), status=status)
    if status is RunStatus.SKIPPED:
        return store.create_run(new_run(), status=status)
    leased(store)
    if status is RunStatus.PAUSED:
        return store.control_run("run-1", "pause")
    if status is RunStatus.INTERRUPTED:
        return store.release_run("run-1", FENCE, status)
    if status.terminal:
        return store.finish_run("run-1", status, "earlier", [], fence=FENCE)
    return store.get_run("run-1")


@pytest.mark.parametrize("action", ["cancel", "pause", "resume"])
@pytest.mark.parametrize("status", _ALL, ids=[s.value for s in _ALL])
def test_control_run_matrix(
    store: RunStore, clock: FakeClock, action: ControlAction, status: RunStatus
) -> None:
    before = in_status(store, status)
    assert before.status is status
    clock.advance(seconds=10)

    after = store.control_run("run-1", action)

    assert store.get_run("run-1") == after
    expected = _EXPECTED[action].get(status)
    if expected is None:
        assert after == before  # terminal, or already there: unchanged
        return
    assert after.status is expected
    assert after.attempt == before.attempt
    if expected is RunStatus.CANCELLED:
        assert after.finished_at == clock.now()
        assert after.status_reason == "cancelled by an admin"
        assert (after.lease_owner, after.lease_expires_at) == (None, None)
    elif expected is RunStatus.PAUSED:
        assert after.finished_at is None
        assert after.status_reason == "paused by an admin"
        # A running worker keeps its lease to store its cases in flight.
        assert after.lease_owner == before.lease_owner
    else:
        assert after.status_reason is None
        assert (after.lease_owner, after.lease_expires_at) == (None, None)
        assert store.adoptable_run("support") == after
    # Whatever happened, the action is idempotent.
    assert store.control_run("run-1", action) == after


def test_cancel_stops_the_worker_at_its_next_write(store: RunStore) -> None:
    leased(store)
    store.save_results("run-1", [ok("1", 4.0)], ProgressDelta(1, 1), fence=FENCE)

    store.control_run("run-1", "cancel")

    with pytest.raises(LeaseLost):
        store.renew_lease("run-1", FENCE, 30)
    with pytest.raises(LeaseLost):
        store.save_results("run-1", [ok("2", 4.0)], ProgressDelta(1, 1), fence=FENCE)
    # The cancelled run keeps the aggregates of what finished.
    store.replace_aggregates("run-1", [AGG])
    assert store.get_aggregates("run-1") == [AGG]
    assert store.get_run("run-1").cases_done == 1


def test_control_run_of_an_unknown_run_or_action(store: RunStore) -> None:
    with pytest.raises(RunNotFound):
        store.control_run("nope", "cancel")
    store.create_run(new_run())
    with pytest.raises(ValueError, match="unknown action"):
        store.control_run("run-1", "explode")  # type: ignore[arg-type]


def test_replace_aggregates_replaces_the_whole_set(store: RunStore) -> None:
    store.create_run(new_run())
    old = ScoreAggregate("tone", "exact", mean=0.5, stderr=0.5, n=2, errors=0)
    store.finish_run("run-1", RunStatus.CANCELLED, None, [old, AGG])

    newer = replace(AGG, mean=3.0, n=3)
    store.replace_aggregates("run-1", [newer])

    assert store.get_aggregates("run-1") == [newer]
    store.replace_aggregates("run-1", [])
    assert store.get_aggregates("run-1") == []
    with pytest.raises(RunNotFound):
        store.replace_aggregates("nope", [AGG])


# --------------------------------------------------------- scheduler queries


def test_newest_scheduled_is_the_latest_started_scheduled_run(
    store: RunStore, clock: FakeClock
) -> None:
    assert store.newest_scheduled("support") is None
    store.create_run(new_run("old", run_type="scheduled", scheduled_for=SLOT))
    store.finish_run("old", RunStatus.SUCCEEDED, None, [])
    clock.advance(timedelta(hours=1))
    store.create_run(
        new_run("skipped", run_type="scheduled", scheduled_for=SLOT + timedelta(days=1)),
        status=RunStatus.SKIPPED,
    )
    clock.advance(timedelta(hours=1))
    store.create_run(new_run("manual"))  # newer, but manual
    store.create_run(new_run("other", suite="search", run_type="scheduled", scheduled_for=SLOT))

    newest = store.newest_scheduled("support")

    assert newest is not None
    assert newest.id == "skipped"
    other = store.newest_scheduled("search")
    assert other is not None
    assert other.id == "other"


def test_judge_spend_since_charges_a_run_to_when_it_started(
    store: RunStore, clock: FakeClock
) -> None:
    assert store.judge_spend_since(clock.now()) == 0.0
    day = clock.now()
    store.create_run(new_run("yesterday"))
    store.save_results("yesterday", [], ProgressDelta(judge_usage=Usage(1, 1, 4.0)))
    clock.advance(timedelta(hours=24))
    store.create_run(new_run("today-1"))
    clock.advance(timedelta(hours=1))
    store.create_run(new_run("today-2"))
    store.save_results("today-1", [], ProgressDelta(judge_usage=Usage(1, 1, 0.25)))
    store.save_results("today-2", [], ProgressDelta(judge_usage=Usage(1, 1, 0.5)))
    store.save_results("yesterday", [], ProgressDelta(judge_usage=Usage(1, 1, 1.0)))

    assert store.judge_spend_since(day + timedelta(hours=24)) == pytest.approx(0.75)
    assert store.judge_spend_since(day) == pytest.approx(5.75)
    assert store.judge_spend_since(day + timedelta(hours=26)) == 0.0
    with pytest.raises(ValueError, match="timezone-aware"):
        store.judge_spend_since(datetime(2025, 1, 1))  # noqa: DTZ001 - the point


# ---------------------------------------------------------------- SQL only


def test_without_a_clock_leases_are_on_the_database_clock(db_engine: Engine) -> None:
    store = SqlRunStore(db_engine)  # as in production

    now = store.db_now()
    assert now.tzinfo is UTC
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)  # the server runs on this host
    before = database_clock(db_engine)
    created = store.create_run(new_run(), lease=LEASE)
    after = database_clock(db_engine)

    assert created.heartbeat_at is not None
    assert created.lease_expires_at is not None
    assert before <= created.heartbeat_at <= after
    assert created.lease_expires_at == created.heartbeat_at + timedelta(seconds=30)
    assert abs(created.created_at - created.heartbeat_at) < timedelta(seconds=1)
    assert store.adoptable_run("support") is None
    # A lease of a microsecond has run out by the database's next statement, unwaited for.
    store.create_run(new_run("brief"), lease=Lease("worker-2", 0.000_001))
    orphan = store.adoptable_run("support")
    assert orphan is not None
    assert orphan.id == "brief"


def test_an_injected_clock_times_the_leases_too(db_engine: Engine) -> None:
    far_past = FakeClock(datetime(2001, 1, 1, tzinfo=UTC))
    store = SqlRunStore(db_engine, far_past)

    created = store.create_run(new_run(), lease=LEASE)

    assert created.created_at == far_past.now()
    assert created.heartbeat_at == far_past.now()
    assert created.lease_expires_at == far_past.now() + timedelta(seconds=30)
    # The database's clock is decades past that expiry; only the store's counts.
    assert store.adoptable_run("support") is None
    far_past.advance(seconds=30)
    orphan = store.adoptable_run("support")
    assert orphan is not None
    assert orphan.id == "run-1"


def test_sqlite_lease_times_are_stored_in_the_column_text_format(
    migrated_sqlite_url: str,
) -> None:
    # SQLite compares the text: a lease computed in SQL must look exactly like
    # a datetime SQLAlchemy wrote, or expiry comparisons go wrong.
    engine = make_engine(migrated_sqlite_url)
    try:
        SqlRunStore(engine, FakeClock()).create_run(new_run(), lease=LEASE)
        with engine.connect() as conn:
            created, expires, heartbeat = conn.execute(
                text("SELECT created_at, lease_expires_at, heartbeat_at FROM eval_runs")
            ).one()
    finally:
        engine.dispose()

    pattern = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}"
    for value in (created, expires, heartbeat):
        assert isinstance(value, str)
        assert re.fullmatch(pattern, value), value


def test_newest_scheduled_reads_its_index(db_engine: Engine) -> None:
    store = SqlRunStore(db_engine, FakeClock())
    base = datetime(2024, 1, 1, tzinfo=UTC)
    rows: list[dict[str, object]] = [
        {
            "id": f"r{i}",
            "suite": f"suite-{i % 20}",
            "run_type": "scheduled" if i % 3 else "manual",
            "status": "succeeded",
            "created_at": base + timedelta(minutes=i),
            "started_at": base + timedelta(minutes=i),
            "scheduled_for": base + timedelta(minutes=i),
            "features": [],
            "fingerprint": "fp",
        }
        for i in range(3000)
    ]
    with db_engine.begin() as conn:
        conn.execute(insert(eval_runs), rows)
        conn.exec_driver_sql("ANALYZE")
    statements: list[tuple[str, object]] = []

    def capture(*args: object) -> None:
        statements.append((str(args[2]), args[3]))

    event.listen(db_engine, "before_cursor_execute", capture)
    try:
        newest = store.newest_scheduled("suite-7")
    finally:
        event.remove(db_engine, "before_cursor_execute", capture)
    # SQLite's explicit BEGIN goes through the same hook.
    [(sql, params)] = [(sql, params) for sql, params in statements if sql.startswith("SELECT")]
    explain = "EXPLAIN " if db_engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    with db_engine.connect() as conn:
        plan = "\n".join(str(row) for row in conn.exec_driver_sql(explain + sql, params))  # type: ignore[arg-type]

    assert newest is not None
    assert newest.id == "r2987"
    assert "ix_eval_runs_suite_run_type_started_at" in plan, plan
    assert "Sort" not in plan, plan  # Postgres: the index gives the order
    assert "TEMP B-TREE" not in plan, plan  # SQLite: the same
    if db_engine.dialect.name == "postgresql":
        assert "Index Scan Backward" in plan, plan


BLOCKED_BY = text(
    "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid)))"
)
"""Postgres: whether some backend waits for a lock held by backend ``holder``."""


def wait_until_blocked(conn: Connection, waiter: threading.Thread, began: threading.Event) -> None:
    """Return once ``waiter`` waits for ``conn``'s open transaction to end; fail after 30 s.

    Postgres says so itself: a backend whose ``pg_blocking_pids`` names
    ``conn``'s. SQLite shows no waiting connection; there the condition is
    that the waiter sent its ``BEGIN IMMEDIATE`` (``began``), which cannot
    complete while ``conn`` holds the write lock. Either way the waiter must
    not have finished meanwhile.
    """
    if conn.dialect.name == "sqlite":
        assert began.wait(timeout=30), "the adopter never began its transaction"
        return
    holder = {"holder": conn.execute(text("SELECT pg_backend_pid()")).scalar_one()}
    deadline = time.monotonic() + 30
    with conn.engine.connect() as observer:
        while not observer.execute(BLOCKED_BY, holder).scalar_one():
            observer.rollback()  # the next look takes a fresh snapshot of the activity
            assert waiter.is_alive(), "the adopter finished without waiting"
            assert time.monotonic() < deadline, "the adopter never waited for the lock"
            waiter.join(timeout=0.01)


def test_adoption_waits_for_a_stale_workers_last_write_and_counts_it(
    db_engine: Engine,
) -> None:
    store = SqlRunStore(db_engine, FakeClock())
    store.create_run(new_run(), lease=LEASE)
    expire(store, "run-1")
    adopted: list[RunRecord | None] = []
    adopter = threading.Thread(
        target=lambda: adopted.append(
            store.adopt_run("run-1", 1, Lease("worker-2", 30), max_attempts=3)
        )
    )
    began = threading.Event()

    def note_begin(*args: object) -> None:
        if threading.current_thread() is adopter and args[2] == "BEGIN IMMEDIATE":
            began.set()

    event.listen(db_engine, "before_cursor_execute", note_begin)
    # The stale worker is inside save_results: its guarded update holds the
    # run's row (the write lock on SQLite) while its results go in.
    with for_writes(db_engine).begin() as conn:
        conn.execute(
            update(eval_runs)
            .where(eval_runs.c.id == "run-1")
            .values(cases_done=eval_runs.c.cases_done + 1)
        )
        conn.execute(
            insert(eval_results).values(
                run_id="run-1",
                feature="refunds",
                case_id="1",
                scorer="judge",
                status="ok",
                score=4.0,
                created_at=SLOT,
            )
        )
        adopter.start()
        wait_until_blocked(conn, adopter, began)
        assert adopter.is_alive()  # blocked behind the stale worker's transaction
    adopter.join(timeout=30)
    event.remove(db_engine, "before_cursor_execute", note_begin)

    [run] = adopted
    assert run is not None
    assert (run.attempt, run.cases_done, run.scored) == (2, 1, 1)
