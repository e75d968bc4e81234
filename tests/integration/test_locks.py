"""Suite locks: Postgres advisory locks and SQLite lease rows.

Two ``SuiteLocks`` objects on two engines stand for two replicas. The one
``slow`` test runs two real processes against one SQLite file. The locks are
always on the database's clock, so the stores beside them have no clock of
their own, as in production; a lock row or a run's lease that must have run
out is written in the past on that clock, never waited for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text, update

from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.locks import (
    PostgresAdvisoryLock,
    PostgresAdvisoryLocks,
    SqliteLeaseLocks,
    advisory_key,
    make_suite_locks,
)
from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.adapters.db.tables import eval_runs, suite_locks
from continuous_eval.core.models import Lease
from continuous_eval.errors import StoreError
from continuous_eval.testing.builders import new_run

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_advisory_key_is_stable_and_spreads_suites() -> None:
    # Fixed for ever: replicas of different versions must agree on it.
    assert advisory_key("support") == -2355014020118142769
    assert advisory_key("support") == advisory_key("support")
    keys = {advisory_key(f"suite-{n}") for n in range(10_000)}
    assert len(keys) == 10_000
    assert all(-(2**63) <= key < 2**63 for key in keys)
    assert any(key < 0 for key in keys)
    assert any(key > 0 for key in keys)


def test_make_suite_locks_picks_the_backend(migrated_sqlite_url: str) -> None:
    engine = make_engine(migrated_sqlite_url)
    try:
        assert isinstance(make_suite_locks(engine, lease_seconds=5), SqliteLeaseLocks)
        with pytest.raises(ValueError, match="more than 0 seconds"):
            make_suite_locks(engine, lease_seconds=0)
    finally:
        engine.dispose()


# ----------------------------------------------------------------- Postgres


@pytest.fixture
def pg_engines(postgres_url: str) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on one migrated Postgres database: two replicas."""
    first, second = make_engine(postgres_url), make_engine(postgres_url)
    try:
        yield first, second
    finally:
        first.dispose()
        second.dispose()


def advisory_locks(engine: Engine) -> list[tuple[int, int]]:
    """(pid, objid) of every one-bigint advisory lock held in the engine's database."""
    with engine.connect() as conn:
        return [
            (row.pid, row.objid)
            for row in conn.execute(
                text(
                    "SELECT pid, objid FROM pg_locks WHERE locktype = 'advisory' "
                    "AND objsubid = 1 AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            )
        ]


def backend_alive(engine: Engine, pid: int) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            ).scalar()
        )


def pg_lock(locks: PostgresAdvisoryLocks, suite: str, owner: str) -> PostgresAdvisoryLock:
    lock = locks.try_acquire(suite, owner)
    assert lock is not None, f"{owner} could not lock {suite}"
    return lock


@pytest.mark.postgres
def test_postgres_locks_exclude_each_other(pg_engines: tuple[Engine, Engine]) -> None:
    first, second = pg_engines
    a = PostgresAdvisoryLocks(first, lease_seconds=5)
    b = PostgresAdvisoryLocks(second, lease_seconds=5)
    try:
        held = pg_lock(a, "support", "replica-a")

        assert held.check()
        assert b.try_acquire("support", "replica-b") is None
        assert a.try_acquire("support", "replica-a") is None  # not re-entrant
        assert b.try_acquire("search", "replica-b") is not None  # another suite
        assert held.check()  # a refused attempt changes nothing for the holder

        held.release()
        held.release()  # idempotent

        assert not held.check()
        assert pg_lock(b, "support", "replica-b").check()
    finally:
        a.close()
        b.close()


@pytest.mark.postgres
def test_postgres_locks_live_on_their_own_connections(
    pg_engines: tuple[Engine, Engine],
) -> None:
    first, _ = pg_engines
    locks = PostgresAdvisoryLocks(first, lease_seconds=5)
    support = pg_lock(locks, "support", "replica-a")
    search = pg_lock(locks, "search", "replica-a")

    assert support.backend_pid != search.backend_pid
    held = advisory_locks(first)
    assert {pid for pid, _objid in held} == {support.backend_pid, search.backend_pid}
    assert (support.backend_pid, advisory_key("support") & 0xFFFF_FFFF) in held

    support.release()
    assert [pid for pid, _objid in advisory_locks(first)] == [search.backend_pid]
    assert not backend_alive(first, support.backend_pid)  # closed, not pooled

    locks.close()  # releases what is still held
    assert advisory_locks(first) == []
    assert not backend_alive(first, search.backend_pid)
    with pytest.raises(StoreError, match="closed"):
        locks.try_acquire("support", "replica-a")


@pytest.mark.postgres
def test_a_killed_lock_connection_is_reported_not_raised(
    pg_engines: tuple[Engine, Engine],
) -> None:
    first, second = pg_engines
    locks = PostgresAdvisoryLocks(first, lease_seconds=5)
    try:
        held = pg_lock(locks, "support", "replica-a")
        with second.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": held.backend_pid})

        assert held.check() is False
        held.release()  # a dead connection: nothing to unlock, nothing raised

        # The process keeps working: the suite can be taken again at once.
        again = pg_lock(locks, "support", "replica-a")
        assert again.check()
    finally:
        locks.close()
    assert advisory_locks(first) == []


@pytest.mark.postgres
def test_a_stalled_holder_is_fenced_off(pg_engines: tuple[Engine, Engine]) -> None:
    first, second = pg_engines
    a = PostgresAdvisoryLocks(first, lease_seconds=5)
    b = PostgresAdvisoryLocks(second, lease_seconds=5)
    store = SqlRunStore(first)  # on the database's clock, like the locks
    try:
        stalled = pg_lock(a, "support", "replica-a")
        store.create_run(new_run(), lease=Lease("replica-a", 30))
        assert b.try_acquire("support", "replica-b") is None  # the lease is live

        # replica-a stops renewing (SIGSTOP, a hung loop): its lease runs out
        # now, by the database's clock, while its session holds the lock.
        with first.begin() as conn:
            conn.execute(update(eval_runs).values(lease_expires_at=store.db_now()))
        taken = b.try_acquire("support", "replica-b")

        assert taken is not None
        assert taken.check()
        assert not backend_alive(first, stalled.backend_pid)
        assert stalled.check() is False  # what replica-a sees when it wakes up
        stalled.release()
        assert [pid for pid, _objid in advisory_locks(first)] == [taken.backend_pid]
    finally:
        a.close()
        b.close()


@pytest.mark.postgres
def test_a_newcomer_adopting_an_old_orphan_is_not_fenced(
    pg_engines: tuple[Engine, Engine],
) -> None:
    first, second = pg_engines
    store = SqlRunStore(first)  # on the database's clock, like the locks
    store.create_run(new_run(), lease=Lease("crashed-replica", 30))
    past = store.db_now() - timedelta(hours=1)
    with first.begin() as conn:  # its worker died long before anyone took the lock
        conn.execute(update(eval_runs).values(lease_expires_at=past))
    a = PostgresAdvisoryLocks(first, lease_seconds=5)
    b = PostgresAdvisoryLocks(second, lease_seconds=5)
    try:
        newcomer = pg_lock(a, "support", "replica-a")

        assert b.try_acquire("support", "replica-b") is None
        assert newcomer.check()
    finally:
        a.close()
        b.close()


# ------------------------------------------------------------------- SQLite


@pytest.fixture
def sqlite_engines(migrated_sqlite_url: str) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on one migrated SQLite file: two processes."""
    first, second = make_engine(migrated_sqlite_url), make_engine(migrated_sqlite_url)
    try:
        yield first, second
    finally:
        first.dispose()
        second.dispose()


def lapse_lock_rows(engine: Engine) -> None:
    """Put every lock row's expiry an hour in the past, as if its holder stopped renewing."""
    past = datetime.now(UTC) - timedelta(hours=1)  # SQLite's clock is this process's
    with engine.begin() as conn:
        conn.execute(update(suite_locks).values(expires_at=past))


def lock_rows(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT suite, owner FROM suite_locks"))
        return [(str(suite), str(owner)) for suite, owner in rows]


def test_sqlite_locks_exclude_each_other(sqlite_engines: tuple[Engine, Engine]) -> None:
    first, second = sqlite_engines
    a = SqliteLeaseLocks(first, lease_seconds=30)
    b = SqliteLeaseLocks(second, lease_seconds=30)

    held = a.try_acquire("support", "replica-a")

    assert held is not None
    assert held.check()
    assert b.try_acquire("support", "replica-b") is None
    assert a.try_acquire("support", "replica-a") is None  # not re-entrant
    assert b.try_acquire("search", "replica-b") is not None
    assert sorted(lock_rows(first)) == [("search", "replica-b"), ("support", "replica-a")]

    held.release()
    held.release()

    assert not held.check()
    assert lock_rows(first) == [("search", "replica-b")]
    assert b.try_acquire("support", "replica-b") is not None
    b.close()
    a.close()
    assert lock_rows(first) == []
    with pytest.raises(StoreError, match="closed"):
        b.try_acquire("support", "replica-b")


def test_an_expired_sqlite_lock_is_taken_over(sqlite_engines: tuple[Engine, Engine]) -> None:
    first, second = sqlite_engines
    a = SqliteLeaseLocks(first, lease_seconds=30)
    b = SqliteLeaseLocks(second, lease_seconds=30)
    old = a.try_acquire("support", "replica-a")
    assert old is not None
    assert b.try_acquire("support", "replica-b") is None

    lapse_lock_rows(first)  # replica-a stopped renewing
    new = b.try_acquire("support", "replica-b")

    assert new is not None
    assert old.check() is False
    old.release()  # must not delete replica-b's row
    assert new.check()
    assert lock_rows(first) == [("support", "replica-b")]


def test_check_renews_a_sqlite_lock(sqlite_engines: tuple[Engine, Engine]) -> None:
    first, second = sqlite_engines
    a = SqliteLeaseLocks(first, lease_seconds=30)
    b = SqliteLeaseLocks(second, lease_seconds=30)
    held = a.try_acquire("support", "replica-a")
    assert held is not None

    lapse_lock_rows(first)  # the row as taken has run out: only a renewal keeps it
    assert held.check()  # now + 30 s again

    assert b.try_acquire("support", "replica-b") is None
    assert held.check()


def test_a_stalled_sqlite_holder_is_fenced_off(sqlite_engines: tuple[Engine, Engine]) -> None:
    first, second = sqlite_engines
    a = SqliteLeaseLocks(first, lease_seconds=30)  # the lock row alone would last 30 s
    b = SqliteLeaseLocks(second, lease_seconds=30)
    stalled = a.try_acquire("support", "replica-a")
    assert stalled is not None
    store = SqlRunStore(first)  # on the database's clock, like the locks
    store.create_run(new_run(), lease=Lease("replica-a", 30))
    assert b.try_acquire("support", "replica-b") is None

    # replica-a took the lock a minute ago and stalled; its run's lease ran out since.
    now = store.db_now()
    with first.begin() as conn:
        conn.execute(update(suite_locks).values(acquired_at=now - timedelta(minutes=1)))
        conn.execute(update(eval_runs).values(lease_expires_at=now - timedelta(seconds=30)))
    taken = b.try_acquire("support", "replica-b")

    assert taken is not None
    assert stalled.check() is False
    assert lock_rows(first) == [("support", "replica-b")]


def test_a_restarted_process_with_the_same_owner_takes_its_row_back(
    sqlite_engines: tuple[Engine, Engine],
) -> None:
    first, second = sqlite_engines
    crashed = SqliteLeaseLocks(first, lease_seconds=30)
    assert crashed.try_acquire("support", "replica-a") is not None  # never released

    restarted = SqliteLeaseLocks(second, lease_seconds=30)

    assert restarted.try_acquire("support", "replica-a") is not None
    assert SqliteLeaseLocks(second, lease_seconds=30).try_acquire("support", "other") is None


def test_sqlite_lock_check_and_release_never_raise(sqlite_engines: tuple[Engine, Engine]) -> None:
    first, _ = sqlite_engines
    locks = SqliteLeaseLocks(first, lease_seconds=30)
    held = locks.try_acquire("support", "replica-a")
    assert held is not None
    with first.begin() as conn:
        conn.execute(text("DROP TABLE suite_locks"))

    assert held.check() is False
    held.release()
    locks.close()


# ---------------------------------------------------------------- processes

# Each process takes and releases the suite as fast as it can for a while and
# writes down, on the system-wide monotonic clock, every interval it held it.
_HAMMER = """
import json, os, random, sys, time
from pathlib import Path
from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.locks import SqliteLeaseLocks

barrier, owner = Path(os.environ["BARRIER"]), os.environ["OWNER"]
engine = make_engine(os.environ["URL"])
locks = SqliteLeaseLocks(engine, lease_seconds=30)
(barrier / owner).touch()
while len(list(barrier.iterdir())) < 2:
    time.sleep(0.001)
held, deadline = [], time.monotonic() + float(os.environ["SECONDS"])
while time.monotonic() < deadline:
    lock = locks.try_acquire("support", owner)
    if lock is None:
        time.sleep(random.uniform(0, 0.002))
        continue
    start = time.monotonic()
    time.sleep(random.uniform(0, 0.003))
    end = time.monotonic()
    lock.release()
    held.append((start, end))
json.dump(held, sys.stdout)
engine.dispose()
"""


@pytest.mark.slow
def test_two_processes_never_hold_one_sqlite_suite_at_once(
    migrated_sqlite_url: str, tmp_path: Path
) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _HAMMER],
            cwd=REPO_ROOT,
            env={
                **os.environ,
                "URL": migrated_sqlite_url,
                "BARRIER": str(barrier),
                "OWNER": owner,
                "SECONDS": "2",
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for owner in ("replica-a", "replica-b")
    ]
    outputs = [process.communicate(timeout=60) for process in processes]
    assert [p.returncode for p in processes] == [0, 0], [err for _out, err in outputs]
    a, b = (json.loads(out) for out, _err in outputs)

    # Both really competed, and took turns.
    assert len(a) > 20, len(a)
    assert len(b) > 20, len(b)
    overlaps = [
        (first, second)
        for first in a
        for second in b
        if first[0] < second[1] and second[0] < first[1]
    ]
    assert overlaps == []
