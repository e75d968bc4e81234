"""``FakeClock``: a ``Clock`` that only moves when the test moves it.

Only the fake clock belongs here. A store given one (in memory, or a SQL
store) reads it for every time it writes or compares, as it would the
database's clock, so a test expires a lease by advancing it on every backend.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from continuous_eval.core.lifecycle import require_aware

DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)
"""Where a ``FakeClock`` starts unless told otherwise: a fixed, readable instant."""


class FakeClock:
    """A ``Clock`` that only moves when the test moves it.

    Args:
        start: The first time ``now()`` returns; must be timezone-aware.
    """

    def __init__(self, start: datetime = DEFAULT_START) -> None:
        self._lock = threading.Lock()
        self._now = _utc(start)

    def now(self) -> datetime:
        """Return the current fake time, aware, in UTC."""
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (aware; converted to UTC). Going backwards is allowed."""
        with self._lock:
            self._now = _utc(when)

    def advance(self, delta: timedelta | None = None, *, seconds: float = 0.0) -> datetime:
        """Move forward by ``delta`` plus ``seconds`` and return the new time."""
        step = (delta or timedelta()) + timedelta(seconds=seconds)
        with self._lock:
            self._now += step
            return self._now


def _utc(when: datetime) -> datetime:
    require_aware(when, "the fake clock's time")
    return when.astimezone(UTC)
