"""The read side: what the admin API, the CLI and the dashboard read.

Separate from the store: the service never reads pages or polls, and a
reader can be served from memory in tests (``continuous_eval.testing``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from continuous_eval.core.models import (
    ResultRecord,
    ResultStatus,
    RunRecord,
    RunStatus,
    RunType,
)
from continuous_eval.core.reads import KeyVerdict, RunKey, RunPoll, RunSnapshot, TrendPoint


class RunReader(Protocol):
    """What the admin API, the CLI and the dashboard read: pages, live polls, the trend.

    Read-only and separate from ``RunStore``: the service never needs these,
    and a reader can be served from a replica or from memory in tests.
    Pages are keyset-paged, never by offset (``adapters.db.queries``).
    """

    def list_runs_page(
        self,
        *,
        suite: str | None = None,
        run_type: RunType | None = None,
        status: RunStatus | None = None,
        before: RunKey | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Up to ``limit`` runs newest first (created_at, then id), strictly after ``before``."""
        ...

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
        """Up to ``limit`` of a run's results in the order they were stored (id order).

        Raises:
            RunNotFound: No such run (an empty list means a run with no results yet).
        """
        ...

    def run_snapshot(self, run_id: str, after_id: int | None = None) -> RunSnapshot:
        """A run, a result id to stream from (its newest by default), and its counts up to it.

        Raises:
            RunNotFound: No such run.
        """
        ...

    def poll_run(self, run_id: str, *, after_id: int, limit: int) -> RunPoll:
        """The run's row, then up to ``limit`` of its results with id > ``after_id``.

        Raises:
            RunNotFound: The run is gone.
        """
        ...

    def eval_trend(
        self,
        *,
        suite: str | None = None,
        feature: str | None = None,
        scorer: str | None = None,
        limit: int = 100,
    ) -> list[TrendPoint]:
        """Scheduled runs' aggregates, newest slot first, one per run x feature x scorer."""
        ...

    def recent_scores(self, *, suite: str | None = None, runs: int = 30) -> list[TrendPoint]:
        """Every key's aggregates in its suite's last ``runs`` scheduled runs.

        Ordered by suite, feature, scorer, then slot newest first.
        """
        ...

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
        """One key's points newest first: scheduled runs, and manual runs when ``manual``."""
        ...

    def latest_verdicts(self, *, suite: str | None = None) -> list[KeyVerdict]:
        """The decisions of each suite's newest scheduled run that has any, by key."""
        ...

    def key_marks(
        self, suite: str, feature: str, scorer: str, *, since: datetime | None = None
    ) -> list[KeyVerdict]:
        """A key's decisions that changed something (a transition), oldest first."""
        ...
