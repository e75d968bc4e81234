"""Build the SQLAlchemy engine for a database URL, tuned for each supported backend.

Only connection set-up belongs here: pool options, per-connection pragmas and
the SQLite transaction mode. The schema is in ``tables``, migrations in
``migrate``, queries in ``store``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from continuous_eval.errors import ConfigError

URL_SETTING = "CONTINUOUS_EVAL_DATABASE_URL"
"""The environment variable the URL comes from, named in configuration errors."""

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long SQLite waits for another writer before failing with "database is locked"."""

WRITE_OPTION = "continuous_eval_write"
"""Execution option marking a connection that will write (see ``for_writes``)."""

_SUPPORTED = ("sqlite", "postgresql")


def make_engine(url: str) -> Engine:
    """Create an engine for a SQLite or Postgres URL.

    SQLite connections get WAL (readers never block the writer), a busy
    timeout (concurrent writers wait instead of failing at once) and foreign
    keys (off by default in SQLite, and the schema relies on ON DELETE
    CASCADE). Postgres gets a normal pool that checks connections before use,
    so a restarted server costs one retry instead of one failed request.

    Args:
        url: A SQLAlchemy URL, e.g. ``sqlite:///data/eval.db`` or
            ``postgresql+psycopg://user@host/db`` (a bare ``postgresql://``
            or ``postgres://`` also means psycopg 3).

    Returns:
        An engine; the caller owns it and must ``dispose()`` it.

    Raises:
        ConfigError: The URL cannot be parsed, names an unsupported backend
            or a driver that is not installed. The message never contains the
            password.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        # Not echoed: a string that does not parse may hide its password anywhere.
        raise ConfigError(
            "environment",
            URL_SETTING,
            "not a valid database URL; expected e.g. sqlite:///path/to/file.db "
            "or postgresql+psycopg://user@host/db",
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        # psycopg 3 is the driver the project installs; SQLAlchemy's default
        # for a bare postgresql:// would be psycopg2, which is not.
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in _SUPPORTED:
        raise ConfigError(
            "environment",
            URL_SETTING,
            f"unsupported database {backend!r} in {safe_url(parsed)!r}; "
            "use sqlite:///path/to/file.db or postgresql+psycopg://user@host/db",
        )
    try:
        if backend == "sqlite":
            return _sqlite_engine(parsed)
        return create_engine(parsed, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigError(
            "environment", URL_SETTING, f"cannot use {safe_url(parsed)!r}: {exc}"
        ) from None


def for_writes(engine: Engine) -> Engine:
    """Return a view of ``engine`` whose transactions take the write lock up front on SQLite.

    A deferred SQLite transaction that reads and then writes fails with
    "database is locked" at once, without waiting for the busy timeout, when
    another connection wrote in between; ``BEGIN IMMEDIATE`` waits for the
    lock instead. Readers keep deferred transactions so they never queue behind
    a writer. On Postgres the option changes nothing.
    """
    return engine.execution_options(**{WRITE_OPTION: True})


def safe_url(url: URL | str) -> str:
    """Render a URL for messages and logs with the password hidden."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return redact(url)


def describe_error(exc: BaseException, url: URL) -> str:
    """Summarise a database error for a ``StoreError`` message.

    Uses the driver's message rather than ``str(exc)``, which repeats the SQL
    and every bound parameter, and blanks the password should a driver ever
    echo it.
    """
    detail = " ".join(str(getattr(exc, "orig", None) or exc).split())
    if url.password:
        detail = detail.replace(str(url.password), "***")
    return redact(detail)


def redact(text: str) -> str:
    """Hide anything that looks like ``user:password@`` in a string that may not parse as a URL."""
    return re.sub(r"(://[^:/@\s]*):[^@\s]*@", r"\1:***@", text)


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
    if not in_memory and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide when a transaction starts:
        # pysqlite's own implicit BEGIN cannot be IMMEDIATE and skips DDL, which
        # would leave migrations half-applied after a failure.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching to WAL needs a lock and should wait for it.
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                # NORMAL is durable across application crashes in WAL mode; only
                # an OS crash can lose the last transactions, never corrupt the file.
                cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return  # the caller asked for no transaction at all
        connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE_OPTION) else "BEGIN")

    return engine
