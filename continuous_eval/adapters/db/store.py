"""``SqlRunStore``: the ``RunStore`` port on SQLAlchemy Core, for SQLite and Postgres.

Only the queries of the run store belong here, plus the store errors and input
checks that ``continuous_eval.testing.InMemoryRunStore`` shares so both stores
refuse the same things the same way.

Core rather than the ORM: ``save_results`` is on the runner's hot path and
writes each batch as one executemany upsert plus one counter update in one
transaction, with no identity map or unit of work to pay for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, Select, Table, case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.sql.dml import Insert

from continuous_eval.adapters.db.engine import describe_error, for_writes
from continuous_eval.adapters.db.tables import RUN_TYPES, eval_results, eval_run_scores, eval_runs
from continuous_eval.core.models import (
    CaseResult,
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
from continuous_eval.errors import Conflict, DuplicateRun, RunFinished, RunNotFound, StoreError
from continuous_eval.ports import Clock

"""Which unique rule a duplicate run broke."""

TERMINAL_STATUSES = tuple(status.value for status in RunStatus if status.terminal)
"""Statuses a run never leaves; the guarded updates below refuse to touch them."""

STREAM_BATCH = 1000
"""Rows fetched per round trip when streaming a run's results."""


def run_not_found(run_id: str) -> RunNotFound:
    """Build the error both stores raise for an unknown run id."""
    return RunNotFound(f"no run with id {run_id!r}")


def validate_new_run(new: NewRun) -> None:
    """Refuse a ``NewRun`` that no store may accept, before touching storage.

    Raises:
        ValueError: An unknown run type, or a naive ``scheduled_for`` (a bug in
            the caller, not a database failure, hence not a ``StoreError``).
    """
    if new.run_type not in RUN_TYPES:
        raise ValueError(f"run_type must be one of {RUN_TYPES}, not {new.run_type!r}")
    require_aware(new.scheduled_for, "scheduled_for")


def require_aware(value: datetime | None, name: str) -> None:
    """Raise ``ValueError`` for a naive datetime; the project's time is always aware UTC."""
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


def check_limit(limit: int) -> None:
    """Raise ``ValueError`` unless ``limit`` is positive."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")


def duplicate_message(conflict: Conflict, new: NewRun, existing_id: str) -> str:
    """Say which rule a duplicate run broke, the same way for every store."""
    if conflict == "id":
        return f"a run with id {new.id!r} already exists"
    if conflict == "idempotency_key":
        return f"idempotency key {new.idempotency_key!r} already belongs to run {existing_id!r}"
    slot = new.scheduled_for.isoformat() if new.scheduled_for else None
    return f"suite {new.suite!r} slot {slot} is already claimed by run {existing_id!r}"


class SqlRunStore:
    """Store runs, results and aggregates in SQLite or Postgres.

    Thread-safe: every method takes its own pooled connection. Writes use
    ``BEGIN IMMEDIATE`` on SQLite (see ``engine.for_writes``) so concurrent
    writers wait for each other instead of failing. Every SQLAlchemy error
    leaves as a ``StoreError`` whose message names the failed operation and
    never contains the database password.

    Args:
        engine: From ``engine.make_engine``, on a migrated database. The store
            disposes of it in ``close``.
        clock: Source of ``created_at``, ``started_at`` and ``finished_at``.
    """

    def __init__(self, engine: Engine, clock: Clock) -> None:
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise StoreError(f"unsupported database {dialect!r}: use SQLite or Postgres")
        self._engine = engine
        self._writer = for_writes(engine)
        self._clock = clock
        # Built once: the compiled form is cached per statement object.
        self._upsert_results = _upsert(
            dialect, eval_results, ("run_id", "feature", "scorer", "case_id"), skip=("id",)
        )
        self._upsert_scores = _upsert(dialect, eval_run_scores, ("run_id", "feature", "scorer"))

    def create_run(self, new: NewRun) -> RunRecord:
        """Insert a run in status ``running`` and return it.

        Raises:
            DuplicateRun: The id, the idempotency key or the suite's scheduled
                slot is taken; nothing was written.
            ValueError: See ``validate_new_run``.
        """
        validate_new_run(new)
        now = self._clock.now()
        values = {
            "id": new.id,
            "suite": new.suite,
            "run_type": new.run_type,
            "scheduled_for": new.scheduled_for,
            "status": RunStatus.RUNNING.value,
            "attempt": 1,
            "created_at": now,
            "started_at": now,
            "features": list(new.features),
            "cases_total": new.cases_total,
            "total": new.total,
            "fingerprint": new.fingerprint,
            "fingerprint_parts": dict(new.fingerprint_parts),
            "idempotency_key": new.idempotency_key,
            "spec_hash": new.spec_hash,
        }
        with self._translate(f"create run {new.id!r}"):
            try:
                with self._writer.begin() as conn:
                    conn.execute(eval_runs.insert().values(values))
                    row = conn.execute(_select_run(new.id)).one()
            except IntegrityError as exc:
                raise self._duplicate(new, exc) from exc
        return _run_record(row)

    def save_results(
        self, run_id: str, results: Sequence[CaseResult], delta: ProgressDelta
    ) -> None:
        """Upsert a batch of results and add ``delta`` to the run's counters, atomically.

        A result whose (feature, scorer, case) is already stored replaces the
        old row, so a retried batch leaves one row per key; within a batch the
        last result for a key wins. The counters are added as given: the
        caller, which knows whether a case is new or retried, computes them.

        Raises:
            RunNotFound: No such run; nothing was written.
            RunFinished: The run is terminal; nothing was written.
        """
        now = self._clock.now()
        rows = list({_result_key(r): _result_row(run_id, r, now) for r in results}.values())
        runs = eval_runs.c
        judge, target = delta.judge_usage, delta.target_usage
        add_counts = (
            update(eval_runs)
            .where(runs.id == run_id, runs.status.not_in(TERMINAL_STATUSES))
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
            # open, and on Postgres locks its row until commit, so a concurrent
            # finish_run cannot slip in between the results and the counts.
            if conn.execute(add_counts).rowcount != 1:
                _raise_missing_or_finished(conn, run_id)
            if rows:
                conn.execute(self._upsert_results, rows)

    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        reason: str | None,
        aggregates: Sequence[ScoreAggregate],
    ) -> RunRecord:
        """Store the aggregates and the terminal status in one transaction and return the run.

        Raises:
            ValueError: ``status`` is not terminal (use the lifecycle methods
                for pausing or interrupting a run).
            RunNotFound: No such run.
            RunFinished: The run already has a terminal status; neither the
                status nor the aggregates were changed.
        """
        if not status.terminal:
            raise ValueError(f"finish_run needs a terminal status, not {status.value!r}")
        now = self._clock.now()
        rows = list({(a.feature, a.scorer): _score_row(run_id, a) for a in aggregates}.values())
        runs = eval_runs.c
        close = (
            update(eval_runs)
            .where(runs.id == run_id, runs.status.not_in(TERMINAL_STATUSES))
            .values(status=status.value, status_reason=reason, finished_at=now)
        )
        with self._translate(f"finish run {run_id!r}"), self._writer.begin() as conn:
            if conn.execute(close).rowcount != 1:
                _raise_missing_or_finished(conn, run_id)
            if rows:
                conn.execute(self._upsert_scores, rows)
            row = conn.execute(_select_run(run_id)).one()
        return _run_record(row)

    def get_run(self, run_id: str) -> RunRecord:
        """Return one run; raise ``RunNotFound`` when there is none."""
        with self._translate(f"read run {run_id!r}"), self._engine.connect() as conn:
            row = conn.execute(_select_run(run_id)).one_or_none()
        if row is None:
            raise run_not_found(run_id)
        return _run_record(row)

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
            return [_run_record(row) for row in conn.execute(stmt)]

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


def _select_run(run_id: str) -> Select[*tuple[Any, ...]]:
    return select(eval_runs).where(eval_runs.c.id == run_id)


def _require_run(conn: Connection, run_id: str) -> None:
    found = conn.execute(select(eval_runs.c.id).where(eval_runs.c.id == run_id)).first()
    if found is None:
        raise run_not_found(run_id)


def _raise_missing_or_finished(conn: Connection, run_id: str) -> None:
    status = conn.execute(
        select(eval_runs.c.status).where(eval_runs.c.id == run_id)
    ).scalar_one_or_none()
    if status is None:
        raise run_not_found(run_id)
    raise RunFinished(run_id, RunStatus(status))


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


def _run_record(row: Row[*tuple[Any, ...]]) -> RunRecord:
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
