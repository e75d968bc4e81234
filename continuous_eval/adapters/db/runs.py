"""``SqlRunLifecycle``: the ``RunLifecycle`` port, runs and their leases in SQL.

Only the writes that move a run through its statuses belong here: create,
finish, renew, release, adopt and control. Which moves are allowed is
``core.lifecycle``'s to say; this module turns each into one guarded UPDATE.
Every path that ends a run also writes its completion notices to the outbox
in the same transaction (``_announce``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import Insert

from continuous_eval.adapters.db.base import (
    Instant,
    SqlStoreBase,
    insert_ignore,
    refuse,
    require_run,
    select_run,
    upsert,
)
from continuous_eval.adapters.db.decisions import decision_rows
from continuous_eval.adapters.db.engine import describe_error
from continuous_eval.adapters.db.rows import alert_row, callbacks_to_json, run_record, score_rows
from continuous_eval.adapters.db.tables import alerts as alerts_table
from continuous_eval.adapters.db.tables import (
    eval_decisions,
    eval_results,
    eval_run_scores,
    eval_runs,
)
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
    run_not_found,
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
)
from continuous_eval.core.outbox import validate_alerts
from continuous_eval.core.regression import Decision
from continuous_eval.core.run_notice import completion_notices
from continuous_eval.errors import Conflict, DuplicateRun, StoreError


class SqlRunLifecycle(SqlStoreBase):
    """Create, finish, renew, release, adopt and control runs, each write one guarded UPDATE."""

    # Built once per store: the compiled form is cached per statement object.
    @cached_property
    def _upsert_scores(self) -> Insert:
        return upsert(self._dialect, eval_run_scores, ("run_id", "feature", "scorer"))

    @cached_property
    def _insert_alerts(self) -> Insert:
        return insert_ignore(self._dialect, alerts_table, ("key", "channel"))

    @cached_property
    def _insert_decisions(self) -> Insert:
        return insert_ignore(self._dialect, eval_decisions, ("run_id", "feature", "scorer"))

    def create_run(
        self, new: NewRun, *, lease: Lease | None = None, status: RunStatus = RunStatus.RUNNING
    ) -> RunRecord:
        """Insert a run and return it.

        ``created_at`` and ``started_at`` are the store's now whatever the
        status: ``started_at`` marks when the run (or the skipped slot) was
        claimed, which is what the due check and the judge budget count.

        Args:
            new: The run to insert.
            lease: Own the run from the start: attempt 1, this owner, expiry
                at the store's now + ``lease.seconds``, heartbeat now.
            status: ``running`` (attempt 1); ``queued`` (attempt 0, for a
                worker to adopt); ``skipped`` (attempt 0, ``finished_at``
                set: a scheduled slot recorded as not run).

        Raises:
            DuplicateRun: The id, the idempotency key or the suite's scheduled
                slot is taken; nothing was written.
            ValueError: See ``validate_new_run`` and ``validate_create``.
        """
        validate_new_run(new)
        validate_create(status, lease)
        values: dict[str, Any] = {
            "id": new.id,
            "suite": new.suite,
            "run_type": new.run_type,
            "scheduled_for": new.scheduled_for,
            "status": status.value,
            "status_reason": new.reason,
            "attempt": initial_attempt(status),
            "finished_at": None,
            "features": list(new.features),
            "cases_total": new.cases_total,
            "total": new.total,
            "fingerprint": new.fingerprint,
            "fingerprint_parts": dict(new.fingerprint_parts),
            "idempotency_key": new.idempotency_key,
            "spec_hash": new.spec_hash,
            "callbacks": callbacks_to_json(new.callbacks),
        }
        at = self._time.now()
        if lease is not None:
            values.update(
                lease_owner=lease.owner,
                lease_expires_at=at.expression(lease.seconds),
                heartbeat_at=at.expression(),
            )
        with self._translate(f"create run {new.id!r}"):
            try:
                with self._writer.begin() as conn:
                    now = at.value(conn)
                    values.update(created_at=now, started_at=now)
                    if status is RunStatus.SKIPPED:
                        values["finished_at"] = now
                    conn.execute(eval_runs.insert().values(values))
                    row = conn.execute(select_run(new.id)).one()
                    self._announce(conn, row, (), now)  # a slot recorded as skipped ends here
            except IntegrityError as exc:
                raise self._duplicate(new, exc) from exc
        return run_record(row)

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
        """Store the aggregates, the final status, the decisions and the alerts in one transaction.

        The lease is cleared: a finished run has no owner. Each alert is
        inserted unless its (key, channel) is already stored (ON CONFLICT DO
        NOTHING): the existing row, whatever its status, is left as it is.
        New alerts get ``created_at`` = the store's now, no attempts and no
        ``next_attempt_at``, so a pending one is due at once.

        Raises:
            ValueError: ``status`` is not terminal (use ``release_run`` for
                pausing or interrupting a run), or see ``validate_alerts``.
            RunNotFound: No such run.
            RunFinished: No fence and the run already has a terminal status;
                neither the status, the aggregates nor the alerts were written.
            LeaseLost: The fence no longer holds; nothing was written.
        """
        if not status.terminal:
            raise ValueError(f"finish_run needs a terminal status, not {status.value!r}")
        outbox = validate_alerts(run_id, alerts)
        rows = score_rows(run_id, aggregates)
        with self._translate(f"finish run {run_id!r}"), self._writer.begin() as conn:
            now = self._time.now().value(conn)
            alert_rows = [alert_row(alert, now) for alert in outbox]
            close = (
                update(eval_runs)
                .where(*self._guard(run_id, fence))
                .values(
                    status=status.value,
                    status_reason=reason,
                    finished_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )
            if conn.execute(close).rowcount != 1:
                refuse(conn, run_id, fence)
            if rows:
                conn.execute(self._upsert_scores, rows)
            if alert_rows:
                conn.execute(self._insert_alerts, alert_rows)
            row = conn.execute(select_run(run_id)).one()
            if decisions:
                conn.execute(
                    self._insert_decisions, decision_rows(run_id, row.suite, decisions, now)
                )
            self._announce(conn, row, aggregates, now)
        return run_record(row)

    def renew_lease(self, run_id: str, fence: Fence, seconds: float) -> RunRecord:
        """Extend the lease to the store's now + ``seconds``, stamp the heartbeat, return the run.

        The returned status tells the worker whether an admin paused the run.

        Raises:
            ValueError: ``seconds`` is not positive.
            RunNotFound: No such run.
            LeaseLost: The run is no longer running or paused with this
                attempt and owner (taken over, cancelled, finished, released).
        """
        check_seconds(seconds)
        at = self._time.now()
        renew = (
            update(eval_runs)
            .where(*self._guard(run_id, fence))
            .values(lease_expires_at=at.expression(seconds), heartbeat_at=at.expression())
        )
        with self._translate(f"renew the lease of run {run_id!r}"), self._writer.begin() as conn:
            if conn.execute(renew).rowcount != 1:
                refuse(conn, run_id, fence)
            row = conn.execute(select_run(run_id)).one()
        return run_record(row)

    def release_run(
        self, run_id: str, fence: Fence, status: RunStatus, reason: str | None = None
    ) -> RunRecord:
        """Give the run up unfinished: set ``status`` and ``reason`` and clear the lease.

        The heartbeat is kept, as the last sign of life of the worker.

        Raises:
            ValueError: ``status`` is not paused, interrupted or queued.
            RunNotFound: No such run.
            LeaseLost: The fence no longer holds; nothing was changed.
        """
        check_release(status)
        release = (
            update(eval_runs)
            .where(*self._guard(run_id, fence))
            .values(
                status=status.value, status_reason=reason, lease_owner=None, lease_expires_at=None
            )
        )
        with self._translate(f"release run {run_id!r}"), self._writer.begin() as conn:
            if conn.execute(release).rowcount != 1:
                refuse(conn, run_id, fence)
            row = conn.execute(select_run(run_id)).one()
        return run_record(row)

    def adoptable_run(self, suite: str) -> RunRecord | None:
        """Return the oldest run of the suite a worker may take, or None.

        Adoptable: ``queued`` or ``interrupted``, or ``running`` with a lease
        that expired by the store's clock (the database's in production). A
        ``running`` run without any lease (a CLI run) is never adopted:
        nothing says its process is gone. Oldest is by ``created_at``, then id.
        """
        runs = eval_runs.c
        stmt = (
            select(eval_runs)
            .where(runs.suite == suite, self._adoptable(self._time.now()))
            .order_by(runs.created_at, runs.id)
            .limit(1)
        )
        action = f"find an adoptable run of {suite!r}"
        with self._translate(action), self._engine.connect() as conn:
            row = conn.execute(stmt).one_or_none()
        return None if row is None else run_record(row)

    def adopt_run(
        self, run_id: str, expected_attempt: int, lease: Lease, max_attempts: int
    ) -> RunRecord | None:
        """Take a run over, or end it ``failed`` when it has had ``max_attempts`` already.

        One UPDATE guarded on the run still being adoptable at
        ``expected_attempt``, so of two workers racing for a run exactly one
        wins. It sets attempt + 1, ``running``, the new lease, clears the
        status reason, and recounts ``cases_done`` (distinct feature x case
        with any result), ``scored`` (results ``ok``) and ``errored`` (results
        ``error``) from the stored results: a case is stored whole or not at
        all, so the new worker runs exactly the cases with no results and
        nothing is counted twice. Token and cost counters are kept: they are
        money already spent, including on cases that will run again.

        Every adoption counts as an attempt, whatever released the run
        (expired lease, interruption, a pause and resume).

        Returns:
            The adopted run; the run ended ``failed`` (also recounted) with a
            reason such as "gave up after 3 attempts; the last worker's lease
            expired" when attempt + 1 would exceed ``max_attempts``; None when
            the run is no longer adoptable at ``expected_attempt`` (another
            worker won, or it was cancelled, paused or renewed).

        Raises:
            ValueError: ``max_attempts`` below 1 or a non-positive lease.
            RunNotFound: No such run.
        """
        check_max_attempts(max_attempts)
        check_seconds(lease.seconds)
        runs = eval_runs.c
        at = self._time.now()
        guard = (runs.id == run_id, runs.attempt == expected_attempt, self._adoptable(at))
        recount = _recount(run_id)
        if expected_attempt + 1 > max_attempts:
            reason = case(
                *(
                    (runs.status == previous.value, gave_up_reason(expected_attempt, previous))
                    for previous in (RunStatus.RUNNING, RunStatus.INTERRUPTED)
                ),
                else_=gave_up_reason(expected_attempt, RunStatus.QUEUED),
            )
            stmt = (
                update(eval_runs)
                .where(*guard)
                .values(
                    status=RunStatus.FAILED.value,
                    status_reason=reason,
                    finished_at=at.stamp(),
                    lease_owner=None,
                    lease_expires_at=None,
                    **recount,
                )
            )
        else:
            stmt = (
                update(eval_runs)
                .where(*guard)
                .values(
                    status=RunStatus.RUNNING.value,
                    status_reason=None,
                    attempt=runs.attempt + 1,
                    lease_owner=lease.owner,
                    lease_expires_at=at.expression(lease.seconds),
                    heartbeat_at=at.expression(),
                    **recount,
                )
            )
        with self._translate(f"adopt run {run_id!r}"), self._writer.begin() as conn:
            # Lock the row first (Postgres; SQLite's BEGIN IMMEDIATE already
            # serialises writers). A stale worker's save_results may hold it
            # right now; the UPDATE below then starts after that commit, and
            # its recount sees those results. Without this, the UPDATE would
            # wait on the row but recount from a snapshot taken before.
            conn.execute(select(eval_runs.c.id).where(eval_runs.c.id == run_id).with_for_update())
            if conn.execute(stmt).rowcount != 1:
                require_run(conn, run_id)
                return None
            row = conn.execute(select_run(run_id)).one()
            self._announce(conn, row, (), at.value(conn))  # when it gave up
        return run_record(row)

    def control_run(self, run_id: str, action: ControlAction) -> RunRecord:
        """Apply an admin action (see ``CONTROL_TRANSITIONS``) and return the run.

        One UPDATE guarded on the statuses the action applies to, so it never
        overwrites a status a worker set at the same moment. Cancel also sets
        ``finished_at`` and clears the lease (the worker's next fenced write
        raises ``LeaseLost``); pause keeps the lease so the worker can store
        its cases in flight and release the run; resume clears it so any
        worker may adopt the queued run.

        Raises:
            ValueError: An unknown action.
            RunNotFound: No such run.
        """
        target, sources = control_transition(action)
        values: dict[str, Any] = {
            "status": target.value,
            "status_reason": CONTROL_REASONS[action],
        }
        if target is not RunStatus.PAUSED:
            values.update(lease_owner=None, lease_expires_at=None)
        at = self._time.now()
        if target.terminal:
            values["finished_at"] = at.stamp()
        runs = eval_runs.c
        stmt = (
            update(eval_runs)
            .where(runs.id == run_id, runs.status.in_([s.value for s in sources]))
            .values(values)
        )
        with self._translate(f"{action} run {run_id!r}"), self._writer.begin() as conn:
            changed = conn.execute(stmt).rowcount == 1
            row = conn.execute(select_run(run_id)).one_or_none()
            if changed and row is not None:
                self._announce(conn, row, (), at.value(conn))  # a cancel ends the run
        if row is None:
            raise run_not_found(run_id)
        return run_record(row)

    # ---------------------------------------------------------------- helpers

    def _announce(
        self,
        conn: Connection,
        row: Row[*tuple[Any, ...]],
        aggregates: Sequence[ScoreAggregate],
        now: datetime,
    ) -> None:
        """Write the completion notices of a run that just ended, in the caller's transaction.

        Every path that ends a run (finish, cancel, giving up, a skipped slot)
        calls this with the run as it now is; a run still going gets none.
        """
        run = run_record(row)
        notices = completion_notices(run, run.callbacks, aggregates)
        if notices:
            conn.execute(self._insert_alerts, [alert_row(n, now) for n in notices])

    def _adoptable(self, at: Instant) -> ColumnElement[bool]:
        runs = eval_runs.c
        return runs.status.in_(WAITING_STATUSES) | (
            (runs.status == RunStatus.RUNNING.value) & (runs.lease_expires_at <= at.expression())
        )

    def _duplicate(self, new: NewRun, exc: IntegrityError) -> StoreError:
        # Which constraint failed is spelled differently by every driver; asking
        # the table is portable and also yields the id of the run in the way.
        runs = eval_runs.c
        checks: list[tuple[Conflict, Any]] = [("id", runs.id == new.id)]
        if new.idempotency_key is not None:
            checks.append(("idempotency_key", runs.idempotency_key == new.idempotency_key))
        if new.scheduled_for is not None:
            checks.append(
                (
                    "scheduled_for",
                    (runs.suite == new.suite) & (runs.scheduled_for == new.scheduled_for),
                )
            )
        with self._engine.connect() as conn:
            for conflict, condition in checks:
                existing = conn.execute(select(runs.id).where(condition)).scalar_one_or_none()
                if existing is not None:
                    return DuplicateRun(
                        conflict, existing, duplicate_message(conflict, new, existing)
                    )
        return StoreError(
            f"could not create run {new.id!r}: {describe_error(exc, self._engine.url)}"
        )


def _recount(run_id: str) -> dict[str, Any]:
    """Counter values recomputed from a run's stored results, as scalar subqueries."""
    results = eval_results.c
    cases = (
        select(results.feature, results.case_id)
        .where(results.run_id == run_id)
        .distinct()
        .subquery()
    )

    def by_status(status: ResultStatus) -> Any:
        return (
            select(func.count())
            .select_from(eval_results)
            .where(results.run_id == run_id, results.status == status.value)
            .scalar_subquery()
        )

    return {
        "cases_done": select(func.count()).select_from(cases).scalar_subquery(),
        "scored": by_status(ResultStatus.OK),
        "errored": by_status(ResultStatus.ERROR),
    }
