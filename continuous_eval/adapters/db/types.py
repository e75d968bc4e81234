"""Column types that keep the project's invariants inside the database layer.

Only types whose behaviour matters to correctness belong here; plain columns
use SQLAlchemy's types directly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Store aware datetimes as UTC and always load them as aware UTC datetimes.

    Postgres keeps the instant in ``timestamptz`` but SQLite has no time zone
    type: SQLAlchemy writes the wall-clock digits and drops the offset, so an
    aware datetime in another zone would silently shift and come back naive.
    Converting to UTC before binding and re-attaching UTC after loading makes
    both backends behave the same. Naive datetimes are refused rather than
    guessed at, since a naive value is always a bug upstream (ruff ``DTZ``
    forbids creating them in the package).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes and convert aware ones to UTC before they are written."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} refused: pass an aware UTC datetime"
            )
        utc = value.astimezone(UTC)
        # SQLite stores the digits only; binding a naive UTC value keeps every
        # stored string in one zone so that ORDER BY and comparisons in SQL
        # (string comparisons on SQLite) stay chronological.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime whatever the backend handed back."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        if value.tzinfo is None:
            # Only SQLite gets here: it stored UTC digits (see process_bind_param).
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
