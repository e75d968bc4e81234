"""Run one suite: cases concurrently, bounded, each result stored as it finishes.

The shape of a run:

- a producer walks the features' case streams and starts a task per case only
  when both the process-wide and the suite's concurrency limits have room, so
  at most ``limit`` cases (and their outputs) are in memory however large the
  dataset is;
- each case calls the target once, then every scorer; any failure becomes that
  case's error result and the run goes on;
- finished results go through a queue to one writer, which stores whatever
  has accumulated in a single transaction (group commit): results land as
  soon as the previous write is done, and the database sees a few large
  writes instead of thousands of small ones;
- at the end the scores are streamed back from the store, aggregated one
  feature x scorer at a time, and written with the final status in one
  transaction.

Only the runner belongs in this module: the producer, the concurrency
limits, the tasks of a run and how a stop ends them. Its parts are one module
each: ``run_cases`` (one case), ``run_writer`` (the group-commit writer),
``run_finish`` (the final write), ``run_state`` (what one execution carries)
and ``run_control`` (the daemon's stop signal). ``RunControl``,
``StopReason``, ``CaseOutcome`` and ``PlanAlerts``, defined here before the
split, are re-exported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from continuous_eval.core.breaker import Breaker
from continuous_eval.core.budget import BudgetTracker
from continuous_eval.core.models import Fence, RunRecord, RunStatus
from continuous_eval.core.secrets import Scrubber
from continuous_eval.core.suite import Case
from continuous_eval.errors import LeaseLost
from continuous_eval.ports import FeaturePlan, RunObserver, RunPlan, RunStore
from continuous_eval.service.blocking import run_blocking
from continuous_eval.service.run_cases import CaseOutcome, run_case
from continuous_eval.service.run_control import RunControl, StopReason
from continuous_eval.service.run_finish import PlanAlerts, RunFinisher
from continuous_eval.service.run_state import RunState, describe
from continuous_eval.service.run_steps import StepRecorder
from continuous_eval.service.run_writer import BATCH_MAX, ResultWriter

__all__ = ["CaseOutcome", "PlanAlerts", "RunControl", "Runner", "StopReason"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class Runner:
    """Executes runs against a store, sharing one process-wide concurrency limit.

    Args:
        store: where results and the run's final state go.
        max_concurrency: cases in flight at once across every run of this runner.
        excerpt_chars: characters of each output kept with its results.
        write_linger_s: how long the writer waits after a result arrives to
            gather others into the same transaction.
        plan_alerts: decides the outbox rows of a run about to end (regressions of a
            succeeded one, the outage notice of one that could not evaluate).
        scrub: takes the configured secrets out of every stored error text.
        breaker_refusals: cases in a row refused by a provider that stop a run
            (``core.breaker``); 0 turns the breaker off.
        completeness_floor: a run that scores less than this share of its
            results ends ``inconclusive``, not ``succeeded``.
    """

    def __init__(
        self,
        store: RunStore,
        *,
        max_concurrency: int,
        excerpt_chars: int = 2000,
        write_linger_s: float = 0.1,
        plan_alerts: PlanAlerts | None = None,
        scrub: Scrubber | None = None,
        breaker_refusals: int = 5,
        completeness_floor: float = 0.9,
    ) -> None:
        if not 0.0 <= completeness_floor <= 1.0:
            raise ValueError("completeness_floor must be in [0, 1]")
        self._breaker_refusals = breaker_refusals
        self._store = store
        # Every error text is scrubbed before it is stored: a provider or a
        # gateway may echo the API key in its error message.
        self._scrub = scrub or Scrubber()
        self._global = asyncio.Semaphore(max_concurrency)
        self._excerpt_chars = excerpt_chars
        # One thread for the store: writes of a run are serialised anyway, and a
        # dedicated thread keeps them off the default pool the targets use.
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="continuous-eval-store")
        self._writer = ResultWriter(store, self._io, linger_s=write_linger_s)
        self._finisher = RunFinisher(
            store, completeness_floor=completeness_floor, plan_alerts=plan_alerts
        )

    def close(self) -> None:
        """Stop the store thread; call once when the process is done with runs."""
        self._io.shutdown(wait=True)

    async def _in_io(self, fn: Callable[[], _T]) -> _T:
        return await run_blocking(self._io, fn)

    async def execute(
        self,
        run: RunRecord,
        plan: RunPlan,
        observer: RunObserver | None = None,
        *,
        fence: Fence | None = None,
        control: RunControl | None = None,
        skip: Collection[tuple[str, str]] = frozenset(),
        budget: BudgetTracker | None = None,
        drain_timeout_s: float = 30.0,
    ) -> RunRecord:
        """Run the cases of ``plan`` into ``run``, then aggregate and finish it.

        Args:
            run: the run row, already created (or adopted) and owned.
            plan: what to run.
            observer: told about each finished case.
            fence: the (attempt, owner) every write is guarded on; a worker that
                lost the run writes nothing more (``LeaseLost`` is raised).
            control: lets the daemon stop the run: pause and shutdown let the
                cases in flight finish (up to ``drain_timeout_s``) and release
                the run; a lost lease or an admin's cancel stops at once and
                writes nothing; the watchdog stops at once and ends it ``failed``.
            skip: (feature, case id) pairs already stored by an earlier attempt.
            budget: the day's judge budget; once spent, judge scorers are
                skipped and the run ends incomplete.
            drain_timeout_s: how long pause and shutdown wait for cases in flight.

        Returns the run as it ends. Cancellation from outside (Ctrl-C) keeps
        what was stored and ends the run ``cancelled``; a failure of the store
        ends it ``failed`` and is raised again.
        """
        control = control if control is not None else RunControl()
        state = RunState(
            run,
            plan,
            fence,
            budget,
            self._scrub,
            Breaker(self._breaker_refusals),
            control,
            StepRecorder(self._store, self._io, run.id),
        )
        # Bounded: when the store falls behind, finished cases wait here holding
        # their concurrency slot, which stops new cases from starting.
        queue: asyncio.Queue[CaseOutcome | None] = asyncio.Queue(maxsize=BATCH_MAX)
        writer = asyncio.create_task(self._writer.write(state, queue), name=f"writer-{run.id}")
        in_flight: set[asyncio.Task[None]] = set()
        producer = asyncio.create_task(
            self._produce(state, queue, observer, writer, in_flight, skip),
            name=f"producer-{run.id}",
        )
        stopper = asyncio.create_task(control.wait())
        try:
            await self._until_done_or_stopped(producer, in_flight, stopper)
            reason = control.reason
            if reason is None:
                await queue.put(None)
                await writer
                return await self._in_io(
                    partial(self._finisher.finish, state, RunStatus.SUCCEEDED, None)
                )
            return await self._stop(state, reason, queue, writer, in_flight, drain_timeout_s)
        except asyncio.CancelledError:
            await _cancel_all(in_flight, writer)
            self._finisher.finish_quietly(
                state, RunStatus.CANCELLED, "cancelled before all cases ran"
            )
            raise
        except LeaseLost:
            await _cancel_all(in_flight, writer)
            log.warning(
                "run taken over or cancelled elsewhere; standing down",
                extra={"event": "run_fenced", "run_id": run.id},
            )
            raise
        except Exception as exc:
            await _cancel_all(in_flight, writer)
            log.exception("run failed", extra={"event": "run_failed", "run_id": run.id})
            self._finisher.finish_quietly(state, RunStatus.FAILED, self._scrub(describe(exc)))
            raise
        finally:
            producer.cancel()
            stopper.cancel()

    async def _until_done_or_stopped(
        self,
        producer: asyncio.Task[None],
        in_flight: set[asyncio.Task[None]],
        stopper: asyncio.Task[None] | None,
    ) -> None:
        """Wait until every case is done, or a stop is asked for (then stop launching)."""
        waiting: set[asyncio.Future[Any]] = {producer}
        if stopper is not None:
            waiting.add(stopper)
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if producer not in done:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer
            return
        producer.result()  # raises when the writer died
        while in_flight:
            pending: set[asyncio.Future[Any]] = set(in_flight)
            if stopper is not None:
                pending.add(stopper)
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if stopper is not None and stopper in done:
                return

    async def _stop(
        self,
        state: RunState,
        reason: StopReason,
        queue: asyncio.Queue[CaseOutcome | None],
        writer: asyncio.Task[None],
        in_flight: set[asyncio.Task[None]],
        drain_timeout_s: float,
    ) -> RunRecord:
        run = state.run
        if reason in (StopReason.LEASE_LOST, StopReason.CANCELLED):
            # Someone else owns the run now (or it is over): write nothing more.
            await _cancel_all(in_flight, writer)
            raise LeaseLost(f"run {run.id} stopped: {reason.value}")
        if reason in (StopReason.PAUSE, StopReason.SHUTDOWN) and in_flight:
            await asyncio.wait(set(in_flight), timeout=drain_timeout_s)
        await _cancel_all(in_flight)
        await queue.put(None)
        await writer
        if reason is StopReason.WATCHDOG:
            why = "watchdog: the run exceeded its time limit and was stopped"
            return await self._in_io(partial(self._finisher.finish, state, RunStatus.FAILED, why))
        if reason is StopReason.BREAKER:
            why = state.scrub(state.breaker.reason())
            log.error(why, extra={"event": "run_breaker_tripped", "run_id": run.id})
            return await self._in_io(partial(self._finisher.finish, state, RunStatus.FAILED, why))
        current = await self._in_io(partial(self._store.get_run, run.id))
        if state.fence is None:
            return current
        # A run an admin paused stays paused through a shutdown; otherwise the
        # next worker would adopt it and the pause would be lost.
        paused = reason is StopReason.PAUSE or current.status is RunStatus.PAUSED
        status = RunStatus.PAUSED if paused else RunStatus.INTERRUPTED
        why = "paused by an admin" if paused else "the worker shut down"
        fence = state.fence
        return await self._in_io(partial(self._store.release_run, run.id, fence, status, why))

    async def _produce(
        self,
        state: RunState,
        queue: asyncio.Queue[CaseOutcome | None],
        observer: RunObserver | None,
        writer: asyncio.Task[None],
        in_flight: set[asyncio.Task[None]],
        skip: Collection[tuple[str, str]],
    ) -> None:
        suite_limit = asyncio.Semaphore(state.plan.concurrency)

        async def one(feature: FeaturePlan, case: Case) -> None:
            try:
                outcome = await run_case(state, feature, case, self._excerpt_chars)
                state.record(outcome.refusal)
                await queue.put(outcome)
                if observer is not None:
                    observer.case_finished(feature.name, case.id, outcome.delta.errored)
            finally:
                self._global.release()
                suite_limit.release()

        for started, (feature, case) in enumerate(_pending_cases(state.plan, skip)):
            if not await _breaker_allows(state, started):
                return
            if not await self._take_slots(state, suite_limit, writer):
                return
            task = asyncio.create_task(one(feature, case))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)

    async def _take_slots(
        self, state: RunState, suite_limit: asyncio.Semaphore, writer: asyncio.Task[None]
    ) -> bool:
        """Take the suite's slot, then the shared one; False when the run stopped meanwhile.

        Suite first, then the shared limit: a suite waiting on its own cap must
        not sit on a slot other suites could use.
        """
        await suite_limit.acquire()
        try:
            await self._global.acquire()
        except BaseException:
            suite_limit.release()
            raise
        if writer.done():
            # The writer died (the store failed): stop starting work.
            self._global.release()
            suite_limit.release()
            writer.result()
        if state.control.reason is not None:
            # Stopped while this case waited for a slot (the breaker just
            # tripped, say): it must not start.
            self._global.release()
            suite_limit.release()
            return False
        return True


async def _cancel_all(tasks: set[asyncio.Task[None]], *more: asyncio.Task[None]) -> None:
    """Cancel tasks and wait for them to finish, so none is left behind."""
    pending = [*tasks, *more]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


def _pending_cases(
    plan: RunPlan, skip: Collection[tuple[str, str]]
) -> Iterator[tuple[FeaturePlan, Case]]:
    """Every case of the plan, feature by feature, less those already stored (``skip``)."""
    for feature in plan.features:
        for case in feature.cases():
            if not skip or (feature.name, case.id) not in skip:
                yield feature, case


async def _breaker_allows(state: RunState, started: int) -> bool:
    """Wait until the breaker lets one more case start; False once it has tripped.

    Until a case goes through unrefused, no more cases start than the
    breaker's threshold: a bad key costs that many requests.
    """
    while not state.breaker.may_start(started):
        if state.breaker.tripped:
            return False
        await state.breaker_changed()
    return True
