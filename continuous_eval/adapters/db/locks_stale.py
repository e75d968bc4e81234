"""The one rule that says when a suite lock's holder is stale, for both backends.

A holder counts as stale only when one of the suite's runs is ``running``
with a lease that expired *while the holder held the lock* (the lease expired
after the holder took the lock) and no run of the suite has a live lease. A
newcomer that has just taken the lock to adopt a long-dead run is therefore
never mistaken for the dead run's stalled worker.

Kept in a module of its own so that the Postgres locks (``locks_postgres``)
and the SQLite locks (``locks_sqlite``) apply the same SQL, and neither
imports the other for it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists

from continuous_eval.adapters.db.tables import eval_runs
from continuous_eval.core.lifecycle import FENCED_STATUSES
from continuous_eval.core.models import RunStatus


def stale_holder(
    suite: str, held_since: ColumnElement[Any], now: ColumnElement[datetime]
) -> ColumnElement[bool]:
    """SQL that is true when the holder of ``suite``'s lock since ``held_since`` is stale.

    See the module docstring: a run's lease expired while the lock was held,
    and no run of the suite has a live lease. Both backends use this one rule.
    """
    runs = eval_runs.c
    expired_under_holder = exists().where(
        runs.suite == suite,
        runs.status == RunStatus.RUNNING.value,
        runs.lease_expires_at <= now,
        runs.lease_expires_at > held_since,
    )
    live = exists().where(
        runs.suite == suite,
        runs.status.in_(FENCED_STATUSES),
        runs.lease_expires_at > now,
    )
    return and_(expired_under_holder, ~live)
