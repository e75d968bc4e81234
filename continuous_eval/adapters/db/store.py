"""``SqlRunStore``: the ``RunStore`` port on SQLAlchemy Core, for SQLite and Postgres.

Only the facade belongs here: ``SqlRunStore`` joins the store's seams, one
module each (``runs``, ``results``, ``steps``, ``history``, ``outbox``, ``lookup``, over
``base`` and the row mapping in ``rows``). The lifecycle rules (which status a
run may be written, released, adopted or controlled in) live in
``core.lifecycle`` and the outbox's in ``core.outbox``, shared with
``continuous_eval.testing.InMemoryRunStore`` so both stores refuse and decide
the same things the same way.

Core rather than the ORM: ``save_results`` is on the runner's hot path and
writes each batch as one executemany upsert plus one counter update in one
transaction, with no identity map or unit of work to pay for.

The names other modules imported from here before the split (``run_record``,
``sqlite_clock``, the callback JSON helpers, ``STREAM_BATCH``) are re-exported.
"""

from __future__ import annotations

from continuous_eval.adapters.db.base import SQLITE_CLOCK_FORMAT, sqlite_clock
from continuous_eval.adapters.db.history import SqlRunHistory
from continuous_eval.adapters.db.lookup import SqlRunLookup
from continuous_eval.adapters.db.outbox import SqlAlertOutbox
from continuous_eval.adapters.db.results import STREAM_BATCH, SqlResultSink
from continuous_eval.adapters.db.rows import callbacks_from_json, callbacks_to_json, run_record
from continuous_eval.adapters.db.runs import SqlRunLifecycle
from continuous_eval.adapters.db.steps import SqlCaseSteps

__all__ = [
    "SQLITE_CLOCK_FORMAT",
    "STREAM_BATCH",
    "SqlRunStore",
    "callbacks_from_json",
    "callbacks_to_json",
    "run_record",
    "sqlite_clock",
]


class SqlRunStore(
    SqlRunLifecycle, SqlResultSink, SqlCaseSteps, SqlRunHistory, SqlAlertOutbox, SqlRunLookup
):
    """Store runs, results and aggregates in SQLite or Postgres.

    One class per seam, joined by inheritance rather than composition: the
    seams share one engine, one writer and one time source (``base.SqlStoreBase``),
    and some writes cross them in one transaction (a run's final write stores
    its aggregates, decisions and outbox rows with its status). Each seam is a
    subclass of the same base with its own methods and nothing else, so the
    facade needs no forwarding method per port method, and each seam is still
    usable alone on an engine (``SqlAlertOutbox(engine)``).

    Thread-safe: every method takes its own pooled connection. Writes use
    ``BEGIN IMMEDIATE`` on SQLite (see ``engine.for_writes``) so concurrent
    writers wait for each other instead of failing. Every SQLAlchemy error
    leaves as a ``StoreError`` whose message names the failed operation and
    never contains the database password.

    One time source (``base.StoreTime``) for every time the store writes or
    compares: stamps, leases and heartbeats, adoptability, outbox claims and
    retries, ``db_now``. Without a clock it is the database's, the one clock
    every replica shares, so a replica whose clock drifts can neither steal a
    live run nor keep a dead one, nor move a slot, a due check or an order.

    Every write a worker makes under a ``Fence`` is one UPDATE guarded on
    (id, status, attempt, lease owner) whose row count decides: no row means
    ``LeaseLost`` and the whole transaction is rolled back.

    Args:
        engine: From ``engine.make_engine``, on a migrated database. The store
            disposes of it in ``close``.
        clock: Source of every time the store writes or compares. None
            (production) means the database's clock. Tests and backtests pass
            one to set those times exactly: a fake clock advanced past a lease
            expires it, on SQLite and Postgres as in memory. Never give
            replicas sharing a database clocks of their own, and never pair a
            store that has one with the suite locks, which stay on the
            database's clock (see ``locks``).
    """
