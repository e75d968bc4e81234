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
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import partial
from typing import Any, TypeVar

from continuous_eval.core.breaker import Breaker
from continuous_eval.core.budget import BudgetTracker
from continuous_eval.core.models import (
    NO_USAGE,
    CaseResult,
    Fence,
    ProgressDelta,
    ResultStatus,
    RunRecord,
    RunStatus,
    ScoreAggregate,
    ScoreOutcome,
    TargetOutput,
    Usage,
)
from continuous_eval.core.scoring import aggregate_rows
from continuous_eval.core.secrets import Scrubber
from continuous_eval.core.suite import Case
from continuous_eval.errors import CaseError, ContinuousEvalError, LeaseLost
from continuous_eval.ports import CaseScorer, FeaturePlan, RunObserver, RunPlan, RunStore
from continuous_eval.service.alerts import FinishPlan
from continuous_eval.service.blocking import run_blocking

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_BATCH_MAX = 512
"""Most results one write stores; bounds the transaction size under a burst."""


PlanAlerts = Callable[[RunStore, RunRecord, Sequence[ScoreAggregate], datetime], FinishPlan]
"""Decides the decisions and outbox rows of a run about to end (``AlertPlanner.plan``)."""


@dataclass(frozen=True, slots=True)
class CaseOutcome:
    """What one case produced, before storage."""

    results: list[CaseResult]
    delta: ProgressDelta
    refusal: str | None = None
    """A provider's refusal the case met (its target's or a scorer's), for the breaker."""


def _excerpt(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]


def _describe(exc: BaseException) -> str:
    message = str(exc).strip()
    if isinstance(exc, ContinuousEvalError) and message:
        # Our adapters already describe the cause; the class name adds nothing.
        return message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


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
        self._floor = completeness_floor
        self._store = store
        # Every error text is scrubbed before it is stored: a provider or a
        # gateway may echo the API key in its error message.
        self._scrub = scrub or Scrubber()
        self._linger_s = write_linger_s
        self._plan_alerts = plan_alerts
        self._global = asyncio.Semaphore(max_concurrency)
        self._excerpt_chars = excerpt_chars
        # One thread for the store: writes of a run are serialised anyway, and a
        # dedicated thread keeps them off the default pool the targets use.
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="continuous-eval-store")

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
        state = _RunState(
            run, plan, fence, budget, self._scrub, Breaker(self._breaker_refusals), control
        )
        # Bounded: when the store falls behind, finished cases wait here holding
        # their concurrency slot, which stops new cases from starting.
        queue: asyncio.Queue[CaseOutcome | None] = asyncio.Queue(maxsize=_BATCH_MAX)
        writer = asyncio.create_task(self._write(state, queue), name=f"writer-{run.id}")
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
                return await self._in_io(partial(self._finish, state, RunStatus.SUCCEEDED, None))
            return await self._stop(state, reason, queue, writer, in_flight, drain_timeout_s)
        except asyncio.CancelledError:
            await _cancel_all(in_flight, writer)
            self._finish_quietly(state, RunStatus.CANCELLED, "cancelled before all cases ran")
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
            self._finish_quietly(state, RunStatus.FAILED, self._scrub(_describe(exc)))
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
        state: _RunState,
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
            return await self._in_io(partial(self._finish, state, RunStatus.FAILED, why))
        if reason is StopReason.BREAKER:
            why = state.scrub(state.breaker.reason())
            log.error(why, extra={"event": "run_breaker_tripped", "run_id": run.id})
            return await self._in_io(partial(self._finish, state, RunStatus.FAILED, why))
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

    def _finish(self, state: _RunState, status: RunStatus, reason: str | None) -> RunRecord:
        if status is RunStatus.SUCCEEDED and state.budget_skipped:
            reason = (
                f"incomplete: the daily judge budget ran out "
                f"({state.budget_skipped} judge scores skipped; "
                f"{state.budget.describe() if state.budget else ''})"
            )
        aggregates = self._aggregate(state.run.id, state.plan)
        current = self._store.get_run(state.run.id)
        if status is RunStatus.SUCCEEDED and current.completeness < self._floor:
            # Too little was scored to say anything about quality: not a success.
            status = RunStatus.INCONCLUSIVE
            counted = (
                f"{current.scored} of {current.total} results scored, "
                f"{current.errored} errors (the completeness floor is {self._floor:.0%})"
            )
            reason = f"inconclusive: {counted}" + (f"; {reason}" if reason else "")
        planned = FinishPlan()
        if self._plan_alerts is not None:
            try:
                final = dataclasses.replace(current, status=status, status_reason=reason)
                planned = self._plan_alerts(self._store, final, aggregates, self._store.db_now())
            except Exception:
                # Detection must never cost the run its results; the failure is
                # logged loudly, and the next scheduled run is compared again.
                log.exception(
                    "regression detection failed",
                    extra={"event": "detection_failed", "run_id": state.run.id},
                )
        return self._store.finish_run(
            state.run.id,
            status,
            reason,
            aggregates,
            fence=state.fence,
            alerts=planned.alerts,
            decisions=planned.decisions,
        )

    def _finish_quietly(self, state: _RunState, status: RunStatus, reason: str) -> None:
        # Runs on the way out of a failure or a cancellation: record what we can
        # synchronously (no awaiting while cancelled) and never mask the cause.
        # The aggregates of what did finish are kept, so a partial run still shows.
        try:
            try:
                aggregates = self._aggregate(state.run.id, state.plan)
            except Exception:
                aggregates = []
            self._store.finish_run(state.run.id, status, reason, aggregates, fence=state.fence)
        except Exception:
            log.exception(
                "could not record the end of a run",
                extra={"event": "run_finish_failed", "run_id": state.run.id, "status": str(status)},
            )

    def _aggregate(self, run_id: str, plan: RunPlan) -> list[ScoreAggregate]:
        expected = [(f.name, s.name) for f in plan.features for s in f.scorers]
        return aggregate_rows(self._store.iter_scores(run_id), expected, plan.pair_fingerprints)

    async def _produce(
        self,
        state: _RunState,
        queue: asyncio.Queue[CaseOutcome | None],
        observer: RunObserver | None,
        writer: asyncio.Task[None],
        in_flight: set[asyncio.Task[None]],
        skip: Collection[tuple[str, str]],
    ) -> None:
        suite_limit = asyncio.Semaphore(state.plan.concurrency)

        async def one(feature: FeaturePlan, case: Case) -> None:
            try:
                outcome = await self._run_case(state, feature, case)
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
        self, state: _RunState, suite_limit: asyncio.Semaphore, writer: asyncio.Task[None]
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

    async def _run_case(self, state: _RunState, feature: FeaturePlan, case: Case) -> CaseOutcome:
        attempt = state.run.attempt
        started = time.perf_counter()
        try:
            output: TargetOutput = await feature.target.answer(case)
        except Exception as exc:
            latency_ms = (time.perf_counter() - started) * 1000
            refusal = exc.refusal if isinstance(exc, CaseError) else None
            reason = self._scrub(f"target failed: {_describe(exc)}")
            results = [
                CaseResult(
                    feature.name,
                    case.id,
                    scorer.name,
                    ResultStatus.ERROR,
                    error=reason,
                    latency_ms=latency_ms,
                    attempt=attempt,
                )
                for scorer in feature.scorers
            ]
            delta = ProgressDelta(cases_done=1, errored=len(results))
            return CaseOutcome(results, delta, refusal)
        latency_ms = (time.perf_counter() - started) * 1000
        excerpt = _excerpt(output.text, self._excerpt_chars)
        scorers = feature.scorers
        if len(scorers) == 1:
            outcomes = [await state.score(feature, scorers[0], output.text, case)]
        else:
            outcomes = list(
                await asyncio.gather(*(state.score(feature, s, output.text, case) for s in scorers))
            )
        results = []
        scored = errored = 0
        judge_usage = NO_USAGE
        refusal = None
        for scorer, outcome in zip(scorers, outcomes, strict=True):
            if isinstance(outcome, ScoreOutcome):
                scored += 1
                judge_usage = judge_usage + outcome.usage
                results.append(
                    CaseResult(
                        feature.name,
                        case.id,
                        scorer.name,
                        ResultStatus.OK,
                        score=outcome.score,
                        passed=outcome.passed,
                        rationale=outcome.rationale,
                        usage=outcome.usage,
                        output_excerpt=excerpt,
                        latency_ms=latency_ms,
                        attempt=attempt,
                    )
                )
            else:
                status, message, usage, refused = outcome
                refusal = refusal or refused
                errored += status is ResultStatus.ERROR
                judge_usage = judge_usage + usage
                results.append(
                    CaseResult(
                        feature.name,
                        case.id,
                        scorer.name,
                        status,
                        error=message,
                        usage=usage,
                        output_excerpt=excerpt,
                        latency_ms=latency_ms,
                        attempt=attempt,
                    )
                )
        delta = ProgressDelta(
            cases_done=1,
            scored=scored,
            errored=errored,
            judge_usage=judge_usage,
            target_usage=output.usage,
        )
        return CaseOutcome(results, delta, refusal)

    async def _write(self, state: _RunState, queue: asyncio.Queue[CaseOutcome | None]) -> None:
        done = False
        while not done:
            first = await queue.get()
            if first is None:
                return
            results = list(first.results)
            delta = first.delta
            if self._linger_s > 0:
                # Group commit: a transaction costs ~0.6 ms of CPU whatever its
                # size, so waiting a moment for neighbours makes writes several
                # times cheaper while results still land within the linger.
                await asyncio.sleep(self._linger_s)
            # Take whatever else finished meanwhile: one transaction for all of it.
            while len(results) < _BATCH_MAX:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is None:
                    done = True
                    break
                results.extend(item.results)
                delta = delta + item.delta
            save = partial(
                self._store.save_results, state.run.id, results, delta, fence=state.fence
            )
            await self._in_io(save)


class StopReason(StrEnum):
    """Why the daemon stops a run before its cases are done."""

    PAUSE = "paused"
    SHUTDOWN = "shutdown"
    LEASE_LOST = "lease lost"
    CANCELLED = "cancelled"
    WATCHDOG = "watchdog"
    BREAKER = "breaker"


class RunControl:
    """A one-shot stop signal from the daemon to a running run; the first reason wins."""

    def __init__(self) -> None:
        self._reason: StopReason | None = None
        self._event = asyncio.Event()

    @property
    def reason(self) -> StopReason | None:
        """Why the run is being stopped, or None while it should go on."""
        return self._reason

    def stop(self, reason: StopReason) -> None:
        """Ask the run to stop; later calls do not change the reason."""
        if self._reason is None:
            self._reason = reason
            self._event.set()

    async def wait(self) -> None:
        """Return once a stop is asked for."""
        await self._event.wait()


class _RunState:
    """What one execution of a run carries: its fence, its budget, what it skipped."""

    def __init__(
        self,
        run: RunRecord,
        plan: RunPlan,
        fence: Fence | None,
        budget: BudgetTracker | None,
        scrub: Scrubber,
        breaker: Breaker,
        control: RunControl,
    ) -> None:
        self.scrub = scrub
        self.breaker = breaker
        self.control = control
        self._changed = asyncio.Event()
        self.run = run
        self.plan = plan
        self.fence = fence
        self.budget = budget
        self.budget_skipped = 0

    def record(self, refusal: str | None) -> None:
        """Note a finished case for the breaker; stop the run when it trips."""
        self.breaker.record(refusal)
        if self.breaker.tripped:
            self.control.stop(StopReason.BREAKER)
        self._changed.set()

    async def breaker_changed(self) -> None:
        """Wait until the breaker's state moves (a case finished)."""
        self._changed.clear()
        await self._changed.wait()

    async def score(
        self, feature: FeaturePlan, scorer: CaseScorer, output: str, case: Case
    ) -> ScoreOutcome | tuple[ResultStatus, str, Usage, str | None]:
        """Grade one output; a failure becomes (status, reason, usage spent, refusal)."""
        budgeted = self.budget is not None and scorer.name in feature.budgeted
        if budgeted and self.budget is not None and self.budget.exhausted:
            self.budget_skipped += 1
            return ResultStatus.SKIPPED, "skipped: the daily judge budget is spent", NO_USAGE, None
        try:
            outcome = await scorer.score(output, case)
        except Exception as exc:
            usage = getattr(exc, "usage", NO_USAGE)
            usage = usage if isinstance(usage, Usage) else NO_USAGE
            if budgeted and self.budget is not None:
                self.budget.add(usage.cost_usd)
            refusal = exc.refusal if isinstance(exc, CaseError) else None
            message = self.scrub(f"scorer failed: {_describe(exc)}")
            return ResultStatus.ERROR, message, usage, refusal
        if budgeted and self.budget is not None:
            self.budget.add(outcome.usage.cost_usd)
        return outcome


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


async def _breaker_allows(state: _RunState, started: int) -> bool:
    """Wait until the breaker lets one more case start; False once it has tripped.

    Until a case goes through unrefused, no more cases start than the
    breaker's threshold: a bad key costs that many requests.
    """
    while not state.breaker.may_start(started):
        if state.breaker.tripped:
            return False
        await state.breaker_changed()
    return True
