"""Keep stored data bounded: old interactions, capped features' oldest rows, old raw results.

``RetentionJob.run_once`` is one pass, bounded: each feature and suite gets at
most ``max_batches`` deletes of ``batch`` rows, so a first pass over a large
backlog ends in reasonable time and the next pass carries on. Deletes go in
small batches, each its own transaction, so ingestion and runs never wait
long behind them.

Raw results are kept for the runs the regression detector may still pair
with (``baseline_run_ids``), whatever their age: its comparisons read those
runs' per-case scores, and a baseline without them would silently compare
with nothing. Aggregates, decisions and alerts are never deleted.

``RetentionTick`` is what ``serve`` schedules: it takes a cross-replica lock
first, so one replica deletes at a time, and never raises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from datetime import UTC, datetime
from functools import partial

from continuous_eval.core.baselines import incident_baselines
from continuous_eval.core.decisions import RegressionPolicy
from continuous_eval.core.interactions import RetentionOutcome
from continuous_eval.core.regression import DEFAULT_POLICY
from continuous_eval.core.retention import RetentionPolicy, cutoff
from continuous_eval.ports import (
    HistoryReader,
    InteractionStore,
    RetentionEvents,
    RetentionReader,
    SuiteLocks,
)
from continuous_eval.service.blocking import run_blocking
from continuous_eval.service.detection import history_limit

log = logging.getLogger(__name__)

RETENTION_LOCK = "continuous-eval:retention"
"""The lock name retention takes; a colon keeps it apart from every suite name."""

DEFAULT_BATCH = 5000
"""Rows per delete: a short transaction on either backend."""

DEFAULT_MAX_BATCHES = 40
"""Deletes per feature (or suite) and kind in one pass: 200,000 rows at the default batch."""


_END_OF_TIME = datetime(9999, 1, 1, tzinfo=UTC)
"""The history the next run will read is the newest there is: no upper bound."""


def _always() -> bool:
    return True


def baseline_run_ids(history: HistoryReader, suite: str, policy: RegressionPolicy) -> set[str]:
    """The runs whose raw results the detector may still read for the suite's next run.

    Exactly the runs ``service.detection.decide_finished_run`` reads case
    scores from, taken wide: the newest ``history_limit(policy)`` succeeded
    scheduled runs (every baseline pool, excursion and drift reference is
    among them), and the frozen known-good runs of the incidents still open
    in them, however old (an incident is measured against the runs it opened
    with). A run still in progress is not succeeded yet and so not in the
    window; it is not finished either, so nothing of it is deleted.

    Not kept: a run named by hand as the CI gate's ``--baseline``, and the
    older history a backtest replays; compared after its results are gone,
    such a run pairs no case.
    """
    runs = history.scheduled_history(suite, before=_END_OF_TIME, limit=history_limit(policy))
    states = history.decision_states([run.id for run in runs])
    frozen = incident_baselines(states.get(run.id, {}) for run in runs)
    return {run.id for run in runs} | frozen


class RetentionJob:
    """One bounded retention pass over every stored feature and every suite with old results.

    Args:
        interactions: The recorded traffic.
        runs: The run store (old results, and the history for the kept runs).
        policy: The configured rules (``app.retention.retention_policy``).
        regression: Each suite's detector policy; others get the default.
        events: Where deletes are counted.
        batch: Rows per delete.
        max_batches: Deletes per feature (or suite) and kind in one pass.
    """

    def __init__(
        self,
        interactions: InteractionStore,
        runs: RetentionReader,
        policy: RetentionPolicy,
        regression: Mapping[str, RegressionPolicy] | None = None,
        *,
        events: RetentionEvents | None = None,
        batch: int = DEFAULT_BATCH,
        max_batches: int = DEFAULT_MAX_BATCHES,
    ) -> None:
        if batch < 1 or max_batches < 1:
            raise ValueError("batch and max_batches must be at least 1")
        self._interactions = interactions
        self._runs = runs
        self._policy = policy
        self._regression = dict(regression or {})
        self._events = events
        self._batch = batch
        self._max_batches = max_batches

    def run_once(self, now: datetime, keep_going: Callable[[], bool] = _always) -> RetentionOutcome:
        """Delete what the rules say is due at ``now``; stop early once ``keep_going()`` is false.

        ``keep_going`` is asked before every delete: the lock's check, so a
        replica that lost the lock stops.
        """
        by_age = by_cap = 0
        store = self._interactions
        counts = store.interaction_features()
        for feature in sorted(counts):
            rule = self._policy.rule(feature)
            too_old = cutoff(now, rule.max_age_days)
            deleted = 0
            if too_old is not None:
                step = partial(store.delete_interactions_before, feature, too_old, self._batch)
                deleted = self._drain("interactions", feature, keep_going, step)
                by_age += deleted
            if rule.max_rows is not None:
                step = partial(store.delete_interactions_over, feature, rule.max_rows, self._batch)
                capped = self._drain("interactions", feature, keep_going, step)
                by_cap += capped
                deleted += capped
            counts[feature] = max(0, counts[feature] - deleted)
        if self._events is not None:
            self._events.interactions_stored(counts)
        return RetentionOutcome(
            interactions_by_age=by_age,
            interactions_by_cap=by_cap,
            results_by_age=self._prune_results(now, keep_going),
        )

    def _prune_results(self, now: datetime, keep_going: Callable[[], bool]) -> int:
        too_old = self._policy.results_cutoff(now)
        if too_old is None:
            return 0
        deleted = 0
        for suite in self._runs.suites_with_old_results(too_old):
            policy = self._regression.get(suite, DEFAULT_POLICY)
            keep = baseline_run_ids(self._runs, suite, policy)
            step = partial(self._runs.delete_old_results, suite, too_old, keep, self._batch)
            deleted += self._drain("results", "", keep_going, step)
        return deleted

    def _drain(
        self, kind: str, feature: str, keep_going: Callable[[], bool], step: Callable[[], int]
    ) -> int:
        """Call ``step`` until it deletes less than a batch, the pass's bound, or ``keep_going``."""
        total = 0
        for _ in range(self._max_batches):
            if not keep_going():
                break
            deleted = step()
            total += deleted
            if deleted < self._batch:
                break
        if total and self._events is not None:
            self._events.retention_deleted(kind, feature, total)
        return total


class RetentionTick:
    """The scheduled job: under the retention lock, one pass at the database's now; never raises.

    Args:
        job: The pass to run.
        locks: The cross-replica locks (suite locks, taken as ``RETENTION_LOCK``);
            the tick owns them: ``close`` closes them.
        owner: This replica's name, as it takes suite locks.
        now: The database's clock (``RunHistory.db_now``), the one replicas share.
        events: Where failures are counted.
        io_executor: Where the blocking pass runs (the loop's default when None).
    """

    def __init__(
        self,
        job: RetentionJob,
        locks: SuiteLocks,
        owner: str,
        now: Callable[[], datetime],
        *,
        events: RetentionEvents | None = None,
        io_executor: Executor | None = None,
    ) -> None:
        self._job = job
        self._locks = locks
        self._owner = owner
        self._now = now
        self._events = events
        self._io = io_executor

    async def __call__(self) -> RetentionOutcome | None:
        """Run one pass; None when another replica holds the lock or the pass failed."""
        try:
            outcome = await run_blocking(self._io, self._locked_pass)
        except Exception:
            log.exception("retention failed", extra={"event": "retention_failed"})
            if self._events is not None:
                self._events.retention_failed()
            return None
        if outcome is None:
            log.info(
                "retention skipped: another replica holds its lock",
                extra={"event": "retention_skipped"},
            )
        else:
            log.info(
                "retention: %d interactions by age, %d by row cap, %d results deleted",
                outcome.interactions_by_age,
                outcome.interactions_by_cap,
                outcome.results_by_age,
                extra={"event": "retention"},
            )
        return outcome

    def close(self) -> None:
        """Close the locks: at shutdown, after the scheduler stopped."""
        self._locks.close()

    def _locked_pass(self) -> RetentionOutcome | None:
        """Acquire, run and release in one thread, so the release always follows the pass."""
        lock = self._locks.try_acquire(RETENTION_LOCK, self._owner)
        if lock is None:
            return None
        try:
            return self._job.run_once(self._now(), keep_going=lock.check)
        finally:
            lock.release()
