"""``InMemoryAgreementStore``: the ``AgreementStore`` port in a dictionary.

Same semantics as ``adapters.db.agreement.SqlAgreementStore``: rows are
unique by (run, feature, scorer), a second write replaces the first, and
``created_at`` comes from the injected clock. The contract tests run on both.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from datetime import datetime

from continuous_eval.core.agreement import RunAgreement
from continuous_eval.core.lifecycle import check_limit
from continuous_eval.ports import Clock
from continuous_eval.testing.clock import FakeClock


class InMemoryAgreementStore:
    """Agreement rows in memory, thread-safe through one lock.

    Args:
        clock: Source of every ``created_at``.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or FakeClock()
        self.rows: dict[tuple[str, str, str], tuple[int, RunAgreement]] = {}
        """By (run, feature, scorer): the write's sequence number and the row."""
        self._lock = threading.Lock()
        self._seq = 0

    def put_agreements(self, rows: Sequence[RunAgreement]) -> None:
        """Store or replace rows by (run, feature, scorer)."""
        with self._lock:
            now = self.clock.now()
            for row in rows:
                self._seq += 1
                key = (row.run_id, row.feature, row.scorer)
                self.rows[key] = (self._seq, dataclasses.replace(row, created_at=now))

    def run_agreements(self, run_id: str) -> list[RunAgreement]:
        """A run's rows, by feature then scorer."""
        found = [r for _, r in self.rows.values() if r.run_id == run_id]
        return sorted(found, key=lambda r: (r.feature, r.scorer))

    def history(self, suite: str, feature: str, scorer: str, limit: int = 20) -> list[RunAgreement]:
        """The newest ``limit`` rows of one judge, newest first."""
        check_limit(limit)
        mine = [
            (seq, r)
            for seq, r in self.rows.values()
            if (r.suite, r.feature, r.scorer) == (suite, feature, scorer)
        ]
        mine.sort(key=lambda item: (_when(item[1]), item[0]), reverse=True)
        return [r for _, r in mine[:limit]]

    def latest(self, suite: str, feature: str | None = None) -> list[RunAgreement]:
        """The newest row of every (feature, scorer) of the suite."""
        best: dict[tuple[str, str], tuple[datetime, int, RunAgreement]] = {}
        for seq, r in self.rows.values():
            if r.suite != suite or (feature is not None and r.feature != feature):
                continue
            key = (r.feature, r.scorer)
            seen = best.get(key)
            if seen is None or (_when(r), seq) > (seen[0], seen[1]):
                best[key] = (_when(r), seq, r)
        return [best[k][2] for k in sorted(best)]


def _when(row: RunAgreement) -> datetime:
    assert row.created_at is not None  # every stored row has one
    return row.created_at
