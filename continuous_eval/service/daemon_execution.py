"""Executing a claimed run: the runner, its lease heartbeat and its watchdog.

What belongs here: what happens between a run being owned (claimed, adopted
or started by hand) and it ending. The run executes inside its log context;
a heartbeat renews its lease and checks the suite lock, and stops the run the
moment either is lost; a watchdog stops it after ``watchdog_s``. Ticks,
manual runs and resumes all come through ``_execute``, so a run behaves the
same however it started.
"""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial

from continuous_eval import log_context
from continuous_eval.core.budget import BudgetTracker
from continuous_eval.core.models import Fence, RunRecord, RunStatus
from continuous_eval.errors import LeaseLost
from continuous_eval.ports import RunObserver, RunPlan, SuiteLock, SuiteSchedule
from continuous_eval.service.daemon_base import DaemonBase, log
from continuous_eval.service.run_control import RunControl, StopReason


class DaemonExecution(DaemonBase):
    """Execute owned runs under a heartbeat and a watchdog."""

    async def _execute(
        self,
        run: RunRecord,
        plan: RunPlan,
        lock: SuiteLock,
        schedule: SuiteSchedule,
        budget: BudgetTracker,
        observer: RunObserver | None = None,
    ) -> RunRecord | None:
        fence = Fence(run.attempt, self.owner)
        skip: frozenset[tuple[str, str]] = frozenset()
        if run.attempt > 1 or run.cases_done:
            counts = await self._io(partial(self._store.case_result_counts, run.id))
            skip = frozenset(key for key, n in counts.items() if n > 0)
        with log_context.bound(
            run_id=run.id,
            suite=run.suite,
            attempt=run.attempt,
            slot=run.scheduled_for.isoformat() if run.scheduled_for else None,
            owner=self.owner,
        ):
            return await self._execute_bound(
                run, plan, lock, schedule, budget, fence, skip, observer
            )

    async def _execute_bound(
        self,
        run: RunRecord,
        plan: RunPlan,
        lock: SuiteLock,
        schedule: SuiteSchedule,
        budget: BudgetTracker,
        fence: Fence,
        skip: frozenset[tuple[str, str]],
        observer: RunObserver | None,
    ) -> RunRecord | None:
        # Inside the run's log context: every task started here (cases, the
        # writer, the heartbeat) and every thread they call inherits it.
        log.info(
            "run started",
            extra={"event": "run_started", "run_type": run.run_type, "cases": run.cases_total},
        )
        control = RunControl()
        self._active[run.id] = control
        heartbeat = asyncio.create_task(self._heartbeat(run, fence, lock, control))
        watchdog = asyncio.get_running_loop().call_later(
            schedule.watchdog_s, control.stop, StopReason.WATCHDOG
        )
        try:
            done = await self._runner.execute(
                run,
                plan,
                observer,
                fence=fence,
                control=control,
                skip=skip,
                budget=budget,
                drain_timeout_s=self._config.drain_timeout_s,
            )
        except LeaseLost:
            log.warning(
                "stood down: the run is owned elsewhere or was cancelled",
                extra={"event": "run_stood_down", "run_id": run.id},
            )
            return None
        finally:
            watchdog.cancel()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            self._active.pop(run.id, None)
        log.info(
            "run ended",
            extra={"event": "run_ended", "run_id": done.id, "status": done.status.value},
        )
        self._events.run_finished(done)
        if self._deliver_alerts is not None:
            self._spawn(self._deliver_alerts())  # the outbox rows it just wrote
        return done

    async def _heartbeat(
        self, run: RunRecord, fence: Fence, lock: SuiteLock, control: RunControl
    ) -> None:
        """Renew the lease and check the lock; stop the run the moment either is lost.

        A database that cannot be reached is retried until the lease would have
        expired by our own clock; from then on another replica may own the run,
        so this worker must stop writing.
        """
        loop = asyncio.get_running_loop()
        lease_s, beat_s = self._config.lease_s, self._config.heartbeat_s
        deadline = loop.time() + lease_s
        while True:
            await asyncio.sleep(beat_s)
            if not await self._io(lock.check):
                log.error(
                    "lost the suite lock; stopping the run",
                    extra={"event": "lock_lost", "run_id": run.id, "suite": run.suite},
                )
                control.stop(StopReason.LEASE_LOST)
                return
            try:
                current = await self._io(partial(self._store.renew_lease, run.id, fence, lease_s))
            except LeaseLost:
                control.stop(StopReason.LEASE_LOST)
                return
            except Exception as exc:
                log.warning(
                    "could not renew the lease: %s",
                    exc,
                    extra={"event": "lease_renew_failed", "run_id": run.id},
                )
                if loop.time() + beat_s >= deadline:
                    control.stop(StopReason.LEASE_LOST)
                    return
                continue
            deadline = loop.time() + lease_s
            if current.status is RunStatus.PAUSED:
                control.stop(StopReason.PAUSE)
