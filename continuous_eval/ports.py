"""The Protocols the service layer needs; adapters implement them.

Keeping them in one place means the runner and the daemon can be tested with
the fakes in ``continuous_eval.testing`` and run for real with the adapters,
without either knowing which.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Protocol

from continuous_eval.core.models import (
    CaseResult,
    NewRun,
    ProgressDelta,
    ResultRecord,
    ResultStatus,
    RunRecord,
    RunStatus,
    RunType,
    ScoreAggregate,
    ScoreOutcome,
    TargetOutput,
)
from continuous_eval.core.suite import Case


class Clock(Protocol):
    """Where the service reads the time; tests inject a fake one."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware, in UTC."""
        ...


class Target(Protocol):
    """The system under test for one feature."""

    async def answer(self, case: Case) -> TargetOutput:
        """Return the system's answer for one case; raise ``TargetError`` on failure."""
        ...

    async def aclose(self) -> None:
        """Release connections; called once when the run ends."""
        ...


class CaseScorer(Protocol):
    """One configured scorer, ready to grade outputs."""

    name: str

    async def score(self, output: str, case: Case) -> ScoreOutcome:
        """Grade one output; raise ``ScorerError`` (never return 0) when it cannot."""
        ...


class RunStore(Protocol):
    """Durable storage of runs, results and aggregates.

    Implementations are synchronous and thread-safe; the async runner calls
    them through a single writer thread so the event loop never blocks on I/O.
    """

    def create_run(self, new: NewRun) -> RunRecord:
        """Insert a run in status ``running`` and return it."""
        ...

    def save_results(
        self, run_id: str, results: Sequence[CaseResult], delta: ProgressDelta
    ) -> None:
        """Upsert results (one per run x feature x case x scorer) and add the counts, atomically."""
        ...

    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        reason: str | None,
        aggregates: Sequence[ScoreAggregate],
    ) -> RunRecord:
        """Store the aggregates and the final status in one transaction."""
        ...

    def get_run(self, run_id: str) -> RunRecord:
        """Return one run; raise ``RunNotFound`` when there is none."""
        ...

    def list_runs(
        self,
        *,
        suite: str | None = None,
        run_type: RunType | None = None,
        status: RunStatus | None = None,
        limit: int = 20,
    ) -> list[RunRecord]:
        """Return runs newest first."""
        ...

    def iter_scores(self, run_id: str) -> Iterator[tuple[str, str, ResultStatus, float | None]]:
        """Yield (feature, scorer, status, score) for every result, grouped by feature, scorer."""
        ...

    def get_aggregates(self, run_id: str) -> list[ScoreAggregate]:
        """Return a run's stored aggregates, ordered by feature, scorer."""
        ...

    def worst_results(self, run_id: str, limit: int = 10) -> list[ResultRecord]:
        """Return errors first, then the lowest scores."""
        ...

    def close(self) -> None:
        """Dispose of connections."""
        ...
