"""The scheduled tick: per suite, due or orphaned, gate, lock, claim or adopt.

What belongs here: the scheduler's job and everything it decides (see the
architecture page)::

    enabled? -> due or orphaned run? -> gate (in-process, try) -> lock (cross-process, try)
      -> adopt an orphaned run, or: due again? budget? claim the slot -> run -> release

A claim is idempotent in the database (one run per suite and slot), so a
double fire or a second replica loses the claim instead of running twice.
``_gated`` and ``_adopt_and_run`` are shared with the controls (a resumed run
is adopted the way an orphaned one is).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from functools import partial

from continuous_eval import log_context
from continuous_eval.core.budget import BudgetTracker, check_budget
from continuous_eval.core.due import check_due
from continuous_eval.core.models import RunStatus
from continuous_eval.errors import DuplicateRun
from continuous_eval.ports import SuiteLock, SuiteSchedule, TickOutcome
from continuous_eval.service.daemon_base import log, new_run
from continuous_eval.service.daemon_execution import DaemonExecution


class DaemonTicks(DaemonExecution):
    """Check each suite on every tick; claim, adopt and run what is due."""

    async def tick(self) -> None:
        """The scheduled job: start each suite's check in the background and return.

        Returning at once keeps the scheduler's job short (``max_instances=1``
        never trips on a long run), and one slow suite never delays another.
        """
        if self._stopping:
            return
        for suite in self._config.schedules:
            self._spawn(self.tick_suite(suite))
        if self._deliver_alerts is not None:
            # Pending alerts (a failed send, a crash, a restart) go out on every tick.
            self._spawn(self._deliver_alerts())

    async def tick_suite(self, suite: str) -> TickOutcome:
        """Check one suite and run it when due; never raises."""
        with log_context.bound(suite=suite, owner=self.owner):
            try:
                outcome = await self._tick_suite(suite)
            except Exception:
                log.exception("tick failed", extra={"event": "tick_failed"})
                outcome = TickOutcome.ERROR
            log.info("tick", extra={"event": "tick", "outcome": outcome.value})
        self._events.tick(suite, outcome)
        return outcome

    async def _tick_suite(self, suite: str) -> TickOutcome:
        schedule = self._config.schedules[suite]
        if not schedule.enabled:
            return TickOutcome.DISABLED  # touches nothing, not even the database
        # A cheap look first, without gate or lock: most ticks end here.
        now = await self._io(self._store.db_now)
        newest = await self._io(partial(self._store.newest_scheduled, suite))
        decision = check_due(newest.started_at if newest else None, schedule.interval, now)
        orphan = await self._io(partial(self._store.adoptable_run, suite))
        if not decision.due and orphan is None:
            return TickOutcome.NOT_DUE
        return await self._gated(suite, partial(self._claim_and_run, suite, schedule))

    async def _gated(
        self, suite: str, work: Callable[[SuiteLock], Awaitable[TickOutcome]]
    ) -> TickOutcome:
        """Run ``work`` holding the suite's gate and lock; both are released on every path."""
        if self._stopping:
            return TickOutcome.STOPPING
        if not self.gate.try_enter(suite):
            return TickOutcome.GATE_BUSY
        try:
            lock = await self._io(partial(self._locks.try_acquire, suite, self.owner))
            if lock is None:
                return TickOutcome.LOCKED_ELSEWHERE
            self._events.lock_held(suite, True)
            try:
                return await work(lock)
            finally:
                lock.release()  # blocking on purpose: no cancellation can skip it
                self._events.lock_held(suite, False)
        finally:
            self.gate.leave(suite)

    async def _claim_and_run(
        self, suite: str, schedule: SuiteSchedule, lock: SuiteLock
    ) -> TickOutcome:
        if await self._adopt_and_run(suite, schedule, lock):
            return TickOutcome.RAN
        # Due again? Another replica may have run the suite while we waited.
        now = await self._io(self._store.db_now)
        newest = await self._io(partial(self._store.newest_scheduled, suite))
        decision = check_due(newest.started_at if newest else None, schedule.interval, now)
        if not decision.due or decision.slot is None:
            return TickOutcome.NOT_DUE
        spent = await self._spend_today(now)
        budget = check_budget(self._config.daily_budget_usd, spent)
        if budget.spend_unreadable:
            log.warning(budget.reason, extra={"event": "budget_unreadable", "suite": suite})
            self._events.budget_unreadable()
        plan = await self._io(partial(self._plans.plan, suite, (), decision.slot))
        new = new_run(
            plan, "scheduled", scheduled_for=decision.slot, callbacks=self._callbacks(None)
        )
        if not budget.allowed:
            skipped = dataclasses.replace(new, reason=budget.reason)
            try:
                run = await self._io(
                    partial(self._store.create_run, skipped, status=RunStatus.SKIPPED)
                )
            except DuplicateRun:
                return TickOutcome.CLAIM_LOST
            log.warning(budget.reason, extra={"event": "run_skipped", "suite": suite})
            self._events.run_finished(run)
            return TickOutcome.BUDGET_SKIPPED
        try:
            run = await self._io(partial(self._store.create_run, new, lease=self._lease()))
        except DuplicateRun:
            return TickOutcome.CLAIM_LOST  # another replica (or a double fire) took the slot
        tracker = BudgetTracker(self._config.daily_budget_usd, spent or 0.0)
        await self._execute(run, plan, lock, schedule, tracker)
        return TickOutcome.RAN

    async def _adopt_and_run(self, suite: str, schedule: SuiteSchedule, lock: SuiteLock) -> bool:
        """Take over an orphaned, interrupted or resumed run of the suite, if there is one."""
        orphan = await self._io(partial(self._store.adoptable_run, suite))
        if orphan is None:
            return False
        run = await self._io(
            partial(
                self._store.adopt_run,
                orphan.id,
                orphan.attempt,
                self._lease(),
                schedule.max_attempts,
            )
        )
        if run is None:
            return False
        if run.status.terminal:
            log.error(
                run.status_reason or "run gave up",
                extra={"event": "run_gave_up", "run_id": run.id, "suite": suite},
            )
            self._events.run_finished(run)
            return True
        log.warning(
            "taking over a run",
            extra={"event": "run_adopted", "run_id": run.id, "attempt": run.attempt},
        )
        plan = await self._io(partial(self._plans.plan, suite, run.features, run.as_of))
        spent = await self._spend_today(await self._io(self._store.db_now))
        tracker = BudgetTracker(self._config.daily_budget_usd, spent or 0.0)
        await self._execute(run, plan, lock, schedule, tracker)
        return True
