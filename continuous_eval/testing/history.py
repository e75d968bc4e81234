"""``MemoryRunHistory``: the ``RunHistory`` port in dictionaries.

Only the reads of the due check, the budget and the detector belong here; the
store's clock stands in for the database's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from continuous_eval.core.lifecycle import check_limit, require_aware
from continuous_eval.core.models import AlertKind, AlertRecord, ResultStatus, RunRecord, RunStatus
from continuous_eval.core.regression import KeyState, ScoreKey
from continuous_eval.testing.base import MemoryStoreBase


class MemoryRunHistory(MemoryStoreBase):
    """Read a suite's history and the store's clock; see ``SqlRunStore``."""

    def db_now(self) -> datetime:
        """Return the store's clock, which stands in for the database's."""
        return self.clock.now()

    def newest_scheduled(self, suite: str) -> RunRecord | None:
        """Return the suite's latest-started scheduled run; see ``SqlRunStore``."""
        with self._lock:
            candidates = [
                (run.started_at, run)
                for run in self.runs.values()
                if run.suite == suite and run.run_type == "scheduled" and run.started_at
            ]
        # Ties on started_at are arbitrary in SQL; here the first inserted wins.
        return max(candidates, key=lambda c: c[0])[1] if candidates else None

    def judge_spend_since(self, since: datetime) -> float:
        """Return the judge cost of runs started at or after ``since``; see ``SqlRunStore``."""
        require_aware(since, "since")
        with self._lock:
            return sum(
                (
                    run.judge_usage.cost_usd
                    for run in self.runs.values()
                    if run.started_at is not None and run.started_at >= since
                ),
                0.0,
            )

    def scheduled_history(self, suite: str, *, before: datetime, limit: int) -> list[RunRecord]:
        """Return succeeded scheduled runs started before ``before``; see ``SqlRunStore``."""
        require_aware(before, "before")
        check_limit(limit)
        with self._lock:
            matching = [
                run
                for run in self.runs.values()
                if run.suite == suite
                and run.run_type == "scheduled"
                and run.status is RunStatus.SUCCEEDED
                and run.started_at is not None
                and run.started_at < before
            ]
        matching.sort(key=lambda run: (run.started_at, run.id), reverse=True)
        return matching[:limit]

    def decision_states(self, run_ids: Sequence[str]) -> dict[str, dict[ScoreKey, KeyState]]:
        """Return the carried-forward state of each run's decisions; see ``SqlRunStore``."""
        with self._lock:
            return {
                run_id: {d.key: d.state() for d in self.decisions[run_id]}
                for run_id in run_ids
                if run_id in self.decisions
            }

    def case_scores(self, run_id: str) -> dict[tuple[str, str], dict[str, float]]:
        """Return a run's ``ok`` scores by (feature, scorer) and case id; see ``SqlRunStore``."""
        with self._lock:
            self._run(run_id)
            results = sorted(self.results[run_id].items())
        scores: dict[tuple[str, str], dict[str, float]] = {}
        for (feature, scorer, case_id), result in results:
            if result.status is ResultStatus.OK and result.score is not None:
                scores.setdefault((feature, scorer), {})[case_id] = result.score
        return scores

    def latest_alert(
        self, suite: str, feature: str, scorer: str, *, kind: AlertKind
    ) -> AlertRecord | None:
        """Return the newest alert of ``kind`` for a feature x scorer; see ``SqlRunStore``."""
        with self._lock:
            matching = [
                alert
                for alert in self.alerts.values()
                if (alert.suite, alert.feature, alert.scorer, alert.kind)
                == (suite, feature, scorer, kind)
            ]
        return max(matching, key=lambda alert: (alert.created_at, alert.id), default=None)
