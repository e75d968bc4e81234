"""Suite locks on Postgres: a session-level advisory lock per suite.

What belongs here: the advisory key of a suite, ``PostgresAdvisoryLocks``
and the one held ``PostgresAdvisoryLock``, and the catalog queries they need
(``pg_locks``, ``pg_stat_activity``). A holder that stalls while its run's
lease expires (see ``locks_stale``) is fenced off by the next acquirer with
``pg_terminate_backend``, which drops its session and with it the lock.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    NullPool,
    cast,
    column,
    create_engine,
    exists,
    func,
    literal,
    select,
    table,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import OID
from sqlalchemy.exc import SQLAlchemyError

from continuous_eval.adapters.db.engine import describe_error
from continuous_eval.adapters.db.locks_stale import stale_holder
from continuous_eval.adapters.db.types import UTCDateTime
from continuous_eval.core.lifecycle import check_seconds
from continuous_eval.errors import StoreError

# Logged under the name the locks logged under before the split: operators filter on it.
log = logging.getLogger("continuous_eval.adapters.db.locks")

KEY_NAMESPACE = "continuous-eval:"
"""Prefix hashed with the suite name, so other applications' advisory keys do not collide."""

FENCE_WAIT_S = 5.0
"""How long a fencing acquirer waits for a terminated holder's session to end."""


def advisory_key(suite: str) -> int:
    """Return the suite's Postgres advisory lock key: a stable signed 64-bit integer.

    The first 8 bytes of SHA-256 of ``"continuous-eval:" + suite``, read as a
    signed big-endian integer. Stable across processes, versions and machines,
    unlike ``hash()``, which is salted per process: every replica must compute
    the same key for the same suite.
    """
    digest = hashlib.sha256((KEY_NAMESPACE + suite).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_pg_locks = table(
    "pg_locks",
    column("locktype"),
    column("database"),
    column("classid"),
    column("objid"),
    column("objsubid"),
    column("pid"),
    column("granted"),
)
_pg_stat_activity = table("pg_stat_activity", column("pid"), column("backend_start"))
_pg_database = table("pg_database", column("oid"), column("datname"))


def _advisory_lock_rows(key: int) -> list[ColumnElement[bool]]:
    """Conditions selecting the ``pg_locks`` row of a granted one-``bigint`` advisory lock.

    ``pg_locks`` shows a bigint key split in two unsigned 32-bit halves:
    ``classid`` the high half, ``objid`` the low one, and ``objsubid = 1`` for
    the one-bigint form (2 is the two-integer form the migration lock uses).
    """
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    locks = _pg_locks.c
    return [
        locks.locktype == "advisory",
        locks.granted.is_(True),
        locks.objsubid == 1,
        locks.classid == cast(literal(unsigned >> 32), OID),
        locks.objid == cast(literal(unsigned & 0xFFFF_FFFF), OID),
    ]


class PostgresAdvisoryLocks:
    """Suite locks as session-level ``pg_try_advisory_lock`` on dedicated connections.

    Each held lock owns one connection, opened for it from a private engine
    with ``NullPool`` in autocommit mode. ``NullPool`` is the point: closing
    the connection really disconnects, so a lock can never ride a pooled
    connection into some other code, and even a failed unlock is undone by the
    disconnect that follows. Autocommit keeps the session idle between
    statements rather than "idle in transaction", which would pin a snapshot.

    Args:
        engine: An engine on the database; only its URL is used.
        lease_seconds: Bounds how long a statement on a lock connection may
            wait for a dead server (TCP user timeout, keepalives, connect timeout).
    """

    def __init__(self, engine: Engine, *, lease_seconds: float) -> None:
        check_seconds(lease_seconds)
        timeout_ms = max(1000, int(lease_seconds * 1000))
        self._engine = create_engine(
            engine.url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={
                "connect_timeout": max(1, int(lease_seconds)),
                # A held lock's connection sits idle for long stretches: without
                # these, a vanished server is only noticed after the OS default of
                # two hours, and check() would hang instead of answering False.
                "keepalives": 1,
                "keepalives_idle": max(1, int(lease_seconds / 3)),
                "keepalives_interval": max(1, int(lease_seconds / 3)),
                "keepalives_count": 3,
                "tcp_user_timeout": timeout_ms,
            },
        )
        self._mutex = threading.Lock()
        self._held: dict[str, PostgresAdvisoryLock] = {}
        self._closed = False

    def try_acquire(self, suite: str, owner: str) -> PostgresAdvisoryLock | None:
        """Take the suite's advisory lock without waiting; None when another session holds it.

        When the lock is busy and its holder is stale (see ``locks_stale``),
        the holder's backend is terminated and the lock tried once more. A
        suite this object already holds is refused: the lock is not
        re-entrant, exactly as between two replicas.

        Raises:
            StoreError: The database is unreachable, or this object is closed.
        """
        with self._mutex:
            if self._closed:
                raise StoreError("the suite locks are closed")
            if suite in self._held:
                return None
            key = advisory_key(suite)
            try:
                conn = self._engine.connect()
            except SQLAlchemyError as exc:
                raise StoreError(
                    f"could not lock suite {suite!r}: {describe_error(exc, self._engine.url)}"
                ) from exc
            try:
                pid = _try_lock(conn, key)
                if pid is None and self._fence_stale_holder(conn, suite, key):
                    pid = _try_lock(conn, key)
            except BaseException as exc:
                _close_quietly(conn)
                if isinstance(exc, SQLAlchemyError):
                    raise StoreError(
                        f"could not lock suite {suite!r}: {describe_error(exc, self._engine.url)}"
                    ) from exc
                raise
            if pid is None:
                _close_quietly(conn)
                return None
            lock = PostgresAdvisoryLock(suite, owner, key, conn, pid, self._forget)
            self._held[suite] = lock
            return lock

    def close(self) -> None:
        """Release every lock this object holds and dispose of its engine. Never raises."""
        with self._mutex:
            self._closed = True
            held = list(self._held.values())
        for lock in held:
            lock.release()
        try:
            self._engine.dispose()
        except Exception:  # pragma: no cover - dispose of a NullPool holds nothing
            log.debug("disposing of the lock engine failed", exc_info=True)

    def _forget(self, lock: PostgresAdvisoryLock) -> None:
        with self._mutex:
            if self._held.get(lock.suite) is lock:
                del self._held[lock.suite]

    def _fence_stale_holder(self, conn: Connection, suite: str, key: int) -> bool:
        """Terminate the stale holder of ``suite``'s lock; return whether one was terminated."""
        locks, activity = _pg_locks.c, _pg_stat_activity.c
        holder = conn.execute(
            select(locks.pid)
            .select_from(_pg_locks.join(_pg_stat_activity, activity.pid == locks.pid))
            .where(
                *_advisory_lock_rows(key),
                locks.database
                == select(_pg_database.c.oid)
                .where(_pg_database.c.datname == func.current_database())
                .scalar_subquery(),
                stale_holder(suite, activity.backend_start, type_coerce(func.now(), UTCDateTime())),
            )
        ).scalar_one_or_none()
        if holder is None:
            return False
        log.warning(
            "fencing off a stale suite lock holder",
            extra={"event": "suite_lock_fenced", "suite": suite, "backend_pid": holder},
        )
        wait_ms = int(FENCE_WAIT_S * 1000)
        try:
            if conn.dialect.server_version_info and conn.dialect.server_version_info >= (14,):
                # Waits until the backend has exited, so its locks are gone.
                return bool(
                    conn.execute(select(func.pg_terminate_backend(holder, wait_ms))).scalar()
                )
            if not conn.execute(select(func.pg_terminate_backend(holder))).scalar():
                return False
            _wait_gone(conn, holder, FENCE_WAIT_S)
            return True
        except SQLAlchemyError as exc:
            # Most often: not allowed to signal that backend (another role).
            log.warning(
                "could not terminate the stale suite lock holder",
                extra={
                    "event": "suite_lock_fence_failed",
                    "suite": suite,
                    "backend_pid": holder,
                    "error": describe_error(exc, self._engine.url),
                },
            )
            return False


class PostgresAdvisoryLock:
    """One held advisory lock and the connection it lives on.

    ``check`` and ``release`` are serialised by a mutex: they may come from
    different threads (a heartbeat and a ``finally``) and share one connection.
    """

    def __init__(
        self,
        suite: str,
        owner: str,
        key: int,
        connection: Connection,
        backend_pid: int,
        on_release: Callable[[PostgresAdvisoryLock], None],
    ) -> None:
        self.suite = suite
        """The suite this lock is for."""
        self.owner = owner
        """Who took it (for logs; Postgres itself knows only the backend)."""
        self.key = key
        """The advisory key (``advisory_key(suite)``)."""
        self.backend_pid = backend_pid
        """The server process holding the lock, as ``pg_locks.pid`` shows it."""
        self._conn = connection
        self._on_release = on_release
        self._mutex = threading.Lock()
        self._released = False

    def check(self) -> bool:
        """Return whether this session still holds the lock; False on any error, never raises."""
        with self._mutex:
            if self._released:
                return False
            locks = _pg_locks.c
            try:
                held = self._conn.execute(
                    select(
                        exists().where(
                            *_advisory_lock_rows(self.key), locks.pid == func.pg_backend_pid()
                        )
                    )
                ).scalar()
            except Exception as exc:
                log.warning(
                    "the suite lock's connection failed",
                    extra={
                        "event": "suite_lock_lost",
                        "suite": self.suite,
                        "error": describe_error(exc, self._conn.engine.url),
                    },
                )
                return False
            return bool(held)

    def release(self) -> None:
        """Unlock and close the connection. Idempotent, synchronous, never raises.

        When the connection is already dead, the server already dropped the
        lock with the session; closing is all that is left to do.
        """
        with self._mutex:
            if self._released:
                return
            self._released = True
            try:
                self._conn.execute(select(func.pg_advisory_unlock(self.key)))
            except Exception:
                log.debug("unlocking suite %s failed", self.suite, exc_info=True)
            finally:
                _close_quietly(self._conn)
        self._on_release(self)


def _try_lock(conn: Connection, key: int) -> int | None:
    """Try the advisory lock on ``conn``; return the backend pid when taken, else None."""
    got, pid = conn.execute(select(func.pg_try_advisory_lock(key), func.pg_backend_pid())).one()
    return int(pid) if got else None


def _wait_gone(conn: Connection, pid: int, timeout_s: float) -> None:
    """Wait (bounded) until backend ``pid`` has exited; for servers before Postgres 14."""
    deadline = time.monotonic() + timeout_s
    activity = _pg_stat_activity.c
    while time.monotonic() < deadline:
        if not conn.execute(select(exists().where(activity.pid == pid))).scalar():
            return
        time.sleep(0.05)


def _close_quietly(conn: Connection) -> None:
    try:
        conn.close()
    except Exception:
        log.debug("closing a suite lock connection failed", exc_info=True)
