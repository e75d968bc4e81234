"""What every seam of the SQL run store shares: the engine, the one time source, the guards.

Only the plumbing the seams have in common belongs here: connections,
``StoreError`` translation, the store's time source (``StoreTime``: every
time a seam writes or compares, as a value or as SQL), the fence guard and
its refusal, and the dialect-specific upsert builders. The queries
themselves live in the seam modules (``runs``, ``results``, ``history``,
``outbox``, ``lookup``); ``store.SqlRunStore`` joins them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Interval,
    Select,
    Table,
    func,
    literal,
    select,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.dml import Insert

from continuous_eval.adapters.db.engine import describe_error, for_writes
from continuous_eval.adapters.db.tables import eval_runs
from continuous_eval.adapters.db.types import UTCDateTime
from continuous_eval.core.lifecycle import (
    FENCED_STATUSES,
    TERMINAL_STATUSES,
    lease_lost,
    run_not_found,
)
from continuous_eval.core.models import Fence, RunStatus
from continuous_eval.errors import RunFinished, StoreError
from continuous_eval.ports import Clock

SQLITE_CLOCK_FORMAT = "%Y-%m-%d %H:%M:%f"
"""``strftime`` format of SQLite's clock: milliseconds, e.g. ``2025-01-01 06:00:00.250``."""


class Instant(Protocol):
    """One reading of a store's time source, in the three forms a statement needs.

    A write or query reads the source once (``StoreTime.now``) and takes every
    time it needs from that one reading, so a lease's expiry and its heartbeat,
    or a due check's two comparisons, can never disagree.
    """

    def value(self, conn: Connection) -> datetime:
        """Now as a Python datetime, read in ``conn``'s transaction: for rows built in Python."""
        ...

    def stamp(self) -> datetime | ColumnElement[datetime]:
        """Now as the value of a column in an INSERT or UPDATE built before the transaction."""
        ...

    def expression(self, plus_seconds: float = 0.0) -> ColumnElement[datetime]:
        """Now + ``plus_seconds`` as SQL, typed ``UTCDateTime``: expiries and what they meet."""
        ...


class DatabaseNow:
    """The database's now: what a store without an injected clock reads, for everything.

    Postgres: ``now()``, the start of the transaction, so every time one
    transaction writes or compares is the same instant. ``value`` selects it
    in the caller's transaction; ``stamp`` and ``expression`` are the SQL
    itself, evaluated by the server.

    SQLite is embedded: its clock is this process's. ``value`` and ``stamp``
    read it in Python, with microseconds where SQLite's own ``now`` has
    milliseconds; ``expression`` is SQLite's ``strftime`` (see
    ``sqlite_clock``), which SQLite keeps constant within one statement.
    """

    def __init__(self, dialect: str) -> None:
        self._dialect = dialect

    def value(self, conn: Connection) -> datetime:
        """Postgres: ``SELECT now()`` in ``conn``'s transaction. SQLite: this process's clock."""
        if self._dialect == "sqlite":
            return datetime.now(UTC)
        value: datetime = conn.execute(select(self.expression())).scalar_one()
        return value

    def stamp(self) -> datetime | ColumnElement[datetime]:
        """Postgres: ``now()`` as SQL. SQLite: this process's clock, read now."""
        return datetime.now(UTC) if self._dialect == "sqlite" else self.expression()

    def expression(self, plus_seconds: float = 0.0) -> ColumnElement[datetime]:
        """``now()`` (+ an interval) on Postgres, ``strftime`` in the stored text form on SQLite."""
        if self._dialect == "postgresql":
            now: ColumnElement[Any] = func.now()
            if plus_seconds:
                now = now + literal(timedelta(seconds=plus_seconds), Interval())
            return type_coerce(now, UTCDateTime())
        return type_coerce(sqlite_clock(plus_seconds), UTCDateTime())


class ClockNow:
    """One reading of an injected ``Clock``: every form of now is that reading.

    ``expression`` binds ``when + plus_seconds`` as a parameter, typed
    ``UTCDateTime`` like the columns it meets, so SQLite compares it as the
    same text form and Postgres as a ``timestamptz``.

    Args:
        when: The clock's now, aware.
    """

    def __init__(self, when: datetime) -> None:
        self._when = when

    def value(self, conn: Connection) -> datetime:
        """The reading; ``conn`` is not used."""
        return self._when

    def stamp(self) -> datetime:
        """The reading."""
        return self._when

    def expression(self, plus_seconds: float = 0.0) -> ColumnElement[datetime]:
        """The reading + ``plus_seconds``, as a bound parameter."""
        return literal(self._when + timedelta(seconds=plus_seconds), UTCDateTime())


class StoreTime:
    """The one source of every time a SQL store writes or compares.

    Stamps (``created_at``, ``started_at``, ``finished_at``, results, alerts,
    decisions), lease expiries and heartbeats, which runs are adoptable, outbox
    claims, retry times and ``sent_at``, and ``db_now``: all from one source,
    so they always agree with each other.

    - No clock (production): the database's clock (``DatabaseNow``), the one
      clock every replica shares. A replica whose clock drifts can then neither
      steal a live run nor keep a dead one, nor move a slot, a due check or an
      order; on Postgres one transaction sees one instant.
    - An injected clock (tests, benchmarks): that clock, as bound parameters
      (``ClockNow``). A test expires a lease, a claim or a retry by advancing
      its fake clock, on every backend alike, and never sleeps or branches on
      the backend. Replicas sharing a database must never run on clocks of
      their own this way: that is the skew the database's clock prevents.

    The suite locks (``locks``) are not part of it: they always run on the
    database's clock, and are wired only with a store that has no clock.

    Args:
        dialect: ``sqlite`` or ``postgresql``.
        clock: The injected clock, or None for the database's.
    """

    def __init__(self, dialect: str, clock: Clock | None = None) -> None:
        self._clock = clock
        self._database = DatabaseNow(dialect)

    def now(self) -> Instant:
        """Read the source once, for one write or query: the clock's now, or the database's."""
        if self._clock is None:
            return self._database  # the database reads its own clock as the statement runs
        return ClockNow(self._clock.now())


class SqlStoreBase:
    """The connection and time source one SQL store's seams share.

    Each seam (``SqlRunLifecycle``, ``SqlResultSink`` and the others) is a
    subclass, so each is usable alone on an engine and ``SqlRunStore`` is all
    of them at once over one engine, one writer and one time source.

    Args:
        engine: From ``engine.make_engine``, on a migrated database.
        clock: Source of every time the store writes or compares; None means
            the database's clock (see ``StoreTime``).
    """

    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise StoreError(f"unsupported database {dialect!r}: use SQLite or Postgres")
        self._engine = engine
        self._writer = for_writes(engine)
        self._time = StoreTime(dialect, clock)
        self._dialect = dialect

    @property
    def engine(self) -> Engine:
        """The engine the store runs on; the suite locks are built on the same database."""
        return self._engine

    def close(self) -> None:
        """Dispose of the engine's pooled connections."""
        self._engine.dispose()

    def _guard(self, run_id: str, fence: Fence | None) -> tuple[ColumnElement[bool], ...]:
        """The WHERE of a guarded write: the run is still open, and still ours under ``fence``."""
        runs = eval_runs.c
        if fence is None:
            return (runs.id == run_id, runs.status.not_in(TERMINAL_STATUSES))
        return (
            runs.id == run_id,
            runs.status.in_(FENCED_STATUSES),
            runs.attempt == fence.attempt,
            runs.lease_owner == fence.owner,
        )

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            raise StoreError(
                f"could not {action}: {describe_error(exc, self._engine.url)}"
            ) from exc


def sqlite_clock(plus_seconds: float = 0.0) -> ColumnElement[str]:
    """SQLite's now (+ ``plus_seconds``) in the text form ``UTCDateTime`` stores.

    SQLAlchemy writes ``YYYY-MM-DD HH:MM:SS.ffffff`` (microseconds); SQLite's
    ``%f`` gives milliseconds, so three zeros are appended. Both forms then
    have the same length and fields, and SQLite's text comparison of a stored
    expiry with this value is a chronological one.
    """
    args: list[Any] = [SQLITE_CLOCK_FORMAT, "now"]
    if plus_seconds:
        args.append(f"{plus_seconds:+.3f} seconds")
    return func.strftime(*args).concat("000")


def refuse(conn: Connection, run_id: str, fence: Fence | None) -> None:
    """Raise why a guarded update matched no row: no run, a finished run or a lost lease."""
    runs = eval_runs.c
    row = conn.execute(
        select(runs.status, runs.attempt, runs.lease_owner).where(runs.id == run_id)
    ).one_or_none()
    if row is None:
        raise run_not_found(run_id)
    status = RunStatus(row.status)
    if fence is None:
        raise RunFinished(run_id, status)
    raise lease_lost(run_id, fence, status, row.attempt, row.lease_owner)


def upsert(dialect: str, table: Table, keys: Sequence[str], skip: Sequence[str] = ()) -> Insert:
    """Build INSERT ... ON CONFLICT (keys) DO UPDATE of every other column."""
    replaced = [c.name for c in table.columns if c.name not in keys and c.name not in skip]
    if dialect == "postgresql":
        pg = postgresql.insert(table)
        return pg.on_conflict_do_update(
            index_elements=list(keys), set_={name: pg.excluded[name] for name in replaced}
        )
    lite = sqlite.insert(table)
    return lite.on_conflict_do_update(
        index_elements=list(keys), set_={name: lite.excluded[name] for name in replaced}
    )


def insert_ignore(dialect: str, table: Table, keys: Sequence[str]) -> Insert:
    """Build INSERT ... ON CONFLICT (keys) DO NOTHING."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(keys))
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(keys))


def select_run(run_id: str) -> Select[*tuple[Any, ...]]:
    """SELECT the whole row of one run."""
    return select(eval_runs).where(eval_runs.c.id == run_id)


def require_run(conn: Connection, run_id: str) -> None:
    """Raise ``RunNotFound`` unless the run exists: reads of a missing run's rows say so."""
    found = conn.execute(select(eval_runs.c.id).where(eval_runs.c.id == run_id)).first()
    if found is None:
        raise run_not_found(run_id)
