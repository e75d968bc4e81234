"""``MemoryResultRetention``: the ``ResultRetention`` port in dictionaries.

Only the deletes of old runs' results belong here; which runs qualify
follows ``SqlResultRetention``: result rows first, then case steps.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from continuous_eval.core.lifecycle import check_limit, require_aware
from continuous_eval.core.models import RunRecord
from continuous_eval.testing.base import MemoryStoreBase


def _old(run: RunRecord, cutoff: datetime) -> bool:
    return (
        run.status.terminal
        and run.created_at < cutoff
        and (run.finished_at is None or run.finished_at < cutoff)
    )


def _drop(rows: dict[Any, Any], limit: int) -> int:
    """Delete up to ``limit`` of ``rows``' entries; return how many."""
    keys = list(rows)[:limit]
    for key in keys:
        del rows[key]
    return len(keys)


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
                    if _old(run, cutoff) and (self.results.get(run.id) or self.steps.get(run.id))
                }
            )

    def delete_old_results(
        self, suite: str, cutoff: datetime, keep_run_ids: Collection[str], batch: int
    ) -> int:
        """Delete up to ``batch`` raw rows (results, then case steps) of the suite's old
        runs not in ``keep_run_ids``."""
        require_aware(cutoff, "cutoff")
        check_limit(batch)
        deleted = 0
        with self._lock:
            old = [
                run.id
                for run in self.runs.values()
                if run.suite == suite and run.id not in keep_run_ids and _old(run, cutoff)
            ]
            for table in (self.results, self.steps):
                for run_id in old:
                    deleted += _drop(table.get(run_id, {}), batch - deleted)
                    if deleted == batch:
                        return deleted
        return deleted
