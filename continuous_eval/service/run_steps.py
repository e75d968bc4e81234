"""A run's agent steps: stored as each arrives, so the run's event stream shows them live.

What belongs here: ``StepRecorder``, which the runner gives each case whose
target streams its steps (``ports.StreamingTarget``), and which stores the
steps of a target that returns them only at the end. Writes go through the
runner's store thread, one small transaction per step, and are awaited
before the target reads its next step: a slow store slows the case, it never
piles steps up in memory. A failed write fails the case (its target errors
with the store's message); the results writer meets the same store next.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from functools import partial

from continuous_eval.core.trajectory import Step
from continuous_eval.ports import CaseStepStore
from continuous_eval.service.blocking import run_blocking


class StepRecorder:
    """Hands out the step writers of a run's cases.

    Args:
        store: where the steps go.
        io: the runner's store thread.
        run_id: the run the steps belong to.
    """

    def __init__(self, store: CaseStepStore, io: Executor | None, run_id: str) -> None:
        self._store = store
        self._io = io
        self._run_id = run_id

    def for_case(self, feature: str, case_id: str) -> CaseStepWriter:
        """A writer for one case's steps."""
        return CaseStepWriter(self._store, self._io, self._run_id, feature, case_id)


class CaseStepWriter:
    """Store one case's steps: each as it arrives (``on_step``), or all at the end."""

    def __init__(
        self, store: CaseStepStore, io: Executor | None, run_id: str, feature: str, case_id: str
    ) -> None:
        self._store = store
        self._io = io
        self._run_id = run_id
        self._feature = feature
        self._case_id = case_id
        self.stored = 0
        """Steps stored live so far."""

    async def on_step(self, case_id: str, index: int, step: Step) -> None:
        """Store one step at its position (a ``ports.StepListener``)."""
        save = partial(
            self._store.save_case_steps, self._run_id, self._feature, case_id, [step], first=index
        )
        await run_blocking(self._io, save)
        self.stored = index + 1

    async def finish(self, steps: Sequence[Step]) -> None:
        """Store the answer's steps, unless every one was already stored live."""
        if not steps or self.stored == len(steps):
            return
        save = partial(
            self._store.save_case_steps, self._run_id, self._feature, self._case_id, list(steps)
        )
        await run_blocking(self._io, save)
