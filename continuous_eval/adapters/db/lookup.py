"""``SqlRunLookup``: the ``RunLookup`` port, runs looked up with what was stored at their end.

Only the store's own reads of runs belong here (one run, a listing, an id
prefix, aggregates, the worst results, decisions); pages, polls and trends
that the port does not need are in ``queries``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, case, select

from continuous_eval.adapters.db.base import SqlStoreBase, require_run, select_run
from continuous_eval.adapters.db.decisions import read_decisions
from continuous_eval.adapters.db.rows import aggregate_record, result_record, run_record
from continuous_eval.adapters.db.tables import eval_results, eval_run_scores, eval_runs
from continuous_eval.core.lifecycle import check_limit, run_not_found
from continuous_eval.core.models import (
    ResultRecord,
    ResultStatus,
    RunRecord,
    RunStatus,
    RunType,
    ScoreAggregate,
)
from continuous_eval.core.regression import Decision


class SqlRunLookup(SqlStoreBase):
    """Read runs, their aggregates, worst results and decisions."""

    def get_run(self, run_id: str) -> RunRecord:
        """Return one run; raise ``RunNotFound`` when there is none."""
        with self._translate(f"read run {run_id!r}"), self._engine.connect() as conn:
            row = conn.execute(select_run(run_id)).one_or_none()
        if row is None:
            raise run_not_found(run_id)
        return run_record(row)

    def list_runs(
        self,
        *,
        suite: str | None = None,
        run_type: RunType | None = None,
        status: RunStatus | None = None,
        limit: int = 20,
    ) -> list[RunRecord]:
        """Return up to ``limit`` runs matching every given filter, newest first."""
        check_limit(limit)
        stmt = newest_runs(suite=suite, run_type=run_type, status=status, limit=limit)
        with self._translate("list runs"), self._engine.connect() as conn:
            return [run_record(row) for row in conn.execute(stmt)]

    def run_ids_starting(self, prefix: str, limit: int = 2) -> list[str]:
        """Return up to ``limit`` run ids that start with ``prefix``, in id order."""
        check_limit(limit)
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        runs = eval_runs.c
        stmt = (
            select(runs.id)
            .where(runs.id.like(escaped + "%", escape="\\"))
            .order_by(runs.id)
            .limit(limit)
        )
        with self._translate("find runs by id prefix"), self._engine.connect() as conn:
            return list(conn.execute(stmt).scalars())

    def get_aggregates(self, run_id: str) -> list[ScoreAggregate]:
        """Return a run's stored aggregates ordered by feature, scorer (empty before it finished).

        Raises:
            RunNotFound: No such run.
        """
        scores = eval_run_scores.c
        stmt = (
            select(eval_run_scores)
            .where(scores.run_id == run_id)
            .order_by(scores.feature, scores.scorer)
        )
        with self._translate(f"read aggregates of run {run_id!r}"), self._engine.connect() as conn:
            require_run(conn, run_id)
            return [aggregate_record(row) for row in conn.execute(stmt)]

    def worst_results(self, run_id: str, limit: int = 10) -> list[ResultRecord]:
        """Return up to ``limit`` results: errors first, then the lowest scores, skipped last.

        Ties are broken by feature, scorer and case id so reports are stable.

        Raises:
            RunNotFound: No such run.
        """
        check_limit(limit)
        results = eval_results.c
        rank = case(
            (results.status == ResultStatus.ERROR.value, 0),
            (results.score.is_not(None), 1),
            else_=2,
        )
        stmt = (
            select(eval_results)
            .where(results.run_id == run_id)
            .order_by(
                rank,
                results.score.asc().nulls_last(),
                results.feature,
                results.scorer,
                results.case_id,
            )
            .limit(limit)
        )
        with self._translate(f"read results of run {run_id!r}"), self._engine.connect() as conn:
            require_run(conn, run_id)
            return [result_record(row) for row in conn.execute(stmt)]

    def get_decisions(self, run_id: str) -> list[Decision]:
        """Return a run's stored decisions, by feature and scorer (empty if none were stored)."""
        with self._translate(f"read decisions of run {run_id!r}"), self._engine.connect() as conn:
            return read_decisions(conn, run_id)


def newest_runs(
    *,
    suite: str | None = None,
    run_type: RunType | None = None,
    status: RunStatus | None = None,
    limit: int,
) -> Select[Any]:
    """SELECT up to ``limit`` runs matching every given filter, newest first (created_at, id).

    Shared with ``queries``, whose pages add a keyset cursor to it.
    """
    runs = eval_runs.c
    stmt = select(eval_runs).order_by(runs.created_at.desc(), runs.id.desc()).limit(limit)
    if suite is not None:
        stmt = stmt.where(runs.suite == suite)
    if run_type is not None:
        stmt = stmt.where(runs.run_type == run_type)
    if status is not None:
        stmt = stmt.where(runs.status == status.value)
    return stmt
