"""``MemoryRunLookup``: the ``RunLookup`` port in dictionaries.

Only the reads people make through the port belong here, ordered as
``SqlRunLookup`` orders them.
"""

from __future__ import annotations

from continuous_eval.core.lifecycle import check_limit
from continuous_eval.core.models import (
    ResultRecord,
    ResultStatus,
    RunRecord,
    RunStatus,
    RunType,
    ScoreAggregate,
)
from continuous_eval.core.regression import Decision
from continuous_eval.testing.base import MemoryStoreBase


class MemoryRunLookup(MemoryStoreBase):
    """Read runs, their aggregates, worst results and decisions; see ``SqlRunStore``."""

    def get_run(self, run_id: str) -> RunRecord:
        """Return one run; raise ``RunNotFound`` when there is none."""
        with self._lock:
            return self._run(run_id)

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
        with self._lock:
            matching = [
                run
                for run in self.runs.values()
                if (suite is None or run.suite == suite)
                and (run_type is None or run.run_type == run_type)
                and (status is None or run.status == status)
            ]
        matching.sort(key=lambda run: (run.created_at, run.id), reverse=True)
        return matching[:limit]

    def run_ids_starting(self, prefix: str, limit: int = 2) -> list[str]:
        """Return up to ``limit`` run ids that start with ``prefix``, in id order."""
        check_limit(limit)
        with self._lock:
            return sorted(run_id for run_id in self.runs if run_id.startswith(prefix))[:limit]

    def get_aggregates(self, run_id: str) -> list[ScoreAggregate]:
        """Return a run's aggregates ordered by feature, scorer."""
        with self._lock:
            self._run(run_id)
            return [agg for _key, agg in sorted(self.aggregates[run_id].items())]

    def worst_results(self, run_id: str, limit: int = 10) -> list[ResultRecord]:
        """Return errors first, then the lowest scores, skipped last; see ``SqlRunStore``."""
        check_limit(limit)
        with self._lock:
            self._run(run_id)
            results = list(self.results[run_id].values())

        def rank(result: ResultRecord) -> tuple[int, float, str, str, str]:
            if result.status is ResultStatus.ERROR:
                group = 0
            elif result.score is not None:
                group = 1
            else:
                group = 2
            # NULLS LAST, as in SQL.
            score = result.score if result.score is not None else float("inf")
            return (group, score, result.feature, result.scorer, result.case_id)

        return sorted(results, key=rank)[:limit]

    def get_decisions(self, run_id: str) -> list[Decision]:
        """Return a run's stored decisions; see ``SqlRunStore.get_decisions``."""
        with self._lock:
            return list(self.decisions.get(run_id, []))
