"""Alembic environment for continuous-eval.

Two entry points reach this file: ``continuous_eval.adapters.db.migrate`` (the
``db upgrade`` command, start-up, tests), which passes an open connection in
``config.attributes["connection"]``, and the ``alembic`` CLI with the
repository's ``alembic.ini``, which gives a URL. Both run the migrations inside
``migration_transaction`` so concurrent upgrades serialise instead of racing.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from continuous_eval.adapters.db.engine import URL_SETTING, make_engine
from continuous_eval.adapters.db.migrate import migration_transaction
from continuous_eval.adapters.db.tables import metadata
from continuous_eval.settings import DEFAULT_DATABASE_URL

config = context.config

if config.config_file_name is not None and "connection" not in config.attributes:
    # Only the CLI has an ini file; the service configures its own logging.
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    # The environment wins over alembic.ini so the CLI and the service always
    # agree on which database they touch.
    return (
        os.environ.get(URL_SETTING)
        or config.get_main_option("sqlalchemy.url")
        or DEFAULT_DATABASE_URL
    )


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table.
        render_as_batch=connection.dialect.name == "sqlite",
        # True on SQLite too: migration_transaction wraps everything in one
        # explicit BEGIN, so a failed migration leaves nothing behind.
        transactional_ddl=True,
        compare_type=True,
        compare_server_default=True,
    )


def run_migrations_offline() -> None:
    """Print the SQL instead of running it (``alembic upgrade --sql``)."""
    url = _url()
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    with migration_transaction(connection):
        _configure(connection)
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on a live database."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as own_connection:
            _run(own_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
