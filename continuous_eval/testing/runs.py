"""``MemoryRunLifecycle``: the ``RunLifecycle`` port in dictionaries.

Only the moves of a run through its statuses belong here, each applying the
same ``core.lifecycle`` rule the SQL store turns into a guarded UPDATE.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from continuous_eval.core.lifecycle import (
    CONTROL_REASONS,
    WAITING_STATUSES,
    check_max_attempts,
    check_release,
    check_seconds,
    control_transition,
    duplicate_message,
    gave_up_reason,
    initial_attempt,
    validate_create,
    validate_new_run,
)
from continuous_eval.core.models import (
    ControlAction,
    Fence,
    Lease,
    NewAlert,
    NewRun,
    ResultStatus,
    RunRecord,
    RunStatus,
    ScoreAggregate,
    Usage,
)
from continuous_eval.core.outbox import validate_alerts
from continuous_eval.core.regression import Decision
from continuous_eval.errors import Conflict, DuplicateRun
from continuous_eval.testing.base import MemoryStoreBase


class MemoryRunLifecycle(MemoryStoreBase):
    """Create, finish, renew, release, adopt and control runs; see ``SqlRunStore``."""

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

    # ---------------------------------------------------------------- helpers

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
