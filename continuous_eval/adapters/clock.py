"""The real clock. Only the edges (the CLI, the daemon's tick) read it."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    """Aware UTC time from the operating system."""

    def now(self) -> datetime:
        """Return the current time in UTC."""
        return datetime.now(UTC)
