"""``MemoryResultRetention``: the ``ResultRetention`` port in dictionaries.

Only the deletes of old runs' results belong here; which runs qualify
follows ``SqlResultRetention``. The in-memory store keeps no case steps.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from continuous_eval.core.lifecycle import check_limit, require_aware
from continuous_eval.core.models import RunRecord
from continuous_eval.testing.base import MemoryStoreBase


def _old(run: RunRecord, cutoff: datetime) -> bool:
    return (
        run.status.terminal
        and run.created_at < cutoff
        and (run.finished_at is None or run.finished_at < cutoff)
    )


class MemoryResultRetention(MemoryStoreBase):
    """Delete old runs' results; see ``SqlRunStore``."""

    def suites_with_old_results(self, cutoff: datetime) -> list[str]:
        """The suites, sorted, with a finished run before ``cutoff`` that still has results."""
        require_aware(cutoff, "cutoff")
        with self._lock:
            return sorted(
                {
                    run.suite
                    for run in self.runs.values()
                    if _old(run, cutoff) and self.results.get(run.id)
                }
            )

    def delete_old_results(
        self, suite: str, cutoff: datetime, keep_run_ids: Collection[str], batch: int
    ) -> int:
        """Delete up to ``batch`` results of the suite's old runs not in ``keep_run_ids``."""
        require_aware(cutoff, "cutoff")
        check_limit(batch)
        deleted = 0
        with self._lock:
            for run in self.runs.values():
                if run.suite != suite or run.id in keep_run_ids or not _old(run, cutoff):
                    continue
                stored = self.results.get(run.id, {})
                for key in list(stored)[: batch - deleted]:
                    del stored[key]
                    deleted += 1
                if deleted == batch:
                    break
        return deleted
