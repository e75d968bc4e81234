"""The stop signal between the daemon and a running run.

What belongs here: ``StopReason`` and ``RunControl``, the one thing the
daemon (heartbeat, watchdog, controls, shutdown) and the runner (breaker)
both hold for a run in flight. Apart from both so that neither imports the
other for it; ``runner`` re-exports them.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum


class StopReason(StrEnum):
    """Why the daemon stops a run before its cases are done."""

    PAUSE = "paused"
    SHUTDOWN = "shutdown"
    LEASE_LOST = "lease lost"
    CANCELLED = "cancelled"
    WATCHDOG = "watchdog"
    BREAKER = "breaker"


class RunControl:
    """A one-shot stop signal from the daemon to a running run; the first reason wins."""

    def __init__(self) -> None:
        self._reason: StopReason | None = None
        self._event = asyncio.Event()

    @property
    def reason(self) -> StopReason | None:
        """Why the run is being stopped, or None while it should go on."""
        return self._reason

    def stop(self, reason: StopReason) -> None:
        """Ask the run to stop; later calls do not change the reason."""
        if self._reason is None:
            self._reason = reason
            self._event.set()

    async def wait(self) -> None:
        """Return once a stop is asked for."""
        await self._event.wait()
