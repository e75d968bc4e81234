"""Cross-process suite locks: a Postgres advisory lock, or a lease row on SQLite.

The lock makes one replica at a time run a suite; the run's own lease and
fence (see ``store``) keep the data right even if two ever overlapped. A lock
holder that stalls (SIGSTOP, a hung event loop, a frozen VM) while its run's
lease expires is fenced off by the next acquirer, so a stopped process cannot
block a takeover forever:

- Postgres: the holder's backend is terminated with ``pg_terminate_backend``,
  which drops its session and with it the advisory lock;
- SQLite: its lease row is simply taken over.

A holder counts as stale only when one of the suite's runs has a lease that
expired while the holder held the lock and no run of the suite has a live
lease; ``locks_stale`` states the rule and why.

The locks are always on the database's clock (the SQLite rows' expiries, the
rule's now), never on an injected one, unlike the store (``base.StoreTime``).
A Postgres lock has no expiry to move: it lasts as long as its session, and
the rule dates its holder by ``pg_stat_activity.backend_start``, which only
the server's clock writes. In production the store beside them has no clock
either, so both are on the database's; wire them only with such a store,
since the rule compares the store's leases with the database's now.

Only ``make_suite_locks``, which picks the ``SuiteLocks`` for the engine's
database, belongs in this module: the Postgres locks live in
``locks_postgres``, the SQLite locks in ``locks_sqlite``, the staleness rule
both apply in ``locks_stale``. The lock classes, ``advisory_key``,
``KEY_NAMESPACE`` and ``FENCE_WAIT_S``, defined here before that split, are
re-exported.
"""

from __future__ import annotations

from sqlalchemy import Engine

from continuous_eval.adapters.db.locks_postgres import (
    FENCE_WAIT_S,
    KEY_NAMESPACE,
    PostgresAdvisoryLock,
    PostgresAdvisoryLocks,
    advisory_key,
)
from continuous_eval.adapters.db.locks_sqlite import SqliteLeaseLock, SqliteLeaseLocks
from continuous_eval.core.lifecycle import check_seconds
from continuous_eval.errors import StoreError
from continuous_eval.ports import SuiteLocks

__all__ = [
    "FENCE_WAIT_S",
    "KEY_NAMESPACE",
    "PostgresAdvisoryLock",
    "PostgresAdvisoryLocks",
    "SqliteLeaseLock",
    "SqliteLeaseLocks",
    "advisory_key",
    "make_suite_locks",
]


def make_suite_locks(engine: Engine, *, lease_seconds: float) -> SuiteLocks:
    """Return the suite locks for the engine's database.

    Args:
        engine: An engine on the migrated database (SQLite locks use its
            ``suite_locks`` table, Postgres locks read ``eval_runs`` to spot
            stale holders).
        lease_seconds: SQLite: how long a lock row lives without a ``check()``
            renewing it. Postgres: the longest a ``check()`` or an acquisition
            may hang on a dead network before it counts as failed.

    Raises:
        ValueError: ``lease_seconds`` is not positive.
        StoreError: Neither SQLite nor Postgres.
    """
    check_seconds(lease_seconds)
    dialect = engine.dialect.name
    if dialect == "postgresql":
        return PostgresAdvisoryLocks(engine, lease_seconds=lease_seconds)
    if dialect == "sqlite":
        return SqliteLeaseLocks(engine, lease_seconds=lease_seconds)
    raise StoreError(f"unsupported database {dialect!r}: use SQLite or Postgres")
