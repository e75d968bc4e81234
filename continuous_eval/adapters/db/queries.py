"""Read-only queries for the admin API and the CLI that the ``RunStore`` port does not need.

Only SELECTs belong here: pages of runs and results, the live-progress poll
and the scheduled-score trend. The service layer never calls these, so they
stay out of ``ports.RunStore`` (and out of the in-memory fake); writes stay
in the store's seams (``runs``, ``results``). ``SqlRunReader`` is the one
API: SQLAlchemy Core on SQLite and Postgres, every method synchronous on its
own pooled connection, so callers on the event loop run it in a worker thread.

Pagination is keyset, never OFFSET: a page is "the rows after this key", so
runs inserted while a client pages never shift or repeat what it sees, and
every page costs one index range scan however deep it is.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, Row, Select, String, func, literal, select, tuple_

from continuous_eval.adapters.db.base import require_run, select_run
from continuous_eval.adapters.db.dashboard_reads import SqlDashboardReads, trend_point
from continuous_eval.adapters.db.lookup import newest_runs
from continuous_eval.adapters.db.rows import result_record, run_record
from continuous_eval.adapters.db.tables import eval_results, eval_run_scores, eval_runs
from continuous_eval.adapters.db.types import UTCDateTime
from continuous_eval.core.lifecycle import run_not_found
from continuous_eval.core.models import ResultRecord, ResultStatus, RunRecord, RunStatus, RunType
from continuous_eval.core.reads import RunKey, RunPoll, RunSnapshot, TrendPoint

__all__ = ["RunKey", "RunPoll", "RunSnapshot", "SqlRunReader", "TrendPoint"]


class SqlRunReader(SqlDashboardReads):
    """The ``RunReader`` port on the store's engine (SQLite or Postgres).

    Synchronous, each call on its own pooled connection: callers on the event
    loop run it in a worker thread.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def list_runs_page(
        self,
        *,
        suite: str | None = None,
        run_type: RunType | None = None,
        status: RunStatus | None = None,
        before: RunKey | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Return up to ``limit`` runs newest first (by created_at, id), strictly after ``before``.

        The row comparison ``(created_at, id) < (:t, :id)`` is one range scan of
        ``ix_eval_runs_created_at_id`` on both backends (SQLite has row values
        since 3.15), and a run inserted meanwhile sorts above every cursor.
        """
        runs = eval_runs.c
        stmt = newest_runs(suite=suite, run_type=run_type, status=status, limit=limit)
        if before is not None:
            # Typed binds: SQLite compares the stored text form, so the bound value
            # must go through UTCDateTime exactly as the column's values did.
            key = tuple_(literal(before.created_at, UTCDateTime()), literal(before.id, String()))
            stmt = stmt.where(tuple_(runs.created_at, runs.id) < key)
        with self._reading("runs") as conn:
            return [run_record(row) for row in conn.execute(stmt)]

    def list_results_page(
        self,
        run_id: str,
        *,
        feature: str | None = None,
        scorer: str | None = None,
        status: ResultStatus | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[ResultRecord]:
        """Return up to ``limit`` of a run's results in id order (the order they were stored).

        Raises:
            RunNotFound: No such run (an empty list means a run with no results yet).
        """
        results = eval_results.c
        stmt = _results_after(run_id, after_id, limit)
        if feature is not None:
            stmt = stmt.where(results.feature == feature)
        if scorer is not None:
            stmt = stmt.where(results.scorer == scorer)
        if status is not None:
            stmt = stmt.where(results.status == status.value)
        with self._reading(f"results of run {run_id!r}") as conn:
            require_run(conn, run_id)
            return [result_record(row) for row in conn.execute(stmt)]

    def run_snapshot(self, run_id: str, after_id: int | None = None) -> RunSnapshot:
        """Return a run, a result id to stream from, and the run's counts up to that id.

        Without ``after_id`` the cursor is the run's newest result id (0 when
        none): a new subscriber hears what happens from now on. The counts are
        computed from the result rows up to the cursor, not read from the run's
        counters, so the progress a stream reports depends only on its position:
        every subscriber at the same position reports the same numbers.

        Raises:
            RunNotFound: No such run.
        """
        results = eval_results.c
        with self._reading(f"run {run_id!r}") as conn:
            row = _run_row(conn, run_id)
            if after_id is None:
                newest = select(func.coalesce(func.max(results.id), 0)).where(
                    results.run_id == run_id
                )
                after_id = int(conn.execute(newest).scalar_one())
            upto = (results.run_id == run_id) & (results.id <= after_id)
            cases = select(results.feature, results.case_id).where(upto).distinct().subquery()
            done = conn.execute(select(func.count()).select_from(cases)).scalar_one()
            by_status = select(results.status, func.count()).where(upto).group_by(results.status)
            counts = {status: int(n) for status, n in conn.execute(by_status)}
        return RunSnapshot(
            run=run_record(row),
            cursor=after_id,
            cases_done=int(done),
            scored=counts.get(ResultStatus.OK.value, 0),
            errored=counts.get(ResultStatus.ERROR.value, 0),
        )

    def poll_run(self, run_id: str, *, after_id: int, limit: int) -> RunPoll:
        """Read a run's row, then up to ``limit`` of its results with id > ``after_id``.

        In this order on purpose: a run seen terminal has stored its last
        result before finishing, so the results read next are complete and the
        stream can end without losing any.

        Raises:
            RunNotFound: The run is gone (deleted while watched).
        """
        with self._reading(f"run {run_id!r}") as conn:
            row = _run_row(conn, run_id)
            found = [
                result_record(r) for r in conn.execute(_results_after(run_id, after_id, limit))
            ]
        return RunPoll(run_record(row), found)

    def eval_trend(
        self,
        *,
        suite: str | None = None,
        feature: str | None = None,
        scorer: str | None = None,
        limit: int = 100,
    ) -> list[TrendPoint]:
        """Return scheduled runs' aggregates, newest slot first, one row per run x feature x scorer.

        Manual runs are never part of the trend: they are ad-hoc experiments,
        and the trend is what the regression detector compares against. Runs of
        every status with stored aggregates are included, with their status, so
        a chart can mark a cancelled or failed run instead of silently hiding a gap.

        Reads ``eval_run_scores`` (one row per run x feature x scorer), never the
        raw results: with a feature, through its (feature, scorer) index, joined
        to the run by primary key, then a top-N sort of that feature's rows.
        """
        stmt = self.eval_trend_statement(suite=suite, feature=feature, scorer=scorer, limit=limit)
        with self._reading("the score trend") as conn:
            return [trend_point(row) for row in conn.execute(stmt)]

    @staticmethod
    def eval_trend_statement(
        *,
        suite: str | None = None,
        feature: str | None = None,
        scorer: str | None = None,
        limit: int = 100,
    ) -> Select[Any]:
        """Build the trend's SELECT (see ``eval_trend``); separate so benchmarks can EXPLAIN it."""
        scores, runs = eval_run_scores.c, eval_runs.c
        stmt = (
            select(
                scores.run_id,
                runs.suite,
                scores.feature,
                scores.scorer,
                scores.mean,
                scores.stderr,
                scores.n,
                scores.errors,
                runs.status,
                runs.scheduled_for,
                runs.finished_at,
                scores.fingerprint,
                runs.run_type,
            )
            .join_from(eval_run_scores, eval_runs, runs.id == scores.run_id)
            .where(runs.run_type == "scheduled")
            .order_by(
                runs.scheduled_for.desc(),
                scores.run_id.desc(),
                scores.feature,
                scores.scorer,
            )
            .limit(limit)
        )
        if suite is not None:
            stmt = stmt.where(runs.suite == suite)
        if feature is not None:
            stmt = stmt.where(scores.feature == feature)
        if scorer is not None:
            stmt = stmt.where(scores.scorer == scorer)
        return stmt


def _results_after(run_id: str, after_id: int, limit: int) -> Select[Any]:
    """A run's results with id > ``after_id``, in id order, at most ``limit``."""
    results = eval_results.c
    return (
        select(eval_results)
        .where(results.run_id == run_id, results.id > after_id)
        .order_by(results.id)
        .limit(limit)
    )


def _run_row(conn: Connection, run_id: str) -> Row[Any]:
    """The run's whole row; ``RunNotFound`` when there is none."""
    row = conn.execute(select_run(run_id)).one_or_none()
    if row is None:
        raise run_not_found(run_id)
    return row
