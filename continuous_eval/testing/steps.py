"""``MemoryCaseSteps``: the ``CaseStepStore`` seam in dictionaries; see ``adapters.db.steps``."""

from __future__ import annotations

from collections.abc import Sequence

from continuous_eval.core.case_steps import StoredStep
from continuous_eval.core.trajectory import Step
from continuous_eval.testing.base import MemoryStoreBase


class MemoryCaseSteps(MemoryStoreBase):
    """Store each case's steps; read them back by case or by id, as ``SqlCaseSteps``."""

    def save_case_steps(
        self, run_id: str, feature: str, case_id: str, steps: Sequence[Step], *, first: int = 0
    ) -> None:
        """Store steps at positions ``first``...; ``first == 0`` replaces the case's steps."""
        with self._lock:
            self._run(run_id)
            stored = self.steps.setdefault(run_id, {})
            if first == 0:
                stored = {k: v for k, v in stored.items() if k[:2] != (feature, case_id)}
                self.steps[run_id] = stored
            for offset, step in enumerate(steps):
                key = (feature, case_id, first + offset)
                kept = stored.get(key)
                # An upsert keeps the row's id, as the SQL table's does.
                step_id = kept.id if kept is not None else next(self._step_ids)
                stored[key] = StoredStep(step_id, feature, case_id, first + offset, step)

    def case_steps(self, run_id: str, feature: str, case_id: str) -> list[Step]:
        """A case's steps in order."""
        with self._lock:
            self._run(run_id)
            rows = [
                s
                for s in self.steps.get(run_id, {}).values()
                if (s.feature, s.case_id) == (feature, case_id)
            ]
            return [s.step for s in sorted(rows, key=lambda s: s.seq)]

    def steps_after(self, run_id: str, *, after_id: int, limit: int) -> list[StoredStep]:
        """Up to ``limit`` of the run's steps with id > ``after_id``, by id."""
        with self._lock:
            rows = sorted(self.steps.get(run_id, {}).values(), key=lambda s: s.id)
            return [s for s in rows if s.id > after_id][:limit]

    def newest_step_id(self, run_id: str) -> int:
        """The id of the run's newest step, 0 when it has none."""
        with self._lock:
            return max((s.id for s in self.steps.get(run_id, {}).values()), default=0)
