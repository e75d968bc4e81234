"""``SqlRunStore``: the ``RunStore`` port on SQLAlchemy Core, for SQLite and Postgres.

Only the queries of the run store belong here. The lifecycle rules (which
status a run may be written, released, adopted or controlled in) live in
``core.lifecycle`` and the outbox's in ``core.outbox``, shared with
``continuous_eval.testing.InMemoryRunStore`` so both stores refuse and decide
the same things the same way.

Core rather than the ORM: ``save_results`` is on the runner's hot path and
writes each batch as one executemany upsert plus one counter update in one
transaction, with no identity map or unit of work to pay for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Interval,
    Row,
    Select,
    Table,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.sql.dml import Insert

from continuous_eval.adapters.db.decisions import decision_rows, read_decisions, read_states
from continuous_eval.adapters.db.engine import describe_error, for_writes
from continuous_eval.adapters.db.tables import alerts as alerts_table
from continuous_eval.adapters.db.tables import (
    eval_decisions,
    eval_results,
    eval_run_scores,
    eval_runs,
)
from continuous_eval.adapters.db.types import UTCDateTime
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
    Callback,
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
from continuous_eval.core.outbox import ALERT_KINDS, ALERT_STATUSES, check_settle, validate_alerts
from continuous_eval.core.regression import Decision, KeyState, ScoreKey
from continuous_eval.core.run_notice import completion_notices
from continuous_eval.errors import (
    Conflict,
    DuplicateRun,
    RunFinished,
    StoreError,
)
from continuous_eval.ports import Clock

STREAM_BATCH = 1000
"""Rows fetched per round trip when streaming a run's results."""


class SqlRunStore:
    """Store runs, results and aggregates in SQLite or Postgres.

    Thread-safe: every method takes its own pooled connection. Writes use
    ``BEGIN IMMEDIATE`` on SQLite (see ``engine.for_writes``) so concurrent
    writers wait for each other instead of failing. Every SQLAlchemy error
    leaves as a ``StoreError`` whose message names the failed operation and
    never contains the database password.

    Two clocks, on purpose: ``clock`` stamps what users read (``created_at``,
    ``started_at``, ``finished_at``); leases and heartbeats are computed in SQL
    on the database's clock, the one clock every replica shares, so a replica
    whose clock drifts can neither steal a live run nor keep a dead one.

    Every write a worker makes under a ``Fence`` is one UPDATE guarded on
    (id, status, attempt, lease owner) whose row count decides: no row means
    ``LeaseLost`` and the whole transaction is rolled back.

    Args:
        engine: From ``engine.make_engine``, on a migrated database. The store
            disposes of it in ``close``.
        clock: Source of ``created_at``, ``started_at``, ``finished_at`` and the
            outbox's ``created_at``. None (production) means the database's
            clock, the one leases, claims and the due check already read, so
            one replica's skewed clock cannot move a slot, a due check or an
            order. Tests pass a fake to set those times exactly.
    """

    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise StoreError(f"unsupported database {dialect!r}: use SQLite or Postgres")
        self._engine = engine
        self._writer = for_writes(engine)
        self._clock = clock
        self._dialect = dialect
        # Built once: the compiled form is cached per statement object.
        self._upsert_results = _upsert(
            dialect, eval_results, ("run_id", "feature", "scorer", "case_id"), skip=("id",)
        )
        self._upsert_scores = _upsert(dialect, eval_run_scores, ("run_id", "feature", "scorer"))
        self._insert_alerts = _insert_ignore(dialect, alerts_table, ("key", "channel"))
        self._insert_decisions = _insert_ignore(
            dialect, eval_decisions, ("run_id", "feature", "scorer")
        )

    @property
    def engine(self) -> Engine:
        """The engine the store runs on; the suite locks are built on the same database."""
        return self._engine

    def create_run(
        self, new: NewRun, *, lease: Lease | None = None, status: RunStatus = RunStatus.RUNNING
    ) -> RunRecord:
        """Insert a run and return it.

        ``created_at`` and ``started_at`` are the clock's now whatever the
        status: ``started_at`` marks when the run (or the skipped slot) was
        claimed, which is what the due check and the judge budget count.

        Args:
            new: The run to insert.
            lease: Own the run from the start: attempt 1, this owner, expiry
                at database now + ``lease.seconds``, heartbeat now.
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
        if lease is not None:
            values.update(
                lease_owner=lease.owner,
                lease_expires_at=self._db_clock(lease.seconds),
                heartbeat_at=self._db_clock(),
            )
        with self._translate(f"create run {new.id!r}"):
            try:
                with self._writer.begin() as conn:
                    now = self._now(conn)
                    values.update(created_at=now, started_at=now)
                    if status is RunStatus.SKIPPED:
                        values["finished_at"] = now
                    conn.execute(eval_runs.insert().values(values))
                    row = conn.execute(_select_run(new.id)).one()
                    self._announce(conn, row, (), now)  # a slot recorded as skipped ends here
            except IntegrityError as exc:
                raise self._duplicate(new, exc) from exc
        return run_record(row)

    def save_results(
        self,
        run_id: str,
        results: Sequence[CaseResult],
        delta: ProgressDelta,
        *,
        fence: Fence | None = None,
    ) -> None:
        """Upsert a batch of results and add ``delta`` to the run's counters, atomically.

        A result whose (feature, scorer, case) is already stored replaces the
        old row, so a retried batch leaves one row per key; within a batch the
        last result for a key wins. The counters are added as given: the
        caller, which knows whether a case is new or retried, computes them.

        Args:
            run_id: The run.
            results: The rows to store; a case's results belong in one batch,
                so an adopter sees a case either whole or not at all.
            delta: Counts to add.
            fence: When given, write only while the run is running or paused
                with this attempt and owner.

        Raises:
            RunNotFound: No such run; nothing was written.
            RunFinished: No fence and the run is terminal; nothing was written.
            LeaseLost: The fence no longer holds; nothing was written.
        """
        unique = list({_result_key(r): r for r in results}.values())
        runs = eval_runs.c
        judge, target = delta.judge_usage, delta.target_usage
        add_counts = (
            update(eval_runs)
            .where(*self._guard(run_id, fence))
            .values(
                cases_done=runs.cases_done + delta.cases_done,
                scored=runs.scored + delta.scored,
                errored=runs.errored + delta.errored,
                judge_input_tokens=runs.judge_input_tokens + judge.input_tokens,
                judge_output_tokens=runs.judge_output_tokens + judge.output_tokens,
                judge_cost_usd=runs.judge_cost_usd + judge.cost_usd,
                target_input_tokens=runs.target_input_tokens + target.input_tokens,
                target_output_tokens=runs.target_output_tokens + target.output_tokens,
                target_cost_usd=runs.target_cost_usd + target.cost_usd,
            )
        )
        with self._translate(f"save results of run {run_id!r}"), self._writer.begin() as conn:
            # The guarded update first: it proves the run exists and is still
            # open (and owned), and on Postgres locks its row until commit, so
            # a concurrent finish, cancel or takeover cannot slip in between
            # the results and the counts.
            if conn.execute(add_counts).rowcount != 1:
                _refuse(conn, run_id, fence)
            if unique:
                now = self._now(conn)
                conn.execute(self._upsert_results, [_result_row(run_id, r, now) for r in unique])

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
        New alerts get ``created_at`` = the clock's now, no attempts and no
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
        rows = _score_rows(run_id, aggregates)
        with self._translate(f"finish run {run_id!r}"), self._writer.begin() as conn:
            now = self._now(conn)
            alert_rows = [_alert_row(alert, now) for alert in outbox]
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
                _refuse(conn, run_id, fence)
            if rows:
                conn.execute(self._upsert_scores, rows)
            if alert_rows:
                conn.execute(self._insert_alerts, alert_rows)
            row = conn.execute(_select_run(run_id)).one()
            if decisions:
                conn.execute(
                    self._insert_decisions, decision_rows(run_id, row.suite, decisions, now)
                )
            self._announce(conn, row, aggregates, now)
        return run_record(row)

    def get_run(self, run_id: str) -> RunRecord:
        """Return one run; raise ``RunNotFound`` when there is none."""
        with self._translate(f"read run {run_id!r}"), self._engine.connect() as conn:
            row = conn.execute(_select_run(run_id)).one_or_none()
        if row is None:
            raise run_not_found(run_id)
        return run_record(row)

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
        runs = eval_runs.c
        stmt = select(eval_runs).order_by(runs.created_at.desc(), runs.id.desc()).limit(limit)
        if suite is not None:
            stmt = stmt.where(runs.suite == suite)
        if run_type is not None:
            stmt = stmt.where(runs.run_type == run_type)
        if status is not None:
            stmt = stmt.where(runs.status == status.value)
        with self._translate("list runs"), self._engine.connect() as conn:
            return [run_record(row) for row in conn.execute(stmt)]

    def run_ids_starting(self, prefix: str, limit: int = 2) -> list[str]:
        """Return up to ``limit`` run ids that start with ``prefix``, in id order."""
        check_limit(limit)
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        runs = eval_runs.c
        stmt = (
            select(runs.id)
            .where(runs.id.like(escaped + "%", escape="\\"))
            .order_by(runs.id)
            .limit(limit)
        )
        with self._translate("find runs by id prefix"), self._engine.connect() as conn:
            return list(conn.execute(stmt).scalars())

    def iter_scores(self, run_id: str) -> Iterator[tuple[str, str, ResultStatus, float | None]]:
        """Yield (feature, scorer, status, score) for every result of a run, streamed.

        Ordered by feature, scorer (then case id), so each feature x scorer
        group is contiguous and the caller can aggregate one group at a time.
        Rows arrive in batches of ``STREAM_BATCH`` through a server-side cursor
        on Postgres, so a large run is never held in memory. The connection is
        held until the iterator is exhausted or closed.

        Raises:
            RunNotFound: On the first ``next()``, when there is no such run.
        """
        results = eval_results.c
        stmt = (
            select(results.feature, results.scorer, results.status, results.score)
            .where(results.run_id == run_id)
            .order_by(results.feature, results.scorer, results.case_id)
            .execution_options(yield_per=STREAM_BATCH)
        )
        with self._translate(f"read scores of run {run_id!r}"), self._engine.connect() as conn:
            _require_run(conn, run_id)
            for feature, scorer, status, score in conn.execute(stmt):
                yield feature, scorer, ResultStatus(status), score

    def get_aggregates(self, run_id: str) -> list[ScoreAggregate]:
        """Return a run's stored aggregates ordered by feature, scorer (empty before it finished).

        Raises:
            RunNotFound: No such run.
        """
        scores = eval_run_scores.c
        stmt = (
            select(eval_run_scores)
            .where(scores.run_id == run_id)
            .order_by(scores.feature, scores.scorer)
        )
        with self._translate(f"read aggregates of run {run_id!r}"), self._engine.connect() as conn:
            _require_run(conn, run_id)
            return [
                ScoreAggregate(
                    feature=row.feature,
                    scorer=row.scorer,
                    mean=row.mean,
                    stderr=row.stderr,
                    n=row.n,
                    errors=row.errors,
                    fingerprint=row.fingerprint or "",
                )
                for row in conn.execute(stmt)
            ]

    def worst_results(self, run_id: str, limit: int = 10) -> list[ResultRecord]:
        """Return up to ``limit`` results: errors first, then the lowest scores, skipped last.

        Ties are broken by feature, scorer and case id so reports are stable.

        Raises:
            RunNotFound: No such run.
        """
        check_limit(limit)
        results = eval_results.c
        rank = case(
            (results.status == ResultStatus.ERROR.value, 0),
            (results.score.is_not(None), 1),
            else_=2,
        )
        stmt = (
            select(eval_results)
            .where(results.run_id == run_id)
            .order_by(
                rank,
                results.score.asc().nulls_last(),
                results.feature,
                results.scorer,
                results.case_id,
            )
            .limit(limit)
        )
        with self._translate(f"read results of run {run_id!r}"), self._engine.connect() as conn:
            _require_run(conn, run_id)
            return [_result_record(row) for row in conn.execute(stmt)]

    def close(self) -> None:
        """Dispose of the engine's pooled connections."""
        self._engine.dispose()

    # ------------------------------------------------------- the daemon's needs

    def db_now(self) -> datetime:
        """Return the database's clock as an aware UTC datetime.

        Postgres: ``now()``, the start of the (here one-statement) transaction.
        SQLite: ``strftime('%f')``, millisecond precision, written in the same
        text form as ``UTCDateTime`` stores so SQL compares them correctly.
        """
        with self._translate("read the database clock"), self._engine.connect() as conn:
            value: datetime = conn.execute(select(self._db_clock())).scalar_one()
        return value

    def renew_lease(self, run_id: str, fence: Fence, seconds: float) -> RunRecord:
        """Extend the lease to database now + ``seconds``, stamp the heartbeat, return the run.

        The returned status tells the worker whether an admin paused the run.

        Raises:
            ValueError: ``seconds`` is not positive.
            RunNotFound: No such run.
            LeaseLost: The run is no longer running or paused with this
                attempt and owner (taken over, cancelled, finished, released).
        """
        check_seconds(seconds)
        renew = (
            update(eval_runs)
            .where(*self._guard(run_id, fence))
            .values(lease_expires_at=self._db_clock(seconds), heartbeat_at=self._db_clock())
        )
        with self._translate(f"renew the lease of run {run_id!r}"), self._writer.begin() as conn:
            if conn.execute(renew).rowcount != 1:
                _refuse(conn, run_id, fence)
            row = conn.execute(_select_run(run_id)).one()
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
                _refuse(conn, run_id, fence)
            row = conn.execute(_select_run(run_id)).one()
        return run_record(row)

    def newest_scheduled(self, suite: str) -> RunRecord | None:
        """Return the suite's scheduled run with the latest ``started_at`` (any status), or None.

        One backward scan of the (suite, run_type, started_at) index, whatever
        the number of runs. No tie-breaker on purpose: a second sort key would
        keep the planner from reading the index in order. Two runs of a suite
        started at the same microsecond give the same due decision anyway.
        """
        runs = eval_runs.c
        stmt = (
            select(eval_runs)
            .where(
                runs.suite == suite,
                runs.run_type == "scheduled",
                # Postgres sorts NULLs first in a DESC order; rows written by
                # plain SQL may lack started_at and are never "the newest".
                runs.started_at.is_not(None),
            )
            .order_by(runs.started_at.desc())
            .limit(1)
        )
        action = f"read the newest scheduled run of {suite!r}"
        with self._translate(action), self._engine.connect() as conn:
            row = conn.execute(stmt).one_or_none()
        return None if row is None else run_record(row)

    def adoptable_run(self, suite: str) -> RunRecord | None:
        """Return the oldest run of the suite a worker may take, or None.

        Adoptable: ``queued`` or ``interrupted``, or ``running`` with a lease
        that expired by the database's clock. A ``running`` run without any
        lease (a CLI run) is never adopted: nothing says its process is gone.
        Oldest is by ``created_at``, then id.
        """
        runs = eval_runs.c
        stmt = (
            select(eval_runs)
            .where(runs.suite == suite, self._adoptable())
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
        guard = (runs.id == run_id, runs.attempt == expected_attempt, self._adoptable())
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
                    finished_at=self._stamp(),
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
                    lease_expires_at=self._db_clock(lease.seconds),
                    heartbeat_at=self._db_clock(),
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
                _require_run(conn, run_id)
                return None
            row = conn.execute(_select_run(run_id)).one()
            self._announce(conn, row, (), self._now(conn))  # when it gave up
        return run_record(row)

    def case_result_counts(self, run_id: str) -> dict[tuple[str, str], int]:
        """Return the number of stored results per (feature, case_id) of a run.

        Raises:
            RunNotFound: No such run.
        """
        results = eval_results.c
        stmt = (
            select(results.feature, results.case_id, func.count())
            .where(results.run_id == run_id)
            .group_by(results.feature, results.case_id)
        )
        with self._translate(f"count results of run {run_id!r}"), self._engine.connect() as conn:
            _require_run(conn, run_id)
            return {(feature, case_id): count for feature, case_id, count in conn.execute(stmt)}

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
        if target.terminal:
            values["finished_at"] = self._stamp()
        runs = eval_runs.c
        stmt = (
            update(eval_runs)
            .where(runs.id == run_id, runs.status.in_([s.value for s in sources]))
            .values(values)
        )
        with self._translate(f"{action} run {run_id!r}"), self._writer.begin() as conn:
            changed = conn.execute(stmt).rowcount == 1
            row = conn.execute(_select_run(run_id)).one_or_none()
            if changed and row is not None:
                self._announce(conn, row, (), self._now(conn))  # a cancel ends the run
        if row is None:
            raise run_not_found(run_id)
        return run_record(row)

    def replace_aggregates(self, run_id: str, aggregates: Sequence[ScoreAggregate]) -> None:
        """Replace a run's aggregates with ``aggregates``, whatever its status.

        Raises:
            RunNotFound: No such run.
        """
        rows = _score_rows(run_id, aggregates)
        with self._translate(f"store aggregates of run {run_id!r}"), self._writer.begin() as conn:
            _require_run(conn, run_id)
            conn.execute(delete(eval_run_scores).where(eval_run_scores.c.run_id == run_id))
            if rows:
                conn.execute(eval_run_scores.insert(), rows)

    def judge_spend_since(self, since: datetime) -> float:
        """Return the judge cost in USD of runs whose ``started_at`` is at or after ``since``.

        A run is charged in full to the day it started, even when it runs past
        midnight or is adopted later: a run's spend counts against exactly one
        day's budget, and a past day's total never changes. Costs are counted
        as results are stored, so a running run's spend so far is included.
        A sequential scan on Postgres (about 11 ms at 100,000 runs, once per
        tick): an index on ``started_at`` would lure the due check's query
        away from its own index.

        Raises:
            ValueError: ``since`` is naive.
        """
        require_aware(since, "since")
        runs = eval_runs.c
        stmt = select(func.coalesce(func.sum(runs.judge_cost_usd), 0.0)).where(
            runs.started_at >= since
        )
        with self._translate("sum the judge spend"), self._engine.connect() as conn:
            return float(conn.execute(stmt).scalar_one())

    # ------------------------------------------------ regressions and alerts

    def scheduled_history(self, suite: str, *, before: datetime, limit: int) -> list[RunRecord]:
        """Return up to ``limit`` succeeded scheduled runs of the suite started before ``before``.

        Newest ``started_at`` first, ties broken by id (descending). Manual,
        failed, cancelled, skipped and unfinished runs are never baselines.
        Served by the (suite, run_type, started_at) index.

        Raises:
            ValueError: ``before`` is naive or ``limit`` below 1.
        """
        require_aware(before, "before")
        check_limit(limit)
        runs = eval_runs.c
        stmt = (
            select(eval_runs)
            .where(
                runs.suite == suite,
                runs.run_type == "scheduled",
                runs.status == RunStatus.SUCCEEDED.value,
                runs.started_at < before,
            )
            .order_by(runs.started_at.desc(), runs.id.desc())
            .limit(limit)
        )
        action = f"read the scheduled history of {suite!r}"
        with self._translate(action), self._engine.connect() as conn:
            return [run_record(row) for row in conn.execute(stmt)]

    def get_decisions(self, run_id: str) -> list[Decision]:
        """Return a run's stored decisions, by feature and scorer (empty if none were stored)."""
        with self._translate(f"read decisions of run {run_id!r}"), self._engine.connect() as conn:
            return read_decisions(conn, run_id)

    def decision_states(self, run_ids: Sequence[str]) -> dict[str, dict[ScoreKey, KeyState]]:
        """Return what the detector carries forward from each run's decisions, per key."""
        with self._translate("read decision states"), self._engine.connect() as conn:
            return read_states(conn, run_ids)

    def case_scores(self, run_id: str) -> dict[tuple[str, str], dict[str, float]]:
        """Return a run's scored results: (feature, scorer) -> case id -> score.

        Only ``ok`` results with a score; errors and skipped cases are left
        out, never counted as zero. One query; the run's scores are held in
        memory (a few floats per case).

        Raises:
            RunNotFound: No such run.
        """
        results = eval_results.c
        stmt = (
            select(results.feature, results.scorer, results.case_id, results.score)
            .where(
                results.run_id == run_id,
                results.status == ResultStatus.OK.value,
                results.score.is_not(None),
            )
            .order_by(results.feature, results.scorer, results.case_id)
        )
        scores: dict[tuple[str, str], dict[str, float]] = {}
        with self._translate(f"read case scores of run {run_id!r}"), self._engine.connect() as conn:
            _require_run(conn, run_id)
            for feature, scorer, case_id, score in conn.execute(stmt):
                scores.setdefault((feature, scorer), {})[case_id] = float(score)
        return scores

    def latest_alert(
        self, suite: str, feature: str, scorer: str, *, kind: AlertKind
    ) -> AlertRecord | None:
        """Return the newest alert of ``kind`` for the feature x scorer, any channel or status.

        Newest by ``created_at``, then by id (the later insert). Served by the
        (suite, feature, scorer, kind, created_at) index.
        """
        a = alerts_table.c
        stmt = (
            select(alerts_table)
            .where(a.suite == suite, a.feature == feature, a.scorer == scorer, a.kind == kind)
            .order_by(a.created_at.desc(), a.id.desc())
            .limit(1)
        )
        action = f"read the latest {kind} alert of {suite}/{feature}/{scorer}"
        with self._translate(action), self._engine.connect() as conn:
            row = conn.execute(stmt).one_or_none()
        return None if row is None else _alert_record(row)

    def claim_due_alerts(self, owner: str, lease_s: float, limit: int) -> list[AlertRecord]:
        """Claim up to ``limit`` due pending alerts for ``owner``, oldest first, and return them.

        Due, by the database's clock: ``pending``, ``next_attempt_at`` null or
        not in the future, and no claim or an expired one. The claim sets
        ``claimed_by`` and ``claimed_until`` = database now + ``lease_s``.
        One statement, WITH due AS (the due ids) UPDATE ... WHERE id IN due
        RETURNING: on Postgres the CTE takes the rows FOR UPDATE SKIP LOCKED,
        so concurrent claimers split the alerts instead of waiting for each
        other; SQLite's BEGIN IMMEDIATE serialises them. Either way an alert is claimed by
        one owner at a time.

        Raises:
            ValueError: ``lease_s`` is not positive or ``limit`` below 1.
        """
        check_seconds(lease_s)
        check_limit(limit)
        a = alerts_table.c
        now = self._db_clock()
        due = (
            select(a.id)
            .where(
                a.status == "pending",
                or_(a.next_attempt_at.is_(None), a.next_attempt_at <= now),
                or_(a.claimed_until.is_(None), a.claimed_until < now),
            )
            .order_by(a.created_at, a.id)
            .limit(limit)
        )
        if self._dialect == "postgresql":
            # MATERIALIZED: the due ids are chosen and locked exactly once. As a
            # plain IN (subquery) the planner may rescan it, and with SKIP
            # LOCKED a rescan can pick other rows and claim more than ``limit``.
            chosen = due.with_for_update(skip_locked=True).cte("due").prefix_with("MATERIALIZED")
        else:
            chosen = due.cte("due")
        claim = (
            update(alerts_table)
            .where(a.id.in_(select(chosen.c.id)))
            .values(claimed_by=owner, claimed_until=self._db_clock(lease_s))
            .returning(*alerts_table.c)
        )
        with self._translate("claim due alerts"), self._writer.begin() as conn:
            claimed = [_alert_record(row) for row in conn.execute(claim).all()]
        # RETURNING gives no order.
        return sorted(claimed, key=lambda alert: (alert.created_at, alert.id))

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
        """Record the outcome of a delivery attempt; False when ``owner`` no longer holds it.

        One UPDATE guarded on (id, ``claimed_by`` = owner, ``pending``): a
        replica whose claim was taken over, or an alert already settled,
        writes nothing. A claim that expired but that nobody took over still
        settles (the send did happen). Sets attempts + 1 and clears the claim;
        ``sent`` stamps ``sent_at`` (database now) and ``provider_id``;
        ``pending`` sets ``next_attempt_at`` = database now + ``retry_in_s``
        (None: due at once); ``error``, when given, replaces ``last_error``.

        Raises:
            ValueError: See ``check_settle``.
        """
        check_settle(status, retry_in_s)
        a = alerts_table.c
        values: dict[str, Any] = {
            "status": status,
            "attempts": a.attempts + 1,
            "claimed_by": None,
            "claimed_until": None,
        }
        if status == "sent":
            values.update(sent_at=self._db_clock(), provider_id=provider_id)
        elif status == "pending":
            values["next_attempt_at"] = self._db_clock(retry_in_s or 0.0)
        if error is not None:
            values["last_error"] = error
        stmt = (
            update(alerts_table)
            .where(a.id == alert_id, a.claimed_by == owner, a.status == "pending")
            .values(values)
        )
        with self._translate(f"settle alert {alert_id}"), self._writer.begin() as conn:
            return bool(conn.execute(stmt).rowcount == 1)

    def list_alerts(
        self, *, status: AlertStatus | None = None, suite: str | None = None, limit: int = 50
    ) -> list[AlertRecord]:
        """Return up to ``limit`` alerts matching every given filter, newest first (then by id).

        Raises:
            ValueError: ``limit`` below 1.
        """
        check_limit(limit)
        a = alerts_table.c
        stmt = select(alerts_table).order_by(a.created_at.desc(), a.id.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(a.status == status)
        if suite is not None:
            stmt = stmt.where(a.suite == suite)
        with self._translate("list alerts"), self._engine.connect() as conn:
            return [_alert_record(row) for row in conn.execute(stmt)]

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
            conn.execute(self._insert_alerts, [_alert_row(n, now) for n in notices])

    def _now(self, conn: Connection) -> datetime:
        """The time a write stamps: the injected clock's, else the database's, read once.

        SQLite is embedded: its clock is this process's, read here directly
        (with microseconds, where SQLite's own ``now`` has milliseconds).
        Postgres: ``now()``, the same instant for the whole transaction.
        """
        if self._clock is not None:
            return self._clock.now()
        if self._dialect == "sqlite":
            return datetime.now(UTC)
        value: datetime = conn.execute(select(self._db_clock())).scalar_one()
        return value

    def _stamp(self) -> datetime | ColumnElement[datetime]:
        """The same time as a value for an UPDATE: a SQL expression for Postgres's clock."""
        if self._clock is not None:
            return self._clock.now()
        return datetime.now(UTC) if self._dialect == "sqlite" else self._db_clock()

    def _db_clock(self, plus_seconds: float = 0.0) -> ColumnElement[datetime]:
        """The database's now (+ ``plus_seconds``) as a SQL expression, typed ``UTCDateTime``."""
        if self._dialect == "postgresql":
            now: ColumnElement[Any] = func.now()
            if plus_seconds:
                now = now + literal(timedelta(seconds=plus_seconds), Interval())
            return type_coerce(now, UTCDateTime())
        return type_coerce(sqlite_clock(plus_seconds), UTCDateTime())

    def _adoptable(self) -> ColumnElement[bool]:
        runs = eval_runs.c
        return runs.status.in_(WAITING_STATUSES) | (
            (runs.status == RunStatus.RUNNING.value) & (runs.lease_expires_at <= self._db_clock())
        )

    def _guard(self, run_id: str, fence: Fence | None) -> tuple[ColumnElement[bool], ...]:
        runs = eval_runs.c
        if fence is None:
            return (runs.id == run_id, runs.status.not_in(TERMINAL_STATUSES))
        return (
            runs.id == run_id,
            runs.status.in_(FENCED_STATUSES),
            runs.attempt == fence.attempt,
            runs.lease_owner == fence.owner,
        )

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            raise StoreError(
                f"could not {action}: {describe_error(exc, self._engine.url)}"
            ) from exc

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


SQLITE_CLOCK_FORMAT = "%Y-%m-%d %H:%M:%f"
"""``strftime`` format of SQLite's clock: milliseconds, e.g. ``2025-01-01 06:00:00.250``."""


def sqlite_clock(plus_seconds: float = 0.0) -> ColumnElement[str]:
    """SQLite's now (+ ``plus_seconds``) in the text form ``UTCDateTime`` stores.

    SQLAlchemy writes ``YYYY-MM-DD HH:MM:SS.ffffff`` (microseconds); SQLite's
    ``%f`` gives milliseconds, so three zeros are appended. Both forms then
    have the same length and fields, and SQLite's text comparison of a stored
    expiry with this value is a chronological one.
    """
    args: list[Any] = [SQLITE_CLOCK_FORMAT, "now"]
    if plus_seconds:
        args.append(f"{plus_seconds:+.3f} seconds")
    return func.strftime(*args).concat("000")


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


def _refuse(conn: Connection, run_id: str, fence: Fence | None) -> None:
    """Raise why a guarded update matched no row: no run, a finished run or a lost lease."""
    runs = eval_runs.c
    row = conn.execute(
        select(runs.status, runs.attempt, runs.lease_owner).where(runs.id == run_id)
    ).one_or_none()
    if row is None:
        raise run_not_found(run_id)
    status = RunStatus(row.status)
    if fence is None:
        raise RunFinished(run_id, status)
    raise lease_lost(run_id, fence, status, row.attempt, row.lease_owner)


def _upsert(dialect: str, table: Table, keys: Sequence[str], skip: Sequence[str] = ()) -> Insert:
    """Build INSERT ... ON CONFLICT (keys) DO UPDATE of every other column."""
    replaced = [c.name for c in table.columns if c.name not in keys and c.name not in skip]
    if dialect == "postgresql":
        pg = postgresql.insert(table)
        return pg.on_conflict_do_update(
            index_elements=list(keys), set_={name: pg.excluded[name] for name in replaced}
        )
    lite = sqlite.insert(table)
    return lite.on_conflict_do_update(
        index_elements=list(keys), set_={name: lite.excluded[name] for name in replaced}
    )


def _insert_ignore(dialect: str, table: Table, keys: Sequence[str]) -> Insert:
    """Build INSERT ... ON CONFLICT (keys) DO NOTHING."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(keys))
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(keys))


def _select_run(run_id: str) -> Select[*tuple[Any, ...]]:
    return select(eval_runs).where(eval_runs.c.id == run_id)


def _require_run(conn: Connection, run_id: str) -> None:
    found = conn.execute(select(eval_runs.c.id).where(eval_runs.c.id == run_id)).first()
    if found is None:
        raise run_not_found(run_id)


def _result_key(result: CaseResult) -> tuple[str, str, str]:
    return (result.feature, result.scorer, result.case_id)


def _result_row(run_id: str, result: CaseResult, now: datetime) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "feature": result.feature,
        "case_id": result.case_id,
        "scorer": result.scorer,
        "status": ResultStatus(result.status).value,
        "score": result.score,
        "passed": result.passed,
        "output_excerpt": result.output_excerpt,
        "error": result.error,
        "rationale": result.rationale,
        "latency_ms": result.latency_ms,
        "input_tokens": result.usage.input_tokens,
        "output_tokens": result.usage.output_tokens,
        "cost_usd": result.usage.cost_usd,
        "attempt": result.attempt,
        "created_at": now,
    }


def _score_rows(run_id: str, aggregates: Sequence[ScoreAggregate]) -> list[dict[str, Any]]:
    """One row per (feature, scorer); the last aggregate given for a pair wins."""
    return list({(a.feature, a.scorer): _score_row(run_id, a) for a in aggregates}.values())


def _score_row(run_id: str, aggregate: ScoreAggregate) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "feature": aggregate.feature,
        "scorer": aggregate.scorer,
        "mean": aggregate.mean,
        "stderr": aggregate.stderr,
        "n": aggregate.n,
        "errors": aggregate.errors,
        "fingerprint": aggregate.fingerprint or None,
    }


def _run_type(value: str) -> RunType:
    if value == "scheduled":
        return "scheduled"
    if value == "manual":
        return "manual"
    raise StoreError(f"unknown run_type {value!r} in the database")


def callbacks_to_json(callbacks: Sequence[Callback]) -> list[dict[str, str]] | None:
    """Store a run's callbacks as JSON (None for none, which old rows also hold)."""
    return [{"channel": c.channel, "url": c.url} for c in callbacks] or None


def callbacks_from_json(value: Any) -> tuple[Callback, ...]:
    """Read a run's callbacks back; rows from before the column read as none."""
    found = []
    for item in value or ():
        channel = item.get("channel")
        if channel not in ("callback", "run_webhook"):
            raise StoreError(f"unknown callback channel {channel!r} in the database")
        found.append(Callback(channel, str(item["url"])))
    return tuple(found)


def run_record(row: Row[*tuple[Any, ...]]) -> RunRecord:
    m = row._mapping
    return RunRecord(
        id=m["id"],
        suite=m["suite"],
        run_type=_run_type(m["run_type"]),
        status=RunStatus(m["status"]),
        status_reason=m["status_reason"],
        attempt=m["attempt"],
        features=tuple(m["features"]),
        created_at=m["created_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        scheduled_for=m["scheduled_for"],
        cases_total=m["cases_total"],
        cases_done=m["cases_done"],
        total=m["total"],
        scored=m["scored"],
        errored=m["errored"],
        judge_usage=Usage(m["judge_input_tokens"], m["judge_output_tokens"], m["judge_cost_usd"]),
        target_usage=Usage(
            m["target_input_tokens"], m["target_output_tokens"], m["target_cost_usd"]
        ),
        fingerprint=m["fingerprint"],
        fingerprint_parts=dict(m["fingerprint_parts"] or {}),
        idempotency_key=m["idempotency_key"],
        spec_hash=m["spec_hash"],
        lease_owner=m["lease_owner"],
        lease_expires_at=m["lease_expires_at"],
        heartbeat_at=m["heartbeat_at"],
        callbacks=callbacks_from_json(m["callbacks"]),
    )


def _result_record(row: Row[*tuple[Any, ...]]) -> ResultRecord:
    m = row._mapping
    return ResultRecord(
        run_id=m["run_id"],
        feature=m["feature"],
        case_id=m["case_id"],
        scorer=m["scorer"],
        status=ResultStatus(m["status"]),
        score=m["score"],
        passed=m["passed"],
        output_excerpt=m["output_excerpt"],
        error=m["error"],
        rationale=m["rationale"],
        latency_ms=m["latency_ms"],
        usage=Usage(m["input_tokens"], m["output_tokens"], m["cost_usd"]),
        attempt=m["attempt"],
        created_at=m["created_at"],
    )


def _alert_row(alert: NewAlert, now: datetime) -> dict[str, Any]:
    return {
        "key": alert.key,
        "channel": alert.channel,
        "kind": alert.kind,
        "run_id": alert.run_id,
        "suite": alert.suite,
        "feature": alert.feature,
        "scorer": alert.scorer,
        "rule": alert.rule,
        "status": alert.status,
        "payload": alert.payload,
        "summary": dict(alert.summary),
        "reason": alert.reason,
        "attempts": 0,
        "next_attempt_at": None,
        "last_error": None,
        "provider_id": None,
        "created_at": now,
        "sent_at": None,
        "claimed_by": None,
        "claimed_until": None,
        "destination": alert.destination,
    }


def _alert_kind(value: str) -> AlertKind:
    if value in ALERT_KINDS:
        return cast(AlertKind, value)
    raise StoreError(f"unknown alert kind {value!r} in the database")


def _alert_status(value: str) -> AlertStatus:
    if value in ALERT_STATUSES:
        return cast(AlertStatus, value)
    raise StoreError(f"unknown alert status {value!r} in the database")


def _alert_record(row: Row[*tuple[Any, ...]]) -> AlertRecord:
    m = row._mapping
    return AlertRecord(
        id=m["id"],
        key=m["key"],
        channel=m["channel"],
        kind=_alert_kind(m["kind"]),
        run_id=m["run_id"],
        suite=m["suite"],
        feature=m["feature"],
        scorer=m["scorer"],
        rule=m["rule"],
        status=_alert_status(m["status"]),
        payload=m["payload"],
        summary=dict(m["summary"]),
        reason=m["reason"],
        attempts=m["attempts"],
        next_attempt_at=m["next_attempt_at"],
        last_error=m["last_error"],
        provider_id=m["provider_id"],
        created_at=m["created_at"],
        sent_at=m["sent_at"],
        claimed_by=m["claimed_by"],
        claimed_until=m["claimed_until"],
        destination=m["destination"],
    )
