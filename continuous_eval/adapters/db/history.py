"""``SqlRunHistory``: the ``RunHistory`` port, what the due check, the budget and the detector read.

Only reads belong here, each shaped for one question and served by an index:
the newest scheduled run (due), the judge spend of a day (budget), the
known-good history, stored decision states and case scores (detector), the
latest alert of a kind (outage), and the store's clock they are measured by.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select

from continuous_eval.adapters.db.base import SqlStoreBase, require_run
from continuous_eval.adapters.db.decisions import read_states
from continuous_eval.adapters.db.rows import alert_record, run_record
from continuous_eval.adapters.db.tables import alerts as alerts_table
from continuous_eval.adapters.db.tables import eval_results, eval_runs
from continuous_eval.core.lifecycle import check_limit, require_aware
from continuous_eval.core.models import AlertKind, AlertRecord, ResultStatus, RunRecord, RunStatus
from continuous_eval.core.regression import KeyState, ScoreKey


class SqlRunHistory(SqlStoreBase):
    """Read a suite's history and the store's clock."""

    def db_now(self) -> datetime:
        """Return the store's now, the time its leases and claims are measured by, aware UTC.

        Without an injected clock, the database's: on Postgres ``now()``, the
        start of the (here one-statement) transaction; on SQLite
        ``strftime('%f')``, millisecond precision, in the text form
        ``UTCDateTime`` stores. With one, that clock's now (see ``base.StoreTime``).
        """
        with self._translate("read the database clock"), self._engine.connect() as conn:
            value: datetime = conn.execute(select(self._time.now().expression())).scalar_one()
        return value

    def newest_scheduled(self, suite: str) -> RunRecord | None:
        """Return the suite's scheduled run with the latest ``started_at`` (any status), or None.

        One backward scan of the (suite, run_type, started_at) index, whatever
        the number of runs. No tie-breaker on purpose: a second sort key would
        keep the planner from reading the index in order. Two runs of a suite
        started at the same microsecond give the same due decision anyway.
        """
        runs = eval_runs.c
        stmt = (
            select(eval_runs)
            .where(
                runs.suite == suite,
                runs.run_type == "scheduled",
                # Postgres sorts NULLs first in a DESC order; rows written by
                # plain SQL may lack started_at and are never "the newest".
                runs.started_at.is_not(None),
            )
            .order_by(runs.started_at.desc())
            .limit(1)
        )
        action = f"read the newest scheduled run of {suite!r}"
        with self._translate(action), self._engine.connect() as conn:
            row = conn.execute(stmt).one_or_none()
        return None if row is None else run_record(row)

    def judge_spend_since(self, since: datetime) -> float:
        """Return the judge cost in USD of runs whose ``started_at`` is at or after ``since``.

        A run is charged in full to the day it started, even when it runs past
        midnight or is adopted later: a run's spend counts against exactly one
        day's budget, and a past day's total never changes. Costs are counted
        as results are stored, so a running run's spend so far is included.
        A sequential scan on Postgres (about 11 ms at 100,000 runs, once per
        tick): an index on ``started_at`` would lure the due check's query
        away from its own index.

        Raises:
            ValueError: ``since`` is naive.
        """
        require_aware(since, "since")
        runs = eval_runs.c
        stmt = select(func.coalesce(func.sum(runs.judge_cost_usd), 0.0)).where(
            runs.started_at >= since
        )
        with self._translate("sum the judge spend"), self._engine.connect() as conn:
            return float(conn.execute(stmt).scalar_one())

    def scheduled_history(self, suite: str, *, before: datetime, limit: int) -> list[RunRecord]:
        """Return up to ``limit`` succeeded scheduled runs of the suite started before ``before``.

        Newest ``started_at`` first, ties broken by id (descending). Manual,
        failed, cancelled, skipped and unfinished runs are never baselines.
        Served by the (suite, run_type, started_at) index.

        Raises:
            ValueError: ``before`` is naive or ``limit`` below 1.
        """
        require_aware(before, "before")
        check_limit(limit)
        runs = eval_runs.c
        stmt = (
            select(eval_runs)
            .where(
                runs.suite == suite,
                runs.run_type == "scheduled",
                runs.status == RunStatus.SUCCEEDED.value,
                runs.started_at < before,
            )
            .order_by(runs.started_at.desc(), runs.id.desc())
            .limit(limit)
        )
        action = f"read the scheduled history of {suite!r}"
        with self._translate(action), self._engine.connect() as conn:
            return [run_record(row) for row in conn.execute(stmt)]

    def decision_states(self, run_ids: Sequence[str]) -> dict[str, dict[ScoreKey, KeyState]]:
        """Return what the detector carries forward from each run's decisions, per key."""
        with self._translate("read decision states"), self._engine.connect() as conn:
            return read_states(conn, run_ids)

    def case_scores(self, run_id: str) -> dict[tuple[str, str], dict[str, float]]:
        """Return a run's scored results: (feature, scorer) -> case id -> score.

        Only ``ok`` results with a score; errors and skipped cases are left
        out, never counted as zero. One query; the run's scores are held in
        memory (a few floats per case).

        Raises:
            RunNotFound: No such run.
        """
        results = eval_results.c
        stmt = (
            select(results.feature, results.scorer, results.case_id, results.score)
            .where(
                results.run_id == run_id,
                results.status == ResultStatus.OK.value,
                results.score.is_not(None),
            )
            .order_by(results.feature, results.scorer, results.case_id)
        )
        scores: dict[tuple[str, str], dict[str, float]] = {}
        with self._translate(f"read case scores of run {run_id!r}"), self._engine.connect() as conn:
            require_run(conn, run_id)
            for feature, scorer, case_id, score in conn.execute(stmt):
                scores.setdefault((feature, scorer), {})[case_id] = float(score)
        return scores

    def latest_alert(
        self, suite: str, feature: str, scorer: str, *, kind: AlertKind
    ) -> AlertRecord | None:
        """Return the newest alert of ``kind`` for the feature x scorer, any channel or status.

        Newest by ``created_at``, then by id (the later insert). Served by the
        (suite, feature, scorer, kind, created_at) index.
        """
        a = alerts_table.c
        stmt = (
            select(alerts_table)
            .where(a.suite == suite, a.feature == feature, a.scorer == scorer, a.kind == kind)
            .order_by(a.created_at.desc(), a.id.desc())
            .limit(1)
        )
        action = f"read the latest {kind} alert of {suite}/{feature}/{scorer}"
        with self._translate(action), self._engine.connect() as conn:
            row = conn.execute(stmt).one_or_none()
        return None if row is None else alert_record(row)
