"""``InMemoryRunReader``: the ``RunReader`` port over what an ``InMemoryRunStore`` holds.

The same answers as ``adapters.db.queries.SqlRunReader`` (the reader contract
tests run both), so the admin API and the CLI can be tested with no database:
runs newest first by (created_at, id), results in id order, snapshots counted
from the result rows up to the cursor, and the trend of scheduled runs only.
"""

from __future__ import annotations

from datetime import UTC, datetime

from continuous_eval.core.models import ResultRecord, ResultStatus, RunRecord, RunStatus, RunType
from continuous_eval.core.reads import RunKey, RunPoll, RunSnapshot, TrendPoint
from continuous_eval.testing.dashboard_reads import InMemoryDashboardReads, trend_points
from continuous_eval.testing.store import InMemoryRunStore

_NO_SLOT = datetime.min.replace(tzinfo=UTC)
"""Sorts below every slot (a scheduled run always has one; this keeps the sort total)."""


class InMemoryRunReader(InMemoryDashboardReads):
    """Read what an ``InMemoryRunStore`` holds, as the admin API and the CLI read it.

    Args:
        store: The store whose runs, results and aggregates are read.
    """

    def __init__(self, store: InMemoryRunStore) -> None:
        self._store = store

    def list_runs_page(
        self,
        *,
        suite: str | None = None,
        run_type: RunType | None = None,
        status: RunStatus | None = None,
        before: RunKey | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """See ``SqlRunReader.list_runs_page``."""
        runs = [
            run
            for run in self._store.all_runs()
            if (suite is None or run.suite == suite)
            and (run_type is None or run.run_type == run_type)
            and (status is None or run.status is status)
            and (before is None or (run.created_at, run.id) < (before.created_at, before.id))
        ]
        runs.sort(key=lambda run: (run.created_at, run.id), reverse=True)
        return runs[:limit]

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
        """See ``SqlRunReader.list_results_page``."""
        _, results = self._store.run_with_results(run_id)
        found = [
            r
            for r in results
            if r.id > after_id
            and (feature is None or r.feature == feature)
            and (scorer is None or r.scorer == scorer)
            and (status is None or r.status is status)
        ]
        return found[:limit]

    def run_snapshot(self, run_id: str, after_id: int | None = None) -> RunSnapshot:
        """See ``SqlRunReader.run_snapshot``."""
        run, results = self._store.run_with_results(run_id)
        cursor = max((r.id for r in results), default=0) if after_id is None else after_id
        upto = [r for r in results if r.id <= cursor]
        return RunSnapshot(
            run=run,
            cursor=cursor,
            cases_done=len({(r.feature, r.case_id) for r in upto}),
            scored=sum(r.status is ResultStatus.OK for r in upto),
            errored=sum(r.status is ResultStatus.ERROR for r in upto),
        )

    def poll_run(self, run_id: str, *, after_id: int, limit: int) -> RunPoll:
        """See ``SqlRunReader.poll_run``: the run first, then its newer results."""
        run, results = self._store.run_with_results(run_id)
        return RunPoll(run, [r for r in results if r.id > after_id][:limit])

    def eval_trend(
        self,
        *,
        suite: str | None = None,
        feature: str | None = None,
        scorer: str | None = None,
        limit: int = 100,
    ) -> list[TrendPoint]:
        """See ``SqlRunReader.eval_trend``: scheduled runs only, newest slot first."""
        points = [
            p
            for run, aggregates in self._store.runs_with_aggregates()
            if run.run_type == "scheduled" and (suite is None or run.suite == suite)
            for p in trend_points(run, aggregates)
            if (feature is None or p.feature == feature) and (scorer is None or p.scorer == scorer)
        ]
        points.sort(key=lambda p: (p.feature, p.scorer))
        points.sort(key=lambda p: (p.scheduled_for or _NO_SLOT, p.run_id), reverse=True)
        return points[:limit]
