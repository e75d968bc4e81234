"""When is a suite's scheduled run due, and which slot does it claim?

Due means: the suite has no scheduled run, or its newest scheduled run
started at least ``interval`` before ``now`` (the boundary is due). ``now``
is the database's clock, so replicas with skewed clocks agree.

The slot is the run's ``scheduled_for``, unique per suite: every replica
that reads the same history computes the same slot, so a double fire inserts
the same (suite, slot) twice and the second insert is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class DueDecision:
    """Whether to run now, and the slot to claim when so."""

    due: bool
    slot: datetime | None
    """The due moment: the newest run's start plus the interval, or, for a
    suite that never ran, ``now`` rounded down to the interval grid."""
    reason: str


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def floor_to_grid(now: datetime, interval: timedelta) -> datetime:
    """Round ``now`` down to a multiple of ``interval`` since the Unix epoch (UTC)."""
    steps = (now - EPOCH) // interval
    return EPOCH + steps * interval


def check_due(
    newest_started_at: datetime | None, interval: timedelta, now: datetime
) -> DueDecision:
    """Decide whether a scheduled run is due.

    Args:
        newest_started_at: start of the suite's newest scheduled run (of any
            status: a skipped slot counts, so a budget skip waits a full
            interval instead of retrying every tick), or None.
        interval: time between scheduled runs; must be positive.
        now: the current time, timezone-aware (the database's clock).
    """
    _require_aware(now, "now")
    if interval <= timedelta(0):
        raise ValueError("interval must be positive")
    if newest_started_at is None:
        return DueDecision(True, floor_to_grid(now, interval), "no scheduled run yet")
    _require_aware(newest_started_at, "newest_started_at")
    due_at = newest_started_at + interval
    if now >= due_at:
        return DueDecision(
            True,
            due_at.astimezone(UTC),
            f"last scheduled run started {now - newest_started_at} ago",
        )
    return DueDecision(False, None, f"next due at {due_at.astimezone(UTC).isoformat()}")
