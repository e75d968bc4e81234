"""The records the read side returns: run pages, result pages, live-run polls, the trend, verdicts.

``ports.RunReader`` returns these; the admin API, the CLI and the dashboard
read them, whichever store is behind the port (``adapters.db.queries`` on
SQLite or Postgres, ``continuous_eval.testing`` in memory). Plain frozen
dataclasses, so the HTTP schemas build from them by attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from continuous_eval.core.decisions import Decision
from continuous_eval.core.models import ResultRecord, RunRecord, RunStatus, RunType


@dataclass(frozen=True, slots=True)
class RunKey:
    """A run's position in the newest-first listing: (created_at, id), unique and ordered."""

    created_at: datetime
    id: str


@dataclass(frozen=True, slots=True)
class RunPoll:
    """One look at a live run: its row, then its results after a given id."""

    run: RunRecord
    results: list[ResultRecord]


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    """A run, a position in its results, and its counts up to that position."""

    run: RunRecord
    cursor: int
    """A result id: the stream continues with the results after it."""
    cases_done: int
    """Cases with results stored up to ``cursor``."""
    scored: int
    """Results up to ``cursor`` that scored (``ok``)."""
    errored: int
    """Results up to ``cursor`` that errored."""


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One scheduled run's aggregate for a feature x scorer."""

    run_id: str
    suite: str
    feature: str
    scorer: str
    score: float | None
    """The mean; None when every case errored."""
    stderr: float | None
    n: int
    errors: int
    status: RunStatus
    scheduled_for: datetime | None
    finished_at: datetime | None
    fingerprint: str | None
    run_type: RunType = "scheduled"
    """Manual points (experiments) appear only where asked for, as separate marks."""

    @property
    def at(self) -> datetime | None:
        """Where the point sits on a time axis: its slot, else when it finished."""
        return self.scheduled_for or self.finished_at


@dataclass(frozen=True, slots=True)
class KeyVerdict:
    """A key's stored decision in one run, with where and when it was made."""

    run_id: str
    suite: str
    decided_at: datetime
    decision: Decision
