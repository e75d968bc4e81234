"""The dashboard's reads over an ``InMemoryRunStore``: the same answers as SQL's.

Mixed into ``InMemoryRunReader``; ``adapters.db.dashboard_reads`` is the SQL
side, and the reader contract tests hold both to the same results.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from continuous_eval.core.models import RunRecord, ScoreAggregate
from continuous_eval.core.reads import KeyVerdict, TrendPoint
from continuous_eval.testing.store import InMemoryRunStore

_NEVER = datetime.min.replace(tzinfo=UTC)


def _at(run: RunRecord) -> datetime:
    return run.scheduled_for or run.finished_at or _NEVER


def trend_points(run: RunRecord, aggregates: Sequence[ScoreAggregate]) -> list[TrendPoint]:
    """A run's aggregates as trend points (the in-memory twin of SQL's ``trend_point``)."""
    return [
        TrendPoint(
            run_id=run.id,
            suite=run.suite,
            feature=agg.feature,
            scorer=agg.scorer,
            score=agg.mean,
            stderr=agg.stderr,
            n=agg.n,
            errors=agg.errors,
            status=run.status,
            scheduled_for=run.scheduled_for,
            finished_at=run.finished_at,
            fingerprint=agg.fingerprint,
            run_type=run.run_type,
        )
        for agg in aggregates
    ]


class InMemoryDashboardReads:
    """The dashboard's part of the ``RunReader`` port (mixed into ``InMemoryRunReader``)."""

    _store: InMemoryRunStore

    def _runs(self) -> list[RunRecord]:
        return self._store.all_runs()

    def recent_scores(self, *, suite: str | None = None, runs: int = 30) -> list[TrendPoint]:
        """See ``adapters.db.dashboard_reads.SqlDashboardReads.recent_scores``."""
        by_suite: dict[str, list[tuple[RunRecord, list[ScoreAggregate]]]] = {}
        for run, aggregates in self._store.runs_with_aggregates():
            if run.run_type == "scheduled" and (suite is None or run.suite == suite):
                by_suite.setdefault(run.suite, []).append((run, aggregates))
        points: list[TrendPoint] = []
        for suite_runs in by_suite.values():
            suite_runs.sort(key=lambda ra: (_at(ra[0]), ra[0].id), reverse=True)
            for run, aggregates in suite_runs[:runs]:
                points.extend(trend_points(run, aggregates))
        points.sort(key=lambda p: (p.at or _NEVER, p.run_id), reverse=True)
        points.sort(key=lambda p: (p.suite, p.feature, p.scorer))
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
        """See ``adapters.db.dashboard_reads.SqlDashboardReads.key_trend``."""
        points = [
            p
            for run, aggregates in self._store.runs_with_aggregates()
            if run.suite == suite and (manual or run.run_type == "scheduled")
            for p in trend_points(run, aggregates)
            if p.feature == feature
            and p.scorer == scorer
            and (since is None or (p.at is not None and p.at >= since))
        ]
        points.sort(key=lambda p: (p.at or _NEVER, p.run_id), reverse=True)
        return points[:limit]

    def latest_verdicts(self, *, suite: str | None = None) -> list[KeyVerdict]:
        """See ``adapters.db.dashboard_reads.SqlDashboardReads.latest_verdicts``."""
        newest: dict[str, RunRecord] = {}
        for run in self._runs():
            decided = run.run_type == "scheduled" and self._store.decisions.get(run.id)
            if not decided or (suite is not None and run.suite != suite):
                continue
            kept = newest.get(run.suite)
            if kept is None or (_decided_at(kept), kept.id) < (_decided_at(run), run.id):
                newest[run.suite] = run
        verdicts = [
            KeyVerdict(run.id, run.suite, _decided_at(run), d)
            for run in newest.values()
            for d in self._store.decisions[run.id]
        ]
        return sorted(verdicts, key=lambda v: (v.suite, v.decision.feature, v.decision.scorer))

    def key_marks(
        self, suite: str, feature: str, scorer: str, *, since: datetime | None = None
    ) -> list[KeyVerdict]:
        """See ``adapters.db.dashboard_reads.SqlDashboardReads.key_marks``."""
        marks = [
            KeyVerdict(run.id, run.suite, _decided_at(run), d)
            for run in self._runs()
            if run.suite == suite
            for d in self._store.decisions.get(run.id, [])
            if d.key == (feature, scorer) and d.transition is not None
        ]
        marks = [m for m in marks if since is None or m.decided_at >= since]
        return sorted(marks, key=lambda m: (m.decided_at, m.run_id))


def _decided_at(run: RunRecord) -> datetime:
    """Decisions are stored with the run's final status: when it finished."""
    return run.finished_at or run.created_at
