"""Test doubles a test synchronises with by awaiting them, never by sleeping.

A test that sleeps "long enough" for a run to make progress is slow on a
quiet machine and flaky on a busy one. These doubles say when something
happened instead: a test awaits ``answered(3)`` and goes on the moment the
third case has an answer, however fast or slow the machine is.
"""

from __future__ import annotations

import asyncio

from continuous_eval.core.models import TargetOutput
from continuous_eval.core.suite import Case


class GatedTarget:
    """A ``Target`` that answers each case once its gate is open, and counts its answers.

    ``gate`` is open at first; clear it to hold every call where it is, set
    it to let them go. ``delay`` is simulated latency per answer (it spaces
    answers out; tests never wait on it). Every call's case id is recorded
    in ``calls``, in the order the calls began.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self._answered = 0
        self._changed = asyncio.Condition()

    @property
    def answered_count(self) -> int:
        """Answers given so far."""
        return self._answered

    async def answer(self, case: Case) -> TargetOutput:
        """Wait for the gate (and the latency), then answer ``answer <case id>``."""
        self.calls.append(case.id)
        await self.gate.wait()
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        async with self._changed:
            self._answered += 1
            self._changed.notify_all()
        return TargetOutput(f"answer {case.id}")

    async def answered(self, count: int) -> None:
        """Return once at least ``count`` answers were given."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._answered >= count)

    async def aclose(self) -> None:
        """Nothing to close."""
