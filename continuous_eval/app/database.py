"""The database's schema for ``continuous-eval db``: migrate it, or say which revision it is at.

Apart from ``container`` on purpose: the ``db`` commands load SQLAlchemy and
Alembic only, not the daemon, the runner and the suite files.
"""

from __future__ import annotations

from continuous_eval.adapters.db import migrate
from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.settings import Settings


def upgrade(settings: Settings, revision: str = "head") -> str | None:
    """Apply the migrations up to ``revision``; return the revision the database is at then.

    Raises:
        ConfigError: The database URL is not one this version can use.
        StoreError: The database could not be reached or migrated.
    """
    engine = make_engine(settings.database_url)
    try:
        migrate.upgrade(engine, revision)
        return migrate.current_revision(engine)
    finally:
        engine.dispose()


def current_revision(settings: Settings) -> str | None:
    """Return the revision the database is at, or None when it was never migrated.

    Raises:
        ConfigError: The database URL is not one this version can use.
        StoreError: The database could not be reached.
    """
    engine = make_engine(settings.database_url)
    try:
        return migrate.current_revision(engine)
    finally:
        engine.dispose()
