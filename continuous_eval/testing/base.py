"""The state every seam of ``InMemoryRunStore`` shares, and the checks on it.

Only the dictionaries, the lock and the helpers the seams have in common
belong here: finding a run, the write guard (the same checks as the SQL
store's), lease fields on the store's clock, and the outbox insert that
every run-ending path makes; and the consistent reads of that state that
code beside the store (``reader.InMemoryRunReader``) makes instead of
taking the lock itself. The seams are in ``runs``, ``results``, ``history``,
``outbox`` and ``lookup``; ``store.InMemoryRunStore`` joins them.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from continuous_eval.core.case_steps import StoredStep
from continuous_eval.core.lifecycle import (
    FENCED_STATUSES,
    TERMINAL_STATUSES,
    lease_lost,
    run_not_found,
)
from continuous_eval.core.models import (
    AlertRecord,
    Fence,
    Lease,
    NewAlert,
    ResultRecord,
    RunRecord,
    ScoreAggregate,
)
from continuous_eval.core.regression import Decision
from continuous_eval.core.run_notice import completion_notices
from continuous_eval.errors import RunFinished
from continuous_eval.ports import Clock
from continuous_eval.testing.clock import FakeClock


class MemoryStoreBase:
    """The stored state of an in-memory store, public so tests can assert on it.

    Each seam (``MemoryRunLifecycle`` and the others) is a subclass, so
    ``InMemoryRunStore`` is all of them over one set of dictionaries and one
    lock, as ``SqlRunStore`` is all of its seams over one database.

    Args:
        clock: Source of the timestamps the store writes and of lease times.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or FakeClock()
        self.runs: dict[str, RunRecord] = {}
        """Runs by id."""
        self.results: dict[str, dict[tuple[str, str, str], ResultRecord]] = {}
        """Per run id, results by (feature, scorer, case_id)."""
        self.aggregates: dict[str, dict[tuple[str, str], ScoreAggregate]] = {}
        """Per run id, aggregates by (feature, scorer)."""
        self.alerts: dict[int, AlertRecord] = {}
        """The outbox, by alert id (ids count up from 1, in insertion order)."""
        self.decisions: dict[str, list[Decision]] = {}
        """Per run id, the stored decisions by feature and scorer."""
        self.steps: dict[str, dict[tuple[str, str, int], StoredStep]] = {}
        """Per run id, the agent steps by (feature, case_id, seq)."""
        self.closed = False
        """Whether ``close()`` was called."""
        self._lock = _NotifyingLock()
        self._alert_ids = itertools.count(1)
        self._result_ids = itertools.count(1)
        """Result ids, one sequence for every run, as the SQL table's."""
        self._step_ids = itertools.count(1)

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Block until ``predicate()`` holds, re-checked after every call into the store.

        For tests that must see a write happen (a run's third case stored, say)
        without sleeping; an async test calls it through ``asyncio.to_thread``.

        Raises:
            TimeoutError: ``predicate`` still did not hold after ``timeout_s``.
        """
        with self._lock.changed:
            if not self._lock.changed.wait_for(predicate, timeout_s):
                raise TimeoutError(f"the store did not reach the state within {timeout_s} s")

    def close(self) -> None:
        """Mark the store closed; there is nothing to release."""
        self.closed = True

    # ------------------------------------------------- consistent reads of the state

    def all_runs(self) -> list[RunRecord]:
        """Every run, in the order they were created, read under the lock."""
        with self._lock:
            return list(self.runs.values())

    def run_with_results(self, run_id: str) -> tuple[RunRecord, list[ResultRecord]]:
        """A run and its results in id order, read together under the lock.

        Raises:
            RunNotFound: No such run.
        """
        with self._lock:
            run = self._run(run_id)
            return run, sorted(self.results.get(run_id, {}).values(), key=lambda r: r.id)

    def runs_with_aggregates(self) -> list[tuple[RunRecord, list[ScoreAggregate]]]:
        """Every run with its aggregates (as stored), read together under the lock."""
        with self._lock:
            return [
                (run, list(self.aggregates.get(run.id, {}).values())) for run in self.runs.values()
            ]

    def _run(self, run_id: str) -> RunRecord:
        try:
            return self.runs[run_id]
        except KeyError:
            raise run_not_found(run_id) from None

    def _writable(self, run_id: str, fence: Fence | None) -> RunRecord:
        """Return the run if the write is allowed: the same checks as ``SqlRunStore._guard``."""
        run = self._run(run_id)
        if fence is None:
            if run.status.value in TERMINAL_STATUSES:
                raise RunFinished(run_id, run.status)
            return run
        if (
            run.status.value not in FENCED_STATUSES
            or run.attempt != fence.attempt
            or run.lease_owner != fence.owner
        ):
            raise lease_lost(run_id, fence, run.status, run.attempt, run.lease_owner)
        return run

    def _lease_fields(self, lease: Lease) -> dict[str, Any]:
        now = self.clock.now()
        return {
            "lease_owner": lease.owner,
            "lease_expires_at": now + timedelta(seconds=lease.seconds),
            "heartbeat_at": now,
        }

    def _insert_alerts(self, alerts: Sequence[NewAlert], now: datetime) -> None:
        # Like ON CONFLICT (key, channel) DO NOTHING: a stored row is left as it is.
        stored = {(alert.key, alert.channel) for alert in self.alerts.values()}
        for alert in alerts:
            if (alert.key, alert.channel) not in stored:
                record = _new_alert_record(next(self._alert_ids), alert, now)
                self.alerts[record.id] = record
                stored.add((alert.key, alert.channel))

    def _announce(
        self, run: RunRecord, aggregates: Sequence[ScoreAggregate], now: datetime
    ) -> None:
        """Write the completion notices of a run that just ended; see ``SqlRunStore``."""
        self._insert_alerts(completion_notices(run, run.callbacks, aggregates), now)


def _new_alert_record(alert_id: int, alert: NewAlert, now: datetime) -> AlertRecord:
    """The row ``SqlRunStore.finish_run`` would insert for ``alert``."""
    return AlertRecord(
        id=alert_id,
        key=alert.key,
        channel=alert.channel,
        kind=alert.kind,
        run_id=alert.run_id,
        suite=alert.suite,
        feature=alert.feature,
        scorer=alert.scorer,
        rule=alert.rule,
        status=alert.status,
        payload=alert.payload,
        # Through JSON, as the database stores it: the caller's dict is not shared.
        summary=json.loads(json.dumps(alert.summary)),
        reason=alert.reason,
        attempts=0,
        next_attempt_at=None,
        last_error=None,
        provider_id=None,
        created_at=now,
        sent_at=None,
        claimed_by=None,
        claimed_until=None,
        destination=alert.destination,
    )


class _NotifyingLock:
    """The store's re-entrant lock, which wakes ``wait_until`` each time it is let go."""

    def __init__(self) -> None:
        self.changed = threading.Condition(threading.RLock())

    def __enter__(self) -> None:
        self.changed.acquire()

    def __exit__(self, *exc: object) -> None:
        self.changed.notify_all()
        self.changed.release()
