"""Apply and verify the Alembic migrations from code, without an ``alembic.ini``.

Only schema-version operations belong here: upgrade, downgrade, the current
revision and the drift check. ``migrations/env.py`` calls back into
``migration_transaction`` so the Alembic CLI and ``continuous-eval db upgrade``
take the same locks.
"""

from __future__ import annotations

import importlib.resources
from argparse import Namespace
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Connection, Engine, column, func, inspect, select, table
from sqlalchemy.exc import SQLAlchemyError

from continuous_eval.adapters.db.engine import WRITE_OPTION, describe_error, make_engine, safe_url
from continuous_eval.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic itself is imported only when a migration runs or the scripts are
# read: every command checks the schema, and reading one row of
# alembic_version is a few milliseconds where importing Alembic is 0.3 s.

HEAD_REVISION = "0013"
"""The newest revision in ``migrations/versions`` (a test keeps the two equal)."""

MIGRATION_LOCK_KEY = (0x43455641, 1)
"""Postgres advisory lock (classid, objid) held while migrating.

The two-integer form lives in a key space separate from single ``bigint``
keys, so it cannot collide with the per-suite run locks.
"""

_T = TypeVar("_T")


def script_location() -> Path:
    """Return the directory holding ``env.py`` and ``versions/``.

    An installed wheel ships it as ``continuous_eval/_migrations`` (see the
    force-include in ``pyproject.toml``); a source checkout keeps it at the
    top of the repository.
    """
    packaged = importlib.resources.files("continuous_eval") / "_migrations"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[3] / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """Build the Alembic configuration in code, optionally bound to an open connection."""
    from alembic.config import Config

    # quiet: a library call must not print Alembic's progress lines to stdout.
    config = Config(cmd_opts=Namespace(quiet=True))
    # ConfigParser interpolates '%', which may appear in a path.
    config.set_main_option("script_location", str(script_location()).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(target: Engine | str, revision: str = "head") -> None:
    """Migrate the database up to ``revision``; a database already there is left alone.

    Safe to call on every start and from several processes at once: the whole
    upgrade runs in one transaction that holds an exclusive lock (an advisory
    lock on Postgres, the write lock on SQLite), and the current revision is
    read only once the lock is held. Not from several threads of one process
    at once: Alembic keeps the running environment in a module global.

    Args:
        target: An engine (left open) or a URL (an engine is made and disposed).
        revision: An Alembic revision or ``"head"``.

    Raises:
        StoreError: The database is unreachable or a migration failed; nothing
            of the failed upgrade is kept.
        ConfigError: The URL is invalid.
    """
    from alembic import command

    _with_connection(target, lambda conn: command.upgrade(alembic_config(conn), revision))


def upgrade_if_behind(target: Engine | str) -> None:
    """Migrate to head unless the database is there already (the common case, read cheaply)."""
    if stored_revision(target) != HEAD_REVISION:
        upgrade(target)


def downgrade(target: Engine | str, revision: str = "base") -> None:
    """Migrate the database down to ``revision`` (``"base"`` drops every table)."""
    from alembic import command

    _with_connection(target, lambda conn: command.downgrade(alembic_config(conn), revision))


def current_revision(target: Engine | str) -> str | None:
    """Return the revision the database is at, or None when it was never migrated."""

    from alembic.runtime.migration import MigrationContext

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    return _with_connection(target, read)


def stored_revision(target: Engine | str) -> str | None:
    """Read the revision from ``alembic_version`` without Alembic; None on an empty database."""

    def read(connection: Connection) -> str | None:
        if not inspect(connection).has_table("alembic_version"):
            return None
        version = table("alembic_version", column("version_num"))
        rows = connection.execute(select(version.c.version_num)).scalars().all()
        return rows[0] if len(rows) == 1 else None

    return _with_connection(target, read)


def head_revision() -> str | None:
    """Return the newest revision the package ships, read from the migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def require_head(target: Engine | str) -> None:
    """Fail with the command to run unless the database schema is at the newest revision.

    Used on Postgres, where the service never migrates by itself: several
    replicas racing to migrate a shared database at start-up is an outage.

    Raises:
        StoreError: The schema is missing or behind (or ahead of) this version.
    """
    current = stored_revision(target)
    head = HEAD_REVISION
    if current != head:
        found = f"at revision {current}" if current else "empty (no continuous-eval tables)"
        raise StoreError(
            f"the database is {found}, this version needs {head}: "
            "run `continuous-eval db upgrade` first"
        )


def schema_problem(target: Engine | str) -> str | None:
    """Return None when this version can use the database, else why not (for readiness).

    A schema *newer* than this version's head (a revision this package does
    not know) is accepted: during a rolling upgrade the migrate job runs
    first, and the old replicas must stay ready until they are replaced, so
    migrations are written to be tolerated by the previous version.
    """
    current = stored_revision(target)
    head = HEAD_REVISION
    if current == head:
        return None
    if current is None:
        return "the database has no continuous-eval tables: run `continuous-eval db upgrade`"
    from alembic.script import ScriptDirectory

    known = {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if current not in known:
        return None  # newer than this version: a rolling upgrade is under way
    return f"the database is at {current}, this version needs {head}: run `db upgrade`"


def check(target: Engine | str) -> None:
    """Fail unless the database is at head and matches ``tables.metadata`` exactly.

    This is ``alembic check``: it autogenerates a migration in memory and
    raises when the migration would not be empty, which catches a table
    change that was made without its migration (or the other way round).

    Raises:
        StoreError: The database is behind head or differs from the tables.
    """
    from alembic import command

    _with_connection(target, lambda conn: command.check(alembic_config(conn)))


@contextmanager
def migration_transaction(connection: Connection) -> Iterator[None]:
    """Run the block in one transaction that no other migrating process can enter.

    Postgres: ``pg_advisory_xact_lock`` serialises concurrent upgrades and is
    released with the transaction. SQLite: ``BEGIN IMMEDIATE`` (see
    ``engine.for_writes``) takes the database write lock, and foreign keys are
    switched off for the duration, as SQLite's own procedure for altering
    tables requires: a batch migration drops and recreates tables, and with
    foreign keys on, dropping ``eval_runs`` would cascade-delete every result.
    ``PRAGMA foreign_key_check`` then verifies the data before commit.

    Args:
        connection: A connection with no transaction begun yet.
    """
    if connection.in_transaction():
        raise StoreError("migrations need a connection with no transaction in progress")
    if connection.dialect.name != "sqlite":
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(*MIGRATION_LOCK_KEY)))
            yield
        return
    # The PRAGMA is a no-op inside a transaction, so it goes straight to the driver
    # connection, which make_engine left in autocommit mode.
    raw = connection.connection.driver_connection
    if raw is None:
        raise StoreError("the SQLite connection is closed")
    raw.execute("PRAGMA foreign_keys = OFF")
    try:
        connection.execution_options(**{WRITE_OPTION: True})
        with connection.begin():
            yield
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise StoreError(f"migration left rows with dangling foreign keys: {broken[:5]}")
    finally:
        raw.execute("PRAGMA foreign_keys = ON")


def _with_connection(target: Engine | str, action: Callable[[Connection], _T]) -> _T:
    engine = make_engine(target) if isinstance(target, str) else target
    try:
        with engine.connect() as connection:
            return action(connection)
    except SQLAlchemyError as exc:
        raise StoreError(
            f"migration failed on {safe_url(engine.url)}: {describe_error(exc, engine.url)}"
        ) from exc
    except Exception as exc:
        _raise_alembic_error(exc, engine)
        raise
    finally:
        if isinstance(target, str):
            engine.dispose()


def _raise_alembic_error(exc: Exception, engine: Engine) -> None:
    """Translate Alembic's errors into ``StoreError``; anything else is left to propagate."""
    from alembic.util.exc import AutogenerateDiffsDetected, CommandError

    if isinstance(exc, AutogenerateDiffsDetected):
        raise StoreError(
            f"the schema of {safe_url(engine.url)} differs from the tables: {exc}"
        ) from exc
    if isinstance(exc, CommandError):
        raise StoreError(f"migration failed on {safe_url(engine.url)}: {exc}") from exc
