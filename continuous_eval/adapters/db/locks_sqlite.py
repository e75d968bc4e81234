"""Suite locks on SQLite: a lease row per suite in ``suite_locks``.

What belongs here: ``SqliteLeaseLocks`` and the one held ``SqliteLeaseLock``.
SQLite has no advisory locks, so a lock is a row with an expiry on the
database's clock, renewed by ``check()``; a holder that stalls while its
run's lease expires (see ``locks_stale``) has its row simply taken over.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import Connection, Engine, delete, insert, select, type_coerce, update
from sqlalchemy.exc import SQLAlchemyError

from continuous_eval.adapters.db.engine import describe_error, for_writes
from continuous_eval.adapters.db.locks_stale import stale_holder
from continuous_eval.adapters.db.store import sqlite_clock
from continuous_eval.adapters.db.tables import suite_locks
from continuous_eval.adapters.db.types import UTCDateTime
from continuous_eval.core.lifecycle import check_seconds
from continuous_eval.errors import StoreError

# Logged under the name the locks logged under before the split: operators filter on it.
log = logging.getLogger("continuous_eval.adapters.db.locks")


class SqliteLeaseLocks:
    """Suite locks as lease rows in ``suite_locks``, for SQLite, which has no advisory locks.

    Taking a lock is one ``BEGIN IMMEDIATE`` transaction, which holds
    SQLite's single write lock from its first statement: it reads the suite's
    row and inserts it, or takes it over when it expired (database clock), is
    already this owner's, or its holder is stale. No two processes can both
    see the row free. ``check()`` renews the row; a holder that stops renewing
    loses the suite once ``lease_seconds`` pass.

    ``owner`` must identify the process (e.g. host, pid and a random part):
    a row with the caller's owner counts as its own.

    Args:
        engine: An engine on the migrated database, shared with the store;
            ``close()`` leaves it open (its owner disposes of it).
        lease_seconds: How long a lock row lives without a ``check()``.
    """

    def __init__(self, engine: Engine, *, lease_seconds: float) -> None:
        check_seconds(lease_seconds)
        self._writer = for_writes(engine)
        self._lease_seconds = lease_seconds
        self._mutex = threading.Lock()
        self._held: dict[str, SqliteLeaseLock] = {}
        self._closed = False

    def try_acquire(self, suite: str, owner: str) -> SqliteLeaseLock | None:
        """Take the suite's lease row without waiting; None when another owner holds it.

        A suite this object already holds is refused, as on Postgres.

        Raises:
            StoreError: The database failed, or this object is closed.
        """
        with self._mutex:
            if self._closed:
                raise StoreError("the suite locks are closed")
            if suite in self._held:
                return None
            try:
                with self._writer.begin() as conn:
                    taken = self._take(conn, suite, owner)
            except SQLAlchemyError as exc:
                raise StoreError(
                    f"could not lock suite {suite!r}: {describe_error(exc, self._writer.url)}"
                ) from exc
            if not taken:
                return None
            lock = SqliteLeaseLock(suite, owner, self._writer, self._lease_seconds, self._forget)
            self._held[suite] = lock
            return lock

    def close(self) -> None:
        """Release every lock this object holds. Never raises."""
        with self._mutex:
            self._closed = True
            held = list(self._held.values())
        for lock in held:
            lock.release()

    def _forget(self, lock: SqliteLeaseLock) -> None:
        with self._mutex:
            if self._held.get(lock.suite) is lock:
                del self._held[lock.suite]

    def _take(self, conn: Connection, suite: str, owner: str) -> bool:
        rows = suite_locks.c
        now = type_coerce(sqlite_clock(), UTCDateTime())
        expiry = type_coerce(sqlite_clock(self._lease_seconds), UTCDateTime())
        current = conn.execute(
            select(
                rows.owner,
                (rows.expires_at <= now).label("expired"),
                stale_holder(suite, rows.acquired_at, now).label("stale"),
            ).where(rows.suite == suite)
        ).one_or_none()
        if current is None:
            conn.execute(
                insert(suite_locks).values(
                    suite=suite, owner=owner, acquired_at=now, expires_at=expiry
                )
            )
            return True
        if not (current.expired or current.stale or current.owner == owner):
            return False
        if current.stale and not current.expired:
            log.warning(
                "fencing off a stale suite lock holder",
                extra={"event": "suite_lock_fenced", "suite": suite, "holder": current.owner},
            )
        conn.execute(
            update(suite_locks)
            .where(rows.suite == suite)
            .values(owner=owner, acquired_at=now, expires_at=expiry)
        )
        return True


class SqliteLeaseLock:
    """One held lease row; ``check()`` renews it, ``release()`` deletes it."""

    def __init__(
        self,
        suite: str,
        owner: str,
        writer: Engine,
        lease_seconds: float,
        on_release: Callable[[SqliteLeaseLock], None],
    ) -> None:
        self.suite = suite
        """The suite this lock is for."""
        self.owner = owner
        """The owner written in the row."""
        self._writer = writer
        self._lease_seconds = lease_seconds
        self._on_release = on_release
        self._mutex = threading.Lock()
        self._released = False

    def check(self) -> bool:
        """Renew the row if it is still this owner's and say so; False on any error, never raises.

        Guarded on the owner only: a row whose lease ran out but that nobody
        took over is still safely ours, since taking it over rewrites the owner.
        """
        with self._mutex:
            if self._released:
                return False
            rows = suite_locks.c
            renew = (
                update(suite_locks)
                .where(rows.suite == self.suite, rows.owner == self.owner)
                .values(expires_at=type_coerce(sqlite_clock(self._lease_seconds), UTCDateTime()))
            )
            try:
                with self._writer.begin() as conn:
                    return conn.execute(renew).rowcount == 1
            except Exception as exc:
                log.warning(
                    "renewing the suite lock failed",
                    extra={
                        "event": "suite_lock_lost",
                        "suite": self.suite,
                        "error": describe_error(exc, self._writer.url),
                    },
                )
                return False

    def release(self) -> None:
        """Delete the row if it is still this owner's. Idempotent, synchronous, never raises."""
        with self._mutex:
            if self._released:
                return
            self._released = True
            rows = suite_locks.c
            try:
                with self._writer.begin() as conn:
                    conn.execute(
                        delete(suite_locks).where(
                            rows.suite == self.suite, rows.owner == self.owner
                        )
                    )
            except Exception as exc:
                # The row then expires by itself after lease_seconds.
                log.warning(
                    "releasing the suite lock failed",
                    extra={
                        "event": "suite_lock_release_failed",
                        "suite": self.suite,
                        "error": describe_error(exc, self._writer.url),
                    },
                )
        self._on_release(self)
