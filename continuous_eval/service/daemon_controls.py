"""Admin controls of a run: cancel, pause and resume.

What belongs here: turning an admin's action into the store's new state and
into what this process does about it. The store decides whether the action
applies (``core.lifecycle``); a run this process executes is then stopped
through its ``RunControl``, a cancelled run keeps the aggregates of what
finished, and a resumed run is adopted as an orphaned one would be.
"""

from __future__ import annotations

from functools import partial

from continuous_eval.core.models import ControlAction, RunRecord, RunStatus
from continuous_eval.core.scoring import aggregate_rows
from continuous_eval.errors import ContinuousEvalError
from continuous_eval.ports import SuiteLock, SuiteSchedule, TickOutcome
from continuous_eval.service.daemon_ticks import DaemonTicks
from continuous_eval.service.run_control import StopReason


class DaemonControls(DaemonTicks):
    """Cancel, pause and resume runs, here or in another replica."""

    async def control(self, run_id: str, action: ControlAction) -> RunRecord:
        """Cancel, pause or resume a run; returns the run's resulting state."""
        run = await self._io(partial(self._store.control_run, run_id, action))
        local = self._active.get(run_id)
        if action == "cancel" and run.status is RunStatus.CANCELLED:
            if local is not None:
                local.stop(StopReason.CANCELLED)
            # Keep the aggregates of what finished, so a cancelled run still shows.
            await self._io(partial(self._store_aggregates, run))
        elif action == "pause" and run.status is RunStatus.PAUSED and local is not None:
            local.stop(StopReason.PAUSE)
        elif action == "resume" and run.status is RunStatus.QUEUED:
            schedule = self._config.schedules.get(run.suite)
            if schedule is not None and not self._stopping:
                self._spawn(self._gated(run.suite, partial(self._resume, run.suite, schedule)))
        return run

    async def _resume(self, suite: str, schedule: SuiteSchedule, lock: SuiteLock) -> TickOutcome:
        ran = await self._adopt_and_run(suite, schedule, lock)
        return TickOutcome.RAN if ran else TickOutcome.NOT_DUE

    def _store_aggregates(self, run: RunRecord) -> None:
        try:
            plan = self._plans.plan(run.suite, run.features, run.as_of)
            expected = [(f.name, s.name) for f in plan.features for s in f.scorers]
            fingerprints = plan.pair_fingerprints
        except ContinuousEvalError:
            expected, fingerprints = [], {}
        aggregates = aggregate_rows(self._store.iter_scores(run.id), expected, fingerprints)
        self._store.replace_aggregates(run.id, aggregates)
