"""The store of judges' agreement with people: one row per run x calibrated feature x judge.

``adapters.db.agreement`` implements it on SQLite and Postgres and
``testing.agreement`` in memory; the same contract tests run on all three.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from continuous_eval.core.agreement import RunAgreement


class AgreementStore(Protocol):
    """Agreement figures by run, and their trend."""

    def put_agreements(self, rows: Sequence[RunAgreement]) -> None:
        """Store a run's rows, replacing any of the same (run, feature, scorer): a
        finish retried after a takeover writes the same figures again. One transaction."""
        ...

    def run_agreements(self, run_id: str) -> list[RunAgreement]:
        """A run's rows, by feature then scorer."""
        ...

    def history(self, suite: str, feature: str, scorer: str, limit: int = 20) -> list[RunAgreement]:
        """The newest ``limit`` rows of one judge of one feature, newest first."""
        ...

    def latest(self, suite: str, feature: str | None = None) -> list[RunAgreement]:
        """The newest row of every (feature, scorer) of a suite (or of one feature)."""
        ...
