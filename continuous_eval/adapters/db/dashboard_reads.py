"""The dashboard's reads on SQL: recent scores of every key, one key's trend, verdicts.

Part of ``SqlRunReader`` (``queries``), kept apart because these answer
whole pages of the dashboard at once and are shaped for that:

- the overview reads the last N scheduled runs of each suite (a window over
  ``eval_runs``, a few hundred rows), then those runs' aggregates by primary
  key, never a scan of every aggregate ever stored;
- a trend page reads one key through the (feature, scorer) index;
- verdicts come from the suite's newest decided scheduled run, and markers
  from the decisions that changed something (an incident opened, worsened,
  recovered, or a baseline reset), through the decisions' key index.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, func, literal, select
from sqlalchemy.exc import SQLAlchemyError

from continuous_eval.adapters.db.decisions import decision_of
from continuous_eval.adapters.db.engine import describe_error
from continuous_eval.adapters.db.tables import eval_decisions, eval_run_scores, eval_runs
from continuous_eval.core.models import RunStatus, RunType
from continuous_eval.core.reads import KeyVerdict, TrendPoint
from continuous_eval.errors import StoreError


class SqlDashboardReads:
    """The dashboard's part of the ``RunReader`` port, and the connection every read uses.

    Mixed into ``SqlRunReader``, which sets ``_engine``.
    """

    _engine: Engine

    @contextmanager
    def _reading(self, what: str) -> Iterator[Connection]:
        """A pooled connection; a database error becomes ``StoreError("could not read ...")``.

        Every read of ``SqlRunReader`` goes through it, the dashboard's and the rest.
        """
        try:
            with self._engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(
                f"could not read {what}: {describe_error(exc, self._engine.url)}"
            ) from exc

    def recent_scores(self, *, suite: str | None = None, runs: int = 30) -> list[TrendPoint]:
        """Every key's aggregates in its suite's last ``runs`` scheduled runs, newest first.

        Ordered by suite, feature, scorer, then slot (newest first): each
        key's points are contiguous, ready for a sparkline.

        Two statements: the runs first (a window over ``eval_runs``), then
        their aggregates by primary key, without a join: as one statement
        Postgres cannot tell how few runs the window keeps and joins every
        aggregate ever stored, and each run's columns would come back (and
        be converted) once per key. The points are put in order here.
        """
        r, s = eval_runs.c, eval_run_scores.c
        ranked = (
            select(
                r.id,
                r.suite,
                r.status,
                r.scheduled_for,
                r.finished_at,
                func.row_number()
                .over(partition_by=r.suite, order_by=(r.scheduled_for.desc(), r.id.desc()))
                .label("rank"),
            )
            .where(r.run_type == "scheduled")
            .where(*(() if suite is None else (r.suite == suite,)))
            .subquery()
        )
        recent = select(ranked).where(ranked.c.rank <= runs)
        scores = select(
            s.run_id, s.feature, s.scorer, s.mean, s.stderr, s.n, s.errors, s.fingerprint
        )
        with self._reading("recent scores") as conn:
            ran = conn.execute(recent).all()
            if not ran:
                return []
            rows = conn.execute(scores.where(s.run_id.in_([run.id for run in ran]))).all()
        # Each run's columns once, as plain values (a Row's attributes cost a
        # lookup each); then the points in order: suite, key, newest first.
        of_run = {
            run.id: (run.suite, run.rank, RunStatus(run.status), run.scheduled_for, run.finished_at)
            for run in ran
        }
        ordered = sorted(
            rows, key=lambda row: (of_run[row[0]][0], row[1], row[2], of_run[row[0]][1])
        )
        points = []
        for run_id, feature, scorer, mean, stderr, n, errors, fingerprint in ordered:
            suite_of, _, status, slot, finished = of_run[run_id]
            point = TrendPoint(
                run_id, suite_of, feature, scorer, mean, stderr, n, errors,
                status, slot, finished, fingerprint,
            )  # fmt: skip
            points.append(point)
        return points

    def key_trend(
        self,
        suite: str,
        feature: str,
        scorer: str,
        *,
        since: datetime | None = None,
        manual: bool = False,
        limit: int = 1000,
    ) -> list[TrendPoint]:
        """One key's points, newest first: scheduled runs, and manual ones when asked."""
        r, s = eval_runs.c, eval_run_scores.c
        at = func.coalesce(r.scheduled_for, r.finished_at)
        stmt = _points().where(r.suite == suite, s.feature == feature, s.scorer == scorer)
        if not manual:
            stmt = stmt.where(r.run_type == "scheduled")
        if since is not None:
            stmt = stmt.where(at >= since)
        stmt = stmt.order_by(at.desc(), r.id.desc()).limit(limit)
        with self._reading("the key's trend") as conn:
            return [trend_point(row) for row in conn.execute(stmt)]

    def latest_verdicts(self, *, suite: str | None = None) -> list[KeyVerdict]:
        """The decisions of each suite's newest scheduled run that has any, by key.

        Each suite's newest scheduled decision is a walk down the decisions'
        (suite, created_at) index that stops at the first scheduled run; the
        suites themselves are found one index probe each (the next suite
        after the last), not by grouping every decision ever stored. Then
        those runs' decisions by run id, in a second statement: as a
        subquery Postgres guesses a run per key and scans every decision.
        """
        d, r = eval_decisions.c, eval_runs.c
        if suite is None:
            first = select(func.min(d.suite).label("suite"))
            suites = first.cte("decided_suites", recursive=True)
            following = select(func.min(d.suite)).where(d.suite > suites.c.suite)
            suites = suites.union_all(
                select(following.scalar_subquery()).where(suites.c.suite.is_not(None))
            )
            names: Any = select(suites.c.suite).where(suites.c.suite.is_not(None)).subquery()
        else:
            names = select(literal(suite).label("suite")).subquery()
        newest_at = (
            select(d.created_at)
            .join_from(eval_decisions, eval_runs, r.id == d.run_id)
            .where(d.suite == names.c.suite, r.run_type == "scheduled")
            .order_by(d.created_at.desc())
            .limit(1)
            .scalar_subquery()
        )
        newest = select(names.c.suite, newest_at.label("at")).subquery()
        runs = (
            select(d.run_id)
            .join_from(
                eval_decisions, newest, (d.suite == newest.c.suite) & (d.created_at == newest.c.at)
            )
            .distinct()
        )
        with self._reading("the latest verdicts") as conn:
            run_ids = list(conn.execute(runs).scalars())
            if not run_ids:
                return []
            stmt = (
                select(eval_decisions)
                .where(d.run_id.in_(run_ids))
                .order_by(d.suite, d.feature, d.scorer)
            )
            return [_verdict(row) for row in conn.execute(stmt).all()]

    def key_marks(
        self, suite: str, feature: str, scorer: str, *, since: datetime | None = None
    ) -> list[KeyVerdict]:
        """A key's decisions that opened, worsened, recovered or reset something, oldest first."""
        d = eval_decisions.c
        stmt = select(eval_decisions).where(
            d.suite == suite, d.feature == feature, d.scorer == scorer, d.transition.is_not(None)
        )
        if since is not None:
            stmt = stmt.where(d.created_at >= since)
        stmt = stmt.order_by(d.created_at, d.id)
        with self._reading("the key's markers") as conn:
            return [_verdict(row) for row in conn.execute(stmt)]


def _points() -> Any:
    """The SELECT of trend points (aggregates joined to their runs), without order or filter."""
    s, r = eval_run_scores.c, eval_runs.c
    return select(
        s.run_id,
        r.suite,
        s.feature,
        s.scorer,
        s.mean,
        s.stderr,
        s.n,
        s.errors,
        r.status,
        r.scheduled_for,
        r.finished_at,
        s.fingerprint,
        r.run_type,
    ).join_from(eval_run_scores, eval_runs, r.id == s.run_id)


def trend_point(row: Row[Any]) -> TrendPoint:
    """A row of aggregates joined to its run (``_points``, the trend's statement) as a point."""
    run_type: RunType = "manual" if row.run_type == "manual" else "scheduled"
    return TrendPoint(
        run_id=row.run_id,
        suite=row.suite,
        feature=row.feature,
        scorer=row.scorer,
        score=row.mean,
        stderr=row.stderr,
        n=row.n,
        errors=row.errors,
        status=RunStatus(row.status),
        scheduled_for=row.scheduled_for,
        finished_at=row.finished_at,
        fingerprint=row.fingerprint,
        run_type=run_type,
    )


def _verdict(row: Row[Any]) -> KeyVerdict:
    return KeyVerdict(row.run_id, row.suite, row.created_at, decision_of(row))
