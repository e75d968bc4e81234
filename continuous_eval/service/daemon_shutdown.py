"""Graceful shutdown, and waiting for the work in flight.

What belongs here: stopping the daemon from claiming more work, letting the
runs in flight release themselves (``interrupted``, adoptable at once by
another replica), cancelling what outlives the timeout, and the read-only
views of what is still going on.
"""

from __future__ import annotations

import asyncio

from continuous_eval.service.daemon_base import DaemonBase
from continuous_eval.service.run_control import StopReason


class DaemonShutdown(DaemonBase):
    """Stop the daemon, or wait for what it started."""

    async def shutdown(self, timeout_s: float) -> None:
        """Stop claiming work, let runs in flight release themselves, then cancel the rest.

        Runs are released ``interrupted`` (adoptable at once by another
        replica), locks and gates in their ``finally`` blocks.
        """
        self._stopping = True
        for control in list(self._active.values()):
            control.stop(StopReason.SHUTDOWN)
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=timeout_s)
            for task in still:
                task.cancel()
            if still:
                await asyncio.gather(*still, return_exceptions=True)

    async def settled(self) -> None:
        """Return once every run, resume and delivery this process started has ended.

        For a caller that must wait for work in flight without stopping the
        daemon (a test, a one-shot command); ``shutdown`` is the way to stop.
        """
        while pending := [t for t in self._tasks if not t.done()]:
            await asyncio.wait(pending)

    @property
    def running(self) -> list[str]:
        """Ids of the runs this process is executing."""
        return list(self._active)
