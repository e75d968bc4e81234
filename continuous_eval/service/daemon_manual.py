"""Manual runs: started from the API in the background, or by the CLI in the foreground.

What belongs here: checking the request, taking the same gate and lock as a
scheduled run (so a manual run never overlaps the daemon's run of the same
suite), creating the run, and giving the gate and lock back on every path,
including a setup that fails half way.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from continuous_eval.core.budget import BudgetTracker
from continuous_eval.core.models import Callback, RunRecord
from continuous_eval.errors import ConfigError, GateBusy
from continuous_eval.ports import RunObserver, RunPlan, SuiteLock
from continuous_eval.service.daemon_base import log, new_run
from continuous_eval.service.daemon_execution import DaemonExecution


class DaemonManualRuns(DaemonExecution):
    """Start manual runs, in the background or in the foreground."""

    async def start_manual(
        self,
        suite: str,
        features: Sequence[str] = (),
        *,
        run_id: str | None = None,
        idempotency_key: str | None = None,
        spec_hash: str | None = None,
        callback_url: str | None = None,
    ) -> RunRecord:
        """Start a manual run in the background and return it (``running``).

        ``callback_url`` is told when the run ends, besides the run webhook.

        Raises:
            GateBusy: the suite is running here or in another replica.
            ConfigError: unknown suite or feature, or a bad dataset.
            DuplicateRun: the id or idempotency key is taken.
        """
        run, plan, lock = await self._prepare_manual(
            suite,
            features,
            run_id=run_id,
            idempotency_key=idempotency_key,
            spec_hash=spec_hash,
            callbacks=self._callbacks(callback_url),
        )
        self._spawn(self._run_manual_logged(run, plan, lock))
        return run

    async def run_now(
        self, suite: str, features: Sequence[str] = (), observer: RunObserver | None = None
    ) -> RunRecord:
        """Run a manual run in the foreground (the CLI's ``run``) and return it as it ended.

        Takes the same gate and lock as scheduled runs, so a CLI run never
        overlaps the daemon's run of the same suite.
        """
        run, plan, lock = await self._prepare_manual(
            suite, features, callbacks=self._callbacks(None)
        )
        done = await self._run_manual(run, plan, lock, observer)
        if self._deliver_alerts is not None:
            # A command ends soon after: send the run's notices before it does.
            await self._deliver_alerts()
        return done if done is not None else await self._io(partial(self._store.get_run, run.id))

    async def _prepare_manual(
        self,
        suite: str,
        features: Sequence[str],
        *,
        run_id: str | None = None,
        idempotency_key: str | None = None,
        spec_hash: str | None = None,
        callbacks: tuple[Callback, ...] = (),
    ) -> tuple[RunRecord, RunPlan, SuiteLock]:
        if suite not in self._config.schedules:
            raise ConfigError("request", "suite", f"no suite named {suite!r}")
        if not self.gate.try_enter(suite):
            raise GateBusy(f"suite {suite!r} is already running in this process")
        lock: SuiteLock | None = None
        try:
            lock = await self._io(partial(self._locks.try_acquire, suite, self.owner))
            if lock is None:
                raise GateBusy(f"suite {suite!r} is running in another process", elsewhere=True)
            self._events.lock_held(suite, True)
            now = await self._io(self._store.db_now)
            plan = await self._io(partial(self._plans.plan, suite, features, now))
            new = new_run(
                plan,
                "manual",
                run_id=run_id,
                idempotency_key=idempotency_key,
                spec_hash=spec_hash,
                callbacks=callbacks,
            )
            run = await self._io(partial(self._store.create_run, new, lease=self._lease()))
        except BaseException:
            # Setup failed: give everything back now, or the suite stays blocked.
            if lock is not None:
                lock.release()
                self._events.lock_held(suite, False)
            self.gate.leave(suite)
            raise
        return run, plan, lock

    async def _run_manual_logged(self, run: RunRecord, plan: RunPlan, lock: SuiteLock) -> None:
        try:
            await self._run_manual(run, plan, lock, None)
        except Exception:
            log.exception("manual run failed", extra={"event": "run_failed", "run_id": run.id})

    async def _run_manual(
        self, run: RunRecord, plan: RunPlan, lock: SuiteLock, observer: RunObserver | None
    ) -> RunRecord | None:
        try:
            spent = await self._spend_today(await self._io(self._store.db_now))
            tracker = BudgetTracker(self._config.daily_budget_usd, spent or 0.0)
            schedule = self._config.schedules[run.suite]
            return await self._execute(run, plan, lock, schedule, tracker, observer)
        finally:
            lock.release()
            self._events.lock_held(run.suite, False)
            self.gate.leave(run.suite)
