"""Interactions stamped by the database's own clock, as in production (no injected clock).

The contract tests run on a fake clock; on Postgres the production path is a
different statement (``ingested_at`` is the INSERT's own ``now()``, run in
autocommit), so it is checked here against the database's clock itself.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.interactions import SqlInteractionStore
from tests.fixtures.interactions import interaction


@pytest.mark.parametrize("fixture", ["migrated_sqlite_url", "postgres_url"])
def test_a_batch_is_stamped_by_the_database_clock_and_stored_once(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    store = SqlInteractionStore(make_engine(request.getfixturevalue(fixture)))
    try:
        before = _database_now(store)
        batch = [interaction(1), interaction(2), interaction(1)]
        assert store.add_interactions(batch) == 2
        assert store.add_interactions(batch) == 0
        after = _database_now(store)
        stored = store.list_interactions()
        assert [s.interaction for s in stored] == batch[:2]
        for row in stored:
            assert before - timedelta(seconds=1) <= row.ingested_at <= after
            assert row.ingested_at.utcoffset() == timedelta(0)
    finally:
        store.close()


def _database_now(store: SqlInteractionStore) -> datetime:
    if store.engine.dialect.name == "sqlite":
        return datetime.now(UTC)
    with store.engine.connect() as conn:
        now: datetime = conn.execute(select(func.now())).scalar_one()
    return now
