"""Fakes that ship with the package, for the project's tests and for users' own.

Only test doubles of the ports in ``continuous_eval.ports`` belong here. They
are real implementations with inspectable state, not mocks: a test drives the
code under test and then asserts on what the fake holds.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from continuous_eval.core.lifecycle import (
    CONTROL_REASONS,
    FENCED_STATUSES,
    TERMINAL_STATUSES,
    WAITING_STATUSES,
    check_limit,
    check_max_attempts,
    check_release,
    check_seconds,
    control_transition,
    duplicate_message,
    gave_up_reason,
    initial_attempt,
    lease_lost,
    require_aware,
    run_not_found,
    validate_create,
    validate_new_run,
)
from continuous_eval.core.models import (
    AlertKind,
    AlertRecord,
    AlertStatus,
    CaseResult,
    ControlAction,
    Fence,
    Lease,
    NewAlert,
    NewRun,
    ProgressDelta,
    ResultRecord,
    ResultStatus,
    RunRecord,
    RunStatus,
    RunType,
    ScoreAggregate,
    Usage,
)
from continuous_eval.core.outbox import check_settle, validate_alerts
from continuous_eval.core.regression import Decision, KeyState, ScoreKey
from continuous_eval.core.run_notice import completion_notices
from continuous_eval.errors import Conflict, DuplicateRun, RunFinished
from continuous_eval.ports import Clock

DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)
"""Where a ``FakeClock`` starts unless told otherwise: a fixed, readable instant."""


class FakeClock:
    """A ``Clock`` that only moves when the test moves it.

    Args:
        start: The first time ``now()`` returns; must be timezone-aware.
    """

    def __init__(self, start: datetime = DEFAULT_START) -> None:
        self._lock = threading.Lock()
        self._now = _utc(start)

    def now(self) -> datetime:
        """Return the current fake time, aware, in UTC."""
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (aware; converted to UTC). Going backwards is allowed."""
        with self._lock:
            self._now = _utc(when)

    def advance(self, delta: timedelta | None = None, *, seconds: float = 0.0) -> datetime:
        """Move forward by ``delta`` plus ``seconds`` and return the new time."""
        step = (delta or timedelta()) + timedelta(seconds=seconds)
        with self._lock:
            self._now += step
            return self._now


def _utc(when: datetime) -> datetime:
    require_aware(when, "the fake clock's time")
    return when.astimezone(UTC)


class InMemoryRunStore:
    """A ``RunStore`` in dictionaries, with the same semantics as ``SqlRunStore``.

    It raises the same errors for the same inputs (``DuplicateRun``,
    ``RunFinished``, ``RunNotFound``, ``LeaseLost``, ``ValueError``) and
    orders the same way; ``tests/integration/test_store_contract.py`` and
    ``test_store_leases.py`` run one suite against both. Its clock doubles as
    "the database's clock" for leases, so a test expires a lease by advancing
    a ``FakeClock``. Thread-safe through one lock. The attributes are public so
    tests can assert on (or arrange) the stored state directly.

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
        self.closed = False
        """Whether ``close()`` was called."""
        self._lock = threading.RLock()
        self._alert_ids = itertools.count(1)

    def create_run(
        self, new: NewRun, *, lease: Lease | None = None, status: RunStatus = RunStatus.RUNNING
    ) -> RunRecord:
        """Insert a run; see ``SqlRunStore.create_run``."""
        validate_new_run(new)
        validate_create(status, lease)
        with self._lock:
            now = self.clock.now()
            conflict = self._conflict(new)
            if conflict is not None:
                kind, existing = conflict
                raise DuplicateRun(kind, existing, duplicate_message(kind, new, existing))
            record = RunRecord(
                id=new.id,
                suite=new.suite,
                run_type=new.run_type,
                status=status,
                status_reason=new.reason,
                attempt=initial_attempt(status),
                features=tuple(new.features),
                created_at=now,
                started_at=now,
                finished_at=now if status is RunStatus.SKIPPED else None,
                scheduled_for=(
                    new.scheduled_for.astimezone(UTC) if new.scheduled_for is not None else None
                ),
                cases_total=new.cases_total,
                cases_done=0,
                total=new.total,
                scored=0,
                errored=0,
                judge_usage=Usage(),
                target_usage=Usage(),
                fingerprint=new.fingerprint,
                fingerprint_parts=dict(new.fingerprint_parts),
                idempotency_key=new.idempotency_key,
                spec_hash=new.spec_hash,
                callbacks=tuple(new.callbacks),
            )
            if lease is not None:
                record = replace(record, **self._lease_fields(lease))
            self.runs[new.id] = record
            self.results[new.id] = {}
            self.aggregates[new.id] = {}
            self._announce(record, (), now)  # a slot recorded as skipped ends here
            return record

    def save_results(
        self,
        run_id: str,
        results: Sequence[CaseResult],
        delta: ProgressDelta,
        *,
        fence: Fence | None = None,
    ) -> None:
        """Upsert results and add the counts; see ``SqlRunStore.save_results``."""
        with self._lock:
            run = self._writable(run_id, fence)
            now = self.clock.now()
            stored = self.results[run_id]
            for result in results:
                stored[(result.feature, result.scorer, result.case_id)] = ResultRecord(
                    run_id=run_id,
                    feature=result.feature,
                    case_id=result.case_id,
                    scorer=result.scorer,
                    status=ResultStatus(result.status),
                    score=result.score,
                    passed=result.passed,
                    output_excerpt=result.output_excerpt,
                    error=result.error,
                    rationale=result.rationale,
                    latency_ms=result.latency_ms,
                    usage=result.usage,
                    attempt=result.attempt,
                    created_at=now,
                )
            self.runs[run_id] = replace(
                run,
                cases_done=run.cases_done + delta.cases_done,
                scored=run.scored + delta.scored,
                errored=run.errored + delta.errored,
                judge_usage=run.judge_usage + delta.judge_usage,
                target_usage=run.target_usage + delta.target_usage,
            )

    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        reason: str | None,
        aggregates: Sequence[ScoreAggregate],
        *,
        fence: Fence | None = None,
        alerts: Sequence[NewAlert] = (),
        decisions: Sequence[Decision] = (),
    ) -> RunRecord:
        """Store aggregates, the final status, decisions and alerts; see ``SqlRunStore``."""
        if not status.terminal:
            raise ValueError(f"finish_run needs a terminal status, not {status.value!r}")
        outbox = validate_alerts(run_id, alerts)
        with self._lock:
            run = self._writable(run_id, fence)
            now = self.clock.now()
            for aggregate in aggregates:
                self.aggregates[run_id][(aggregate.feature, aggregate.scorer)] = aggregate
            self._insert_alerts(outbox, now)
            if decisions and run_id not in self.decisions:
                self.decisions[run_id] = sorted(decisions, key=lambda d: d.key)
            finished = replace(
                run,
                status=status,
                status_reason=reason,
                finished_at=now,
                lease_owner=None,
                lease_expires_at=None,
            )
            self.runs[run_id] = finished
            self._announce(finished, aggregates, now)
            return finished

    def get_run(self, run_id: str) -> RunRecord:
        """Return one run; raise ``RunNotFound`` when there is none."""
        with self._lock:
            return self._run(run_id)

    def list_runs(
        self,
        *,
        suite: str | None = None,
        run_type: RunType | None = None,
        status: RunStatus | None = None,
        limit: int = 20,
    ) -> list[RunRecord]:
        """Return up to ``limit`` runs matching every given filter, newest first."""
        check_limit(limit)
        with self._lock:
            matching = [
                run
                for run in self.runs.values()
                if (suite is None or run.suite == suite)
                and (run_type is None or run.run_type == run_type)
                and (status is None or run.status == status)
            ]
        matching.sort(key=lambda run: (run.created_at, run.id), reverse=True)
        return matching[:limit]

    def run_ids_starting(self, prefix: str, limit: int = 2) -> list[str]:
        """Return up to ``limit`` run ids that start with ``prefix``, in id order."""
        check_limit(limit)
        with self._lock:
            return sorted(run_id for run_id in self.runs if run_id.startswith(prefix))[:limit]

    def iter_scores(self, run_id: str) -> Iterator[tuple[str, str, ResultStatus, float | None]]:
        """Yield (feature, scorer, status, score) ordered by feature, scorer, case id."""
        with self._lock:
            self._run(run_id)
            snapshot = sorted(self.results[run_id].items())
        for (feature, scorer, _case_id), result in snapshot:
            yield feature, scorer, result.status, result.score

    def get_aggregates(self, run_id: str) -> list[ScoreAggregate]:
        """Return a run's aggregates ordered by feature, scorer."""
        with self._lock:
            self._run(run_id)
            return [agg for _key, agg in sorted(self.aggregates[run_id].items())]

    def worst_results(self, run_id: str, limit: int = 10) -> list[ResultRecord]:
        """Return errors first, then the lowest scores, skipped last; see ``SqlRunStore``."""
        check_limit(limit)
        with self._lock:
            self._run(run_id)
            results = list(self.results[run_id].values())

        def rank(result: ResultRecord) -> tuple[int, float, str, str, str]:
            if result.status is ResultStatus.ERROR:
                group = 0
            elif result.score is not None:
                group = 1
            else:
                group = 2
            # NULLS LAST, as in SQL.
            score = result.score if result.score is not None else float("inf")
            return (group, score, result.feature, result.scorer, result.case_id)

        return sorted(results, key=rank)[:limit]

    def close(self) -> None:
        """Mark the store closed; there is nothing to release."""
        self.closed = True

    # ------------------------------------------------------- the daemon's needs

    def db_now(self) -> datetime:
        """Return the store's clock, which stands in for the database's."""
        return self.clock.now()

    def renew_lease(self, run_id: str, fence: Fence, seconds: float) -> RunRecord:
        """Extend the lease and stamp the heartbeat; see ``SqlRunStore.renew_lease``."""
        check_seconds(seconds)
        with self._lock:
            run = self._writable(run_id, fence)
            renewed = replace(run, **self._lease_fields(Lease(fence.owner, seconds)))
            self.runs[run_id] = renewed
            return renewed

    def release_run(
        self, run_id: str, fence: Fence, status: RunStatus, reason: str | None = None
    ) -> RunRecord:
        """Give the run up unfinished; see ``SqlRunStore.release_run``."""
        check_release(status)
        with self._lock:
            run = self._writable(run_id, fence)
            released = replace(
                run, status=status, status_reason=reason, lease_owner=None, lease_expires_at=None
            )
            self.runs[run_id] = released
            return released

    def newest_scheduled(self, suite: str) -> RunRecord | None:
        """Return the suite's latest-started scheduled run; see ``SqlRunStore``."""
        with self._lock:
            candidates = [
                (run.started_at, run)
                for run in self.runs.values()
                if run.suite == suite and run.run_type == "scheduled" and run.started_at
            ]
        # Ties on started_at are arbitrary in SQL; here the first inserted wins.
        return max(candidates, key=lambda c: c[0])[1] if candidates else None

    def adoptable_run(self, suite: str) -> RunRecord | None:
        """Return the oldest adoptable run of the suite; see ``SqlRunStore.adoptable_run``."""
        with self._lock:
            now = self.clock.now()
            candidates = [
                run for run in self.runs.values() if run.suite == suite and _adoptable(run, now)
            ]
        return min(candidates, key=lambda run: (run.created_at, run.id), default=None)

    def adopt_run(
        self, run_id: str, expected_attempt: int, lease: Lease, max_attempts: int
    ) -> RunRecord | None:
        """Take a run over or give up on it; see ``SqlRunStore.adopt_run``."""
        check_max_attempts(max_attempts)
        check_seconds(lease.seconds)
        with self._lock:
            run = self._run(run_id)
            if run.attempt != expected_attempt or not _adoptable(run, self.clock.now()):
                return None
            recounted = self._recounted(run)
            if expected_attempt + 1 > max_attempts:
                adopted = replace(
                    recounted,
                    status=RunStatus.FAILED,
                    status_reason=gave_up_reason(expected_attempt, run.status),
                    finished_at=self.clock.now(),
                    lease_owner=None,
                    lease_expires_at=None,
                )
            else:
                adopted = replace(
                    recounted,
                    status=RunStatus.RUNNING,
                    status_reason=None,
                    attempt=run.attempt + 1,
                    **self._lease_fields(lease),
                )
            self.runs[run_id] = adopted
            self._announce(adopted, (), self.clock.now())  # when it gave up
            return adopted

    def case_result_counts(self, run_id: str) -> dict[tuple[str, str], int]:
        """Return stored results per (feature, case_id); see ``SqlRunStore``."""
        with self._lock:
            self._run(run_id)
            return dict(Counter((f, case_id) for f, _scorer, case_id in self.results[run_id]))

    def control_run(self, run_id: str, action: ControlAction) -> RunRecord:
        """Apply an admin action; see ``SqlRunStore.control_run``."""
        target, sources = control_transition(action)
        with self._lock:
            run = self._run(run_id)
            if run.status not in sources:
                return run
            changed = replace(run, status=target, status_reason=CONTROL_REASONS[action])
            if target is not RunStatus.PAUSED:
                changed = replace(changed, lease_owner=None, lease_expires_at=None)
            if target.terminal:
                changed = replace(changed, finished_at=self.clock.now())
            self.runs[run_id] = changed
            self._announce(changed, (), self.clock.now())  # a cancel ends the run
            return changed

    def replace_aggregates(self, run_id: str, aggregates: Sequence[ScoreAggregate]) -> None:
        """Replace a run's aggregates, whatever its status."""
        with self._lock:
            self._run(run_id)
            self.aggregates[run_id] = {(a.feature, a.scorer): a for a in aggregates}

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

    def judge_spend_since(self, since: datetime) -> float:
        """Return the judge cost of runs started at or after ``since``; see ``SqlRunStore``."""
        require_aware(since, "since")
        with self._lock:
            return sum(
                (
                    run.judge_usage.cost_usd
                    for run in self.runs.values()
                    if run.started_at is not None and run.started_at >= since
                ),
                0.0,
            )

    # ------------------------------------------------ regressions and alerts

    def scheduled_history(self, suite: str, *, before: datetime, limit: int) -> list[RunRecord]:
        """Return succeeded scheduled runs started before ``before``; see ``SqlRunStore``."""
        require_aware(before, "before")
        check_limit(limit)
        with self._lock:
            matching = [
                run
                for run in self.runs.values()
                if run.suite == suite
                and run.run_type == "scheduled"
                and run.status is RunStatus.SUCCEEDED
                and run.started_at is not None
                and run.started_at < before
            ]
        matching.sort(key=lambda run: (run.started_at, run.id), reverse=True)
        return matching[:limit]

    def get_decisions(self, run_id: str) -> list[Decision]:
        """Return a run's stored decisions; see ``SqlRunStore.get_decisions``."""
        with self._lock:
            return list(self.decisions.get(run_id, []))

    def decision_states(self, run_ids: Sequence[str]) -> dict[str, dict[ScoreKey, KeyState]]:
        """Return the carried-forward state of each run's decisions; see ``SqlRunStore``."""
        with self._lock:
            return {
                run_id: {d.key: d.state() for d in self.decisions[run_id]}
                for run_id in run_ids
                if run_id in self.decisions
            }

    def case_scores(self, run_id: str) -> dict[tuple[str, str], dict[str, float]]:
        """Return a run's ``ok`` scores by (feature, scorer) and case id; see ``SqlRunStore``."""
        with self._lock:
            self._run(run_id)
            results = sorted(self.results[run_id].items())
        scores: dict[tuple[str, str], dict[str, float]] = {}
        for (feature, scorer, case_id), result in results:
            if result.status is ResultStatus.OK and result.score is not None:
                scores.setdefault((feature, scorer), {})[case_id] = result.score
        return scores

    def latest_alert(
        self, suite: str, feature: str, scorer: str, *, kind: AlertKind
    ) -> AlertRecord | None:
        """Return the newest alert of ``kind`` for a feature x scorer; see ``SqlRunStore``."""
        with self._lock:
            matching = [
                alert
                for alert in self.alerts.values()
                if (alert.suite, alert.feature, alert.scorer, alert.kind)
                == (suite, feature, scorer, kind)
            ]
        return max(matching, key=lambda alert: (alert.created_at, alert.id), default=None)

    def claim_due_alerts(self, owner: str, lease_s: float, limit: int) -> list[AlertRecord]:
        """Claim due pending alerts, oldest first; see ``SqlRunStore.claim_due_alerts``."""
        check_seconds(lease_s)
        check_limit(limit)
        with self._lock:
            now = self.clock.now()
            due = sorted(
                (alert for alert in self.alerts.values() if _due(alert, now)),
                key=lambda alert: (alert.created_at, alert.id),
            )[:limit]
            claimed = [
                replace(alert, claimed_by=owner, claimed_until=now + timedelta(seconds=lease_s))
                for alert in due
            ]
            for alert in claimed:
                self.alerts[alert.id] = alert
            return claimed

    def settle_alert(
        self,
        alert_id: int,
        owner: str,
        *,
        status: AlertStatus,
        provider_id: str | None = None,
        error: str | None = None,
        retry_in_s: float | None = None,
    ) -> bool:
        """Record a delivery attempt's outcome; see ``SqlRunStore.settle_alert``."""
        check_settle(status, retry_in_s)
        with self._lock:
            alert = self.alerts.get(alert_id)
            if alert is None or alert.claimed_by != owner or alert.status != "pending":
                return False
            now = self.clock.now()
            settled = replace(
                alert,
                status=status,
                attempts=alert.attempts + 1,
                claimed_by=None,
                claimed_until=None,
                last_error=error if error is not None else alert.last_error,
            )
            if status == "sent":
                settled = replace(settled, sent_at=now, provider_id=provider_id)
            elif status == "pending":
                settled = replace(
                    settled, next_attempt_at=now + timedelta(seconds=retry_in_s or 0.0)
                )
            self.alerts[alert_id] = settled
            return True

    def list_alerts(
        self, *, status: AlertStatus | None = None, suite: str | None = None, limit: int = 50
    ) -> list[AlertRecord]:
        """Return alerts matching every given filter, newest first; see ``SqlRunStore``."""
        check_limit(limit)
        with self._lock:
            matching = [
                alert
                for alert in self.alerts.values()
                if (status is None or alert.status == status)
                and (suite is None or alert.suite == suite)
            ]
        matching.sort(key=lambda alert: (alert.created_at, alert.id), reverse=True)
        return matching[:limit]

    # ---------------------------------------------------------------- helpers

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

    def _recounted(self, run: RunRecord) -> RunRecord:
        """``run`` with its counters recomputed from its stored results (see ``adopt_run``)."""
        results = self.results[run.id].values()
        return replace(
            run,
            cases_done=len({(r.feature, r.case_id) for r in results}),
            scored=sum(r.status is ResultStatus.OK for r in results),
            errored=sum(r.status is ResultStatus.ERROR for r in results),
        )

    def _conflict(self, new: NewRun) -> tuple[Conflict, str] | None:
        # Same order as SqlRunStore._duplicate, so both report the same rule.
        if new.id in self.runs:
            return "id", new.id
        for run in self.runs.values():
            if new.idempotency_key is not None and run.idempotency_key == new.idempotency_key:
                return "idempotency_key", run.id
        for run in self.runs.values():
            if (
                new.scheduled_for is not None
                and run.suite == new.suite
                and run.scheduled_for == new.scheduled_for
            ):
                return "scheduled_for", run.id
        return None


def _adoptable(run: RunRecord, now: datetime) -> bool:
    """Whether a worker may adopt ``run`` at ``now``: the rule of ``SqlRunStore._adoptable``."""
    if run.status.value in WAITING_STATUSES:
        return True
    return (
        run.status is RunStatus.RUNNING
        and run.lease_expires_at is not None
        and run.lease_expires_at <= now
    )


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


def _due(alert: AlertRecord, now: datetime) -> bool:
    """Whether ``alert`` may be claimed at ``now``: the rule of ``SqlRunStore.claim_due_alerts``."""
    return (
        alert.status == "pending"
        and (alert.next_attempt_at is None or alert.next_attempt_at <= now)
        and (alert.claimed_until is None or alert.claimed_until < now)
    )
