"""``SqlResultRetention``: the ``ResultRetention`` port, deleting old runs' raw rows in SQL.

Only the deletes of ``eval_results`` and ``case_steps`` rows of old runs
belong here. They go by id in batches, so retention never holds a long lock
on the tables the runner writes to; the runs themselves, their aggregates
(``eval_run_scores``), decisions and alerts are never touched.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, Table, delete, exists, or_, select

from continuous_eval.adapters.db.base import SqlStoreBase
from continuous_eval.adapters.db.tables import case_steps, eval_results, eval_runs
from continuous_eval.core.lifecycle import TERMINAL_STATUSES, check_limit, require_aware


def _old_runs(cutoff: datetime) -> list[ColumnElement[bool]]:
    """Runs finished, created before the cutoff and finished before it too."""
    runs = eval_runs.c
    return [
        runs.status.in_(TERMINAL_STATUSES),
        runs.created_at < cutoff,
        or_(runs.finished_at.is_(None), runs.finished_at < cutoff),
    ]


class SqlResultRetention(SqlStoreBase):
    """Delete the raw results and case steps of old runs, except the runs kept."""

    def suites_with_old_results(self, cutoff: datetime) -> list[str]:
        """The suites, sorted, with a finished run before ``cutoff`` that still has raw rows."""
        require_aware(cutoff, "cutoff")
        runs = eval_runs.c
        has_rows = or_(
            exists().where(eval_results.c.run_id == runs.id),
            exists().where(case_steps.c.run_id == runs.id),
        )
        stmt = (
            select(runs.suite).where(*_old_runs(cutoff), has_rows).distinct().order_by(runs.suite)
        )
        with self._translate("list suites with old results"), self._engine.connect() as conn:
            return list(conn.execute(stmt).scalars())

    def delete_old_results(
        self, suite: str, cutoff: datetime, keep_run_ids: Collection[str], batch: int
    ) -> int:
        """Delete up to ``batch`` raw rows of the suite's old runs not in ``keep_run_ids``.

        Result rows first, then case steps with what is left of the batch.
        """
        require_aware(cutoff, "cutoff")
        check_limit(batch)
        runs = eval_runs.c
        where = [runs.suite == suite, *_old_runs(cutoff)]
        if keep_run_ids:
            where.append(runs.id.not_in(sorted(keep_run_ids)))
        old = select(runs.id).where(*where)
        action = f"delete old results of {suite!r}"
        with self._translate(action), self._writer.begin() as conn:
            deleted = _delete_batch(conn, eval_results, old, batch)
            if deleted < batch:
                deleted += _delete_batch(conn, case_steps, old, batch - deleted)
            return deleted


def _delete_batch(
    conn: Connection, table: Table, runs: Select[*tuple[Any, ...]], batch: int
) -> int:
    """Delete up to ``batch`` rows of ``table`` whose run is one of ``runs``.

    No ORDER BY: which rows go first does not matter, and without one the
    (run_id, id) index finds them instead of a walk of the primary key.
    """
    ids = list(
        conn.execute(select(table.c.id).where(table.c.run_id.in_(runs)).limit(batch)).scalars()
    )
    if ids:
        conn.execute(delete(table).where(table.c.id.in_(ids)))
    return len(ids)
