"""The daemon: scheduled ticks, manual runs, takeovers, and graceful shutdown.

One tick, per suite (see the architecture page)::

    enabled? -> due or orphaned run? -> gate (in-process, try) -> lock (cross-process, try)
      -> adopt an orphaned run, or: due again? budget? claim the slot -> run -> release

Everything here talks to ports only; the scheduler (APScheduler), the HTTP app
and the database are adapters wired in ``app.container``. The store and lock calls
are blocking and go to worker threads; a lock release is blocking on purpose,
in ``finally``, so that no cancellation can skip it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TypeVar

from continuous_eval import log_context
from continuous_eval.core.budget import BudgetTracker, check_budget, day_start
from continuous_eval.core.due import check_due
from continuous_eval.core.models import (
    Callback,
    ControlAction,
    Fence,
    Lease,
    NewRun,
    RunRecord,
    RunStatus,
    RunType,
)
from continuous_eval.core.scoring import aggregate_rows
from continuous_eval.errors import (
    ConfigError,
    ContinuousEvalError,
    DuplicateRun,
    GateBusy,
    LeaseLost,
)
from continuous_eval.ports import (
    DaemonEvents,
    PlanSource,
    RunObserver,
    RunPlan,
    RunStore,
    SuiteLock,
    SuiteLocks,
    SuiteSchedule,
    TickOutcome,
)
from continuous_eval.service.blocking import run_blocking
from continuous_eval.service.runner import RunControl, Runner, StopReason

log = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """How the daemon behaves; built from settings in ``app.config``."""

    owner: str
    """This replica's name in leases and locks."""
    schedules: Mapping[str, SuiteSchedule]
    lease_s: float
    heartbeat_s: float
    drain_timeout_s: float
    daily_budget_usd: float | None
    run_webhook_url: str | None = None
    """Every run's completion is posted here (``core.run_notice``)."""


class NullEvents:
    """Reports nowhere; for tests and the CLI."""

    def tick(self, suite: str, outcome: TickOutcome) -> None:
        """Ignore."""

    def lock_held(self, suite: str, held: bool) -> None:
        """Ignore."""

    def budget_unreadable(self) -> None:
        """Ignore."""

    def run_finished(self, run: RunRecord) -> None:
        """Ignore."""


class RunGate:
    """In-process mutual exclusion per suite, shared by scheduled ticks and manual runs.

    Try, never wait: a tick that finds the suite busy counts ``gate_busy`` and
    moves on, and a manual request gets a conflict at once.
    """

    def __init__(self) -> None:
        self._busy: set[str] = set()

    def try_enter(self, suite: str) -> bool:
        """Take the suite's gate if it is free."""
        if suite in self._busy:
            return False
        self._busy.add(suite)
        return True

    def leave(self, suite: str) -> None:
        """Free the suite's gate; harmless when not held."""
        self._busy.discard(suite)

    def busy(self, suite: str) -> bool:
        """Whether the suite is running in this process."""
        return suite in self._busy


class Daemon:
    """Schedules, runs, takes over and controls runs for the suites of one config."""

    def __init__(
        self,
        *,
        store: RunStore,
        locks: SuiteLocks,
        runner: Runner,
        plans: PlanSource,
        config: DaemonConfig,
        events: DaemonEvents | None = None,
        deliver_alerts: Callable[[], Awaitable[int]] | None = None,
        io_executor: Executor | None = None,
    ) -> None:
        self._deliver_alerts = deliver_alerts
        # The daemon's own blocking calls (store, locks) go here, never to the
        # default pool that sync user code shares; the owner shuts it down
        # (waiting) before it disposes of the engine.
        self._io_executor = io_executor
        self._store = store
        self._locks = locks
        self._runner = runner
        self._plans = plans
        self._config = config
        self._events: DaemonEvents = events or NullEvents()
        self.gate = RunGate()
        self._active: dict[str, RunControl] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self._stopping = False

    @property
    def owner(self) -> str:
        """This replica's lease owner name."""
        return self._config.owner

    # ------------------------------------------------------------------ ticks

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
        plan = await self._io(partial(self._plans.plan, suite, ()))
        new = _new_run(
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
        plan = await self._io(partial(self._plans.plan, suite, run.features))
        spent = await self._spend_today(await self._io(self._store.db_now))
        tracker = BudgetTracker(self._config.daily_budget_usd, spent or 0.0)
        await self._execute(run, plan, lock, schedule, tracker)
        return True

    # ------------------------------------------------------------ manual runs

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
            plan = await self._io(partial(self._plans.plan, suite, features))
            new = _new_run(
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

    # -------------------------------------------------------------- executing

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

    # --------------------------------------------------------------- controls

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
            plan = self._plans.plan(run.suite, run.features)
            expected = [(f.name, s.name) for f in plan.features for s in f.scorers]
            fingerprints = plan.pair_fingerprints
        except ContinuousEvalError:
            expected, fingerprints = [], {}
        aggregates = aggregate_rows(self._store.iter_scores(run.id), expected, fingerprints)
        self._store.replace_aggregates(run.id, aggregates)

    # --------------------------------------------------------------- shutdown

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

    # ---------------------------------------------------------------- helpers

    def _lease(self) -> Lease:
        return Lease(self.owner, self._config.lease_s)

    def _callbacks(self, callback_url: str | None) -> tuple[Callback, ...]:
        """Where a new run's completion is posted: the request's URL and the run webhook."""
        found = []
        if callback_url is not None:
            found.append(Callback("callback", callback_url))
        if self._config.run_webhook_url is not None:
            found.append(Callback("run_webhook", self._config.run_webhook_url))
        return tuple(found)

    async def _spend_today(self, now: datetime) -> float | None:
        try:
            return await self._io(partial(self._store.judge_spend_since, day_start(now)))
        except Exception as exc:
            log.warning(
                "could not read today's judge spend: %s", exc, extra={"event": "budget_read_failed"}
            )
            return None

    def _spawn(self, coro: Awaitable[object]) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _io(self, fn: Callable[[], _T]) -> _T:
        return await run_blocking(self._io_executor, fn)


def _new_run(
    plan: RunPlan,
    run_type: RunType,
    *,
    scheduled_for: datetime | None = None,
    run_id: str | None = None,
    idempotency_key: str | None = None,
    spec_hash: str | None = None,
    callbacks: tuple[Callback, ...] = (),
) -> NewRun:
    return NewRun(
        id=run_id or str(uuid.uuid4()),
        suite=plan.suite,
        run_type=run_type,
        features=tuple(f.name for f in plan.features),
        cases_total=plan.cases_total,
        total=plan.results_total,
        fingerprint=plan.fingerprint,
        fingerprint_parts=plan.fingerprint_parts,
        scheduled_for=scheduled_for,
        idempotency_key=idempotency_key,
        spec_hash=spec_hash,
        callbacks=callbacks,
    )
