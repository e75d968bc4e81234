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
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, TypeVar

from continuous_eval.core.models import (
    NO_USAGE,
    CaseResult,
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
from continuous_eval.core.suite import Case
from continuous_eval.errors import ContinuousEvalError
from continuous_eval.ports import CaseScorer, RunStore, Target

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_BATCH_MAX = 512
"""Most results one write stores; bounds the transaction size under a burst."""


@dataclass(frozen=True)
class FeaturePlan:
    """One feature, ready to run: a re-openable case stream, its target and scorers."""

    name: str
    cases: Callable[[], Iterator[Case]]
    """Opens the dataset again from the start; called once per run."""
    case_count: int
    target: Target
    scorers: Sequence[CaseScorer]


@dataclass(frozen=True)
class RunPlan:
    """A suite, resolved: what to run and what the results will be compared as."""

    suite: str
    features: Sequence[FeaturePlan]
    concurrency: int
    """Cases of this suite in flight at once."""
    fingerprint: str
    fingerprint_parts: dict[str, str] = field(default_factory=dict)
    pair_fingerprints: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def cases_total(self) -> int:
        """Cases across the selected features."""
        return sum(f.case_count for f in self.features)

    @property
    def results_total(self) -> int:
        """Expected case x scorer results."""
        return sum(f.case_count * len(f.scorers) for f in self.features)


class RunObserver(Protocol):
    """Told about progress; the CLI draws a bar with it, the API streams it."""

    def case_finished(self, feature: str, case_id: str, errored: bool) -> None:
        """One case is done (its results are queued for storage)."""
        ...


@dataclass(frozen=True, slots=True)
class CaseOutcome:
    """What one case produced, before storage."""

    results: list[CaseResult]
    delta: ProgressDelta


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
    """

    def __init__(
        self,
        store: RunStore,
        *,
        max_concurrency: int,
        excerpt_chars: int = 2000,
        write_linger_s: float = 0.1,
    ) -> None:
        self._store = store
        self._linger_s = write_linger_s
        self._global = asyncio.Semaphore(max_concurrency)
        self._excerpt_chars = excerpt_chars
        # One thread for the store: writes of a run are serialised anyway, and a
        # dedicated thread keeps them off the default pool the targets use.
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="continuous-eval-store")

    def close(self) -> None:
        """Stop the store thread; call once when the process is done with runs."""
        self._io.shutdown(wait=True)

    async def _in_io(self, fn: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._io, fn)

    async def execute(
        self, run: RunRecord, plan: RunPlan, observer: RunObserver | None = None
    ) -> RunRecord:
        """Run every case of ``plan`` into ``run``, then aggregate and finish it.

        Returns the finished run. On cancellation (Ctrl-C, shutdown) the results
        stored so far are kept and the run ends ``cancelled``; on a failure of
        the store itself it ends ``failed`` with the reason, and the error is
        raised again.
        """
        # Bounded: when the store falls behind, finished cases wait here holding
        # their concurrency slot, which stops new cases from starting.
        queue: asyncio.Queue[CaseOutcome | None] = asyncio.Queue(maxsize=_BATCH_MAX)
        writer = asyncio.create_task(self._write(run.id, queue), name=f"writer-{run.id}")
        try:
            await self._produce(run, plan, queue, observer, writer)
            await queue.put(None)
            await writer
            aggregates = await self._in_io(lambda: self._aggregate(run.id, plan))
            return await self._in_io(
                lambda: self._store.finish_run(run.id, RunStatus.SUCCEEDED, None, aggregates)
            )
        except asyncio.CancelledError:
            writer.cancel()
            self._finish_quietly(
                run.id, plan, RunStatus.CANCELLED, "cancelled before all cases ran"
            )
            raise
        except Exception as exc:
            writer.cancel()
            log.exception("run failed", extra={"event": "run_failed", "run_id": run.id})
            self._finish_quietly(run.id, plan, RunStatus.FAILED, _describe(exc))
            raise

    def _finish_quietly(self, run_id: str, plan: RunPlan, status: RunStatus, reason: str) -> None:
        # Runs on the way out of a failure or a cancellation: record what we can
        # synchronously (no awaiting while cancelled) and never mask the cause.
        # The aggregates of what did finish are kept, so a partial run still shows.
        try:
            try:
                aggregates = self._aggregate(run_id, plan)
            except Exception:
                aggregates = []
            self._store.finish_run(run_id, status, reason, aggregates)
        except Exception:
            log.exception(
                "could not record the end of a run",
                extra={"event": "run_finish_failed", "run_id": run_id, "status": str(status)},
            )

    def _aggregate(self, run_id: str, plan: RunPlan) -> list[ScoreAggregate]:
        expected = [(f.name, s.name) for f in plan.features for s in f.scorers]
        return aggregate_rows(self._store.iter_scores(run_id), expected, plan.pair_fingerprints)

    async def _produce(
        self,
        run: RunRecord,
        plan: RunPlan,
        queue: asyncio.Queue[CaseOutcome | None],
        observer: RunObserver | None,
        writer: asyncio.Task[None],
    ) -> None:
        suite_limit = asyncio.Semaphore(plan.concurrency)
        in_flight: set[asyncio.Task[None]] = set()

        async def one(feature: FeaturePlan, case: Case) -> None:
            try:
                outcome = await self._run_case(feature, case, run.attempt)
                await queue.put(outcome)
                if observer is not None:
                    observer.case_finished(feature.name, case.id, outcome.delta.errored > 0)
            finally:
                self._global.release()
                suite_limit.release()

        try:
            for feature in plan.features:
                for case in feature.cases():
                    # Suite first, then the shared limit: a suite waiting on its own
                    # cap must not sit on a slot other suites could use.
                    await suite_limit.acquire()
                    await self._global.acquire()
                    if writer.done():
                        # The writer died (the store failed): stop starting work.
                        self._global.release()
                        suite_limit.release()
                        writer.result()
                    task = asyncio.create_task(one(feature, case))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
            if in_flight:
                await asyncio.gather(*in_flight)
        except BaseException:
            for task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
            raise

    async def _run_case(self, feature: FeaturePlan, case: Case, attempt: int) -> CaseOutcome:
        started = time.perf_counter()
        try:
            output: TargetOutput = await feature.target.answer(case)
        except Exception as exc:
            latency_ms = (time.perf_counter() - started) * 1000
            reason = f"target failed: {_describe(exc)}"
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
            return CaseOutcome(results, ProgressDelta(cases_done=1, errored=len(results)))
        latency_ms = (time.perf_counter() - started) * 1000
        excerpt = _excerpt(output.text, self._excerpt_chars)
        if len(feature.scorers) == 1:
            outcomes = [await _score(feature.scorers[0], output.text, case)]
        else:
            outcomes = list(
                await asyncio.gather(*(_score(s, output.text, case) for s in feature.scorers))
            )
        results = []
        scored = errored = 0
        judge_usage = NO_USAGE
        for scorer, outcome in zip(feature.scorers, outcomes, strict=True):
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
                        output_excerpt=excerpt,
                        rationale=outcome.rationale,
                        latency_ms=latency_ms,
                        usage=outcome.usage,
                        attempt=attempt,
                    )
                )
            else:
                errored += 1
                error, usage = outcome
                judge_usage = judge_usage + usage
                results.append(
                    CaseResult(
                        feature.name,
                        case.id,
                        scorer.name,
                        ResultStatus.ERROR,
                        output_excerpt=excerpt,
                        error=error,
                        latency_ms=latency_ms,
                        usage=usage,
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
        return CaseOutcome(results, delta)

    async def _write(self, run_id: str, queue: asyncio.Queue[CaseOutcome | None]) -> None:
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
            await self._in_io(partial(self._store.save_results, run_id, results, delta))


async def _score(scorer: CaseScorer, output: str, case: Case) -> ScoreOutcome | tuple[str, Usage]:
    """Grade one output; a failure becomes (reason, usage spent) instead of raising."""
    try:
        return await scorer.score(output, case)
    except Exception as exc:
        usage = getattr(exc, "usage", NO_USAGE)
        return f"scorer failed: {_describe(exc)}", usage if isinstance(usage, Usage) else NO_USAGE
