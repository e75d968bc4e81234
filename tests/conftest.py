"""Fixtures shared by every test: a fake clock, database URLs and engines, and the store.

The ``store`` fixture runs each contract test against every ``RunStore``
(in memory, SQLite, Postgres), so the fake and the real stores cannot drift.

Isolation is by a fresh database per test, cloned from one migrated per
session: a SQLite file copied from a migrated template file, a Postgres
database created with ``CREATE DATABASE ... TEMPLATE`` (about 40 ms). Cloning
is cheaper than migrating every time and, unlike rolling back an outer
transaction, lets the code under test commit, open several connections and
run concurrently, as it does in production.

Postgres tests need ``CONTINUOUS_EVAL_TEST_POSTGRES_URL`` (any database on the
server; the fixtures create and drop their own). Without it they skip, except
under ``CI=true``, where they fail: CI must never pass by skipping them.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import URL, Engine, NullPool, create_engine, make_url

from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.migrate import upgrade
from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.ports import RunStore
from continuous_eval.testing import FakeClock, InMemoryRunStore

POSTGRES_URL_ENV = "CONTINUOUS_EVAL_TEST_POSTGRES_URL"
"""Names the Postgres server the ``postgres``-marked tests use."""

SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
"""Parameters of the fixtures that need a real database."""

ALL_BACKENDS = ["memory", *SQL_BACKENDS]
"""Parameters of the ``store`` fixture."""


@pytest.fixture
def clock() -> FakeClock:
    """A clock that stands still until the test moves it."""
    return FakeClock()


# ------------------------------------------------------------------- SQLite


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """The URL of a SQLite file in the test's temporary directory; the file does not exist yet."""
    return f"sqlite:///{tmp_path / 'eval.db'}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session, for tests to copy."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    # upgrade() disposes of its engine, so the WAL is checkpointed into the
    # main file and a plain file copy is a complete database.
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def migrated_sqlite_url(sqlite_url: str, sqlite_template: Path) -> str:
    """The URL of a SQLite file already migrated to head, private to the test."""
    shutil.copyfile(sqlite_template, make_url(sqlite_url).database or "")
    return sqlite_url


# ----------------------------------------------------------------- Postgres


class PostgresDatabases:
    """Create and drop throwaway databases on the test server.

    Names start with a prefix unique to this process, so parallel test
    sessions on one server never touch each other's databases.
    """

    def __init__(self, server: URL) -> None:
        self.server = server
        # NullPool: no idle admin connection lingers on a database being
        # dropped or used as a template.
        self._admin = create_engine(server, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        self._prefix = f"ce_test_{os.getpid()}_{secrets.token_hex(3)}"
        self._numbers = itertools.count()

    def create(self, template: str = "template0") -> str:
        """Create a database copied from ``template`` and return its name."""
        name = f"{self._prefix}_{next(self._numbers)}"
        with self._admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name

    def drop(self, name: str) -> None:
        """Drop a database, disconnecting anything still connected to it."""
        with self._admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def url(self, name: str) -> str:
        """Return the URL of database ``name`` on the test server, password included."""
        return self.server.set(database=name).render_as_string(hide_password=False)

    def close(self) -> None:
        """Release the admin connection pool."""
        self._admin.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> URL:
    """The server in ``CONTINUOUS_EVAL_TEST_POSTGRES_URL``; skip (fail under CI) without it."""
    raw = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if not raw:
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(
                f"{POSTGRES_URL_ENV} is not set. Under CI the Postgres tests must run, never "
                f"skip: start a Postgres server and set {POSTGRES_URL_ENV}, e.g. "
                "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                pytrace=False,
            )
        pytest.skip(f"set {POSTGRES_URL_ENV} to run the Postgres tests")
    return make_url(raw)


@pytest.fixture(scope="session")
def postgres_databases(postgres_server: URL) -> Iterator[PostgresDatabases]:
    """The factory of per-test databases, for the whole session."""
    databases = PostgresDatabases(postgres_server)
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture(scope="session")
def postgres_template(postgres_databases: PostgresDatabases) -> Iterator[str]:
    """The name of a database migrated to head once per session, to clone per test."""
    name = postgres_databases.create()
    try:
        # upgrade() disposes of its engine: a template must have no connections.
        upgrade(postgres_databases.url(name))
        yield name
    finally:
        postgres_databases.drop(name)


@pytest.fixture
def postgres_url(postgres_databases: PostgresDatabases, postgres_template: str) -> Iterator[str]:
    """The URL of a fresh Postgres database, migrated to head, dropped after the test."""
    name = postgres_databases.create(template=postgres_template)
    try:
        yield postgres_databases.url(name)
    finally:
        postgres_databases.drop(name)


@pytest.fixture
def empty_postgres_url(postgres_databases: PostgresDatabases) -> Iterator[str]:
    """The URL of a fresh, empty Postgres database (never migrated), dropped after the test."""
    name = postgres_databases.create()
    try:
        yield postgres_databases.url(name)
    finally:
        postgres_databases.drop(name)


# -------------------------------------------------------- engines and stores


@pytest.fixture(params=SQL_BACKENDS)
def empty_db_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty, never migrated database, on SQLite and on Postgres."""
    fixture = "sqlite_url" if request.param == "sqlite" else "empty_postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture(params=SQL_BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str:
    """The URL of a migrated database private to the test, on SQLite and on Postgres."""
    fixture = "migrated_sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Engine]:
    """An engine on a migrated database (SQLite and Postgres), disposed after the test."""
    engine = make_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(params=ALL_BACKENDS)
def store(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[RunStore]:
    """A ``RunStore`` on every backend: in memory, SQLite and Postgres, each empty."""
    run_store: RunStore
    if request.param == "memory":
        run_store = InMemoryRunStore(clock)
    else:
        fixture = "migrated_sqlite_url" if request.param == "sqlite" else "postgres_url"
        run_store = SqlRunStore(make_engine(request.getfixturevalue(fixture)), clock)
    try:
        yield run_store
    finally:
        run_store.close()
