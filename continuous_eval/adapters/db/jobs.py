"""``SqlJobStore``: the ``JobStore`` port on SQLAlchemy Core, SQLite and Postgres.

The rules are ``core.jobs``'s: each write reads the job's row, applies the
pure rule, and writes the new row back under a guard, in one transaction.
What makes that safe with several replicas:

- the claim: on Postgres ``SELECT ... FOR UPDATE SKIP LOCKED`` picks the
  oldest queued job nobody else is claiming; on SQLite the transaction
  takes the write lock up front (``for_writes``: ``BEGIN IMMEDIATE``), so
  claims are serialised, and the UPDATE is still guarded on ``status =
  'queued'``, so a claim never takes a job someone else has;
- fenced writes (heartbeat, step, finish) lock the job's row (``FOR
  UPDATE`` on Postgres, the write lock on SQLite) before checking the fence,
  so a takeover and a late write of the old runner never interleave; a
  step's number is the job's last plus one under that lock.

Times are parameters (the runner's clock: in ``serve``, the database's).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import JsonValue
from sqlalchemy import Connection, Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from continuous_eval.adapters.db.base import SqlStoreBase
from continuous_eval.adapters.db.tables import job_events, jobs
from continuous_eval.core.jobs import (
    JobEvent,
    JobFence,
    JobRecord,
    JobStatus,
    cancel_requested,
    claimed,
    finished,
    heartbeated,
    released,
    stepped,
    taken_over,
)
from continuous_eval.errors import JobNotFound

_WRITABLE = [c.name for c in jobs.columns if c.name not in ("id", "kind", "params", "created_at")]


class SqlJobStore(SqlStoreBase):
    """Store, claim and fence jobs in SQLite or Postgres.

    Thread-safe: every method takes its own pooled connection. Errors leave
    as ``StoreError`` naming the operation.

    Args:
        engine: From ``engine.make_engine``, on a migrated database; the run
            store may share it (``close`` disposes of it).
    """

    def enqueue(
        self,
        kind: str,
        params: Mapping[str, JsonValue],
        now: datetime,
        *,
        max_attempts: int = 1,
        idempotency_key: str | None = None,
    ) -> JobRecord:
        """Store a queued job, or return the one holding ``idempotency_key``."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        values: dict[str, Any] = {
            "kind": kind,
            "params": dict(params),
            "status": JobStatus.QUEUED.value,
            "progress": 0.0,
            "attempt": 0,
            "max_attempts": max_attempts,
            "created_at": now,
            "idempotency_key": idempotency_key,
        }
        with self._translate("enqueue a job"):
            try:
                with self._writer.begin() as conn:
                    job_id = conn.execute(
                        insert(jobs).values(values).returning(jobs.c.id)
                    ).scalar_one()
                    return _record(_row(conn, job_id))
            except IntegrityError:
                if idempotency_key is None:
                    raise
            with self._engine.connect() as conn:
                found = conn.execute(
                    select(jobs).where(jobs.c.idempotency_key == idempotency_key)
                ).one()
                return _record(found)

    def get(self, job_id: int) -> JobRecord:
        """The job; raises ``JobNotFound``."""
        with self._translate("read a job"), self._engine.connect() as conn:
            return _record(_row(conn, job_id))

    def list_jobs(
        self,
        *,
        status: JobStatus | None = None,
        kind: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[JobRecord]:
        """Jobs newest first (by id), filtered."""
        query = select(jobs).order_by(jobs.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(jobs.c.status == status.value)
        if kind is not None:
            query = query.where(jobs.c.kind == kind)
        if before_id is not None:
            query = query.where(jobs.c.id < before_id)
        with self._translate("list jobs"), self._engine.connect() as conn:
            return [_record(row) for row in conn.execute(query)]

    def claim_next(self, owner: str, now: datetime, lease_s: float) -> JobRecord | None:
        """Claim the oldest queued job nobody else is claiming."""
        query = (
            select(jobs).where(jobs.c.status == JobStatus.QUEUED.value).order_by(jobs.c.id).limit(1)
        )
        if self._dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        with self._translate("claim a job"), self._writer.begin() as conn:
            row = conn.execute(query).one_or_none()
            if row is None:
                return None
            job = claimed(_record(row), owner, now, lease_s)
            done = conn.execute(
                update(jobs)
                .where(jobs.c.id == job.id, jobs.c.status == JobStatus.QUEUED.value)
                .values(_values(job))
            )
            return job if done.rowcount == 1 else None

    def heartbeat(self, job_id: int, fence: JobFence, now: datetime, lease_s: float) -> JobRecord:
        """Renew the lease (fenced)."""
        with self._translate("heartbeat a job"), self._writer.begin() as conn:
            job = heartbeated(self._locked(conn, job_id), fence, now, lease_s)
            self._write(conn, job)
            return job

    def add_event(
        self, job_id: int, fence: JobFence, step: str, progress: float, message: str, now: datetime
    ) -> JobEvent:
        """Store the next step (fenced), numbered after the job's last one."""
        with self._translate("store a job's step"), self._writer.begin() as conn:
            job = stepped(self._locked(conn, job_id), fence, step, progress, message)
            self._write(conn, job)
            last = conn.execute(
                select(func.coalesce(func.max(job_events.c.seq), 0)).where(
                    job_events.c.job_id == job_id
                )
            ).scalar_one()
            event = JobEvent(
                job_id=job_id,
                seq=int(last) + 1,
                step=job.step or "",
                progress=job.progress,
                message=job.message or "",
                at=now,
            )
            conn.execute(
                insert(job_events).values(
                    job_id=job_id,
                    seq=event.seq,
                    step=event.step,
                    progress=event.progress,
                    message=event.message,
                    at=now,
                )
            )
            return event

    def events(self, job_id: int, after_seq: int = 0, limit: int = 500) -> list[JobEvent]:
        """The steps after ``after_seq``, in order."""
        query = (
            select(job_events)
            .where(job_events.c.job_id == job_id, job_events.c.seq > after_seq)
            .order_by(job_events.c.seq)
            .limit(limit)
        )
        with self._translate("read a job's steps"), self._engine.connect() as conn:
            rows = conn.execute(query).all()
            if not rows:
                _row(conn, job_id)  # JobNotFound for a job that does not exist
            return [
                JobEvent(
                    job_id=r.job_id,
                    seq=r.seq,
                    step=r.step,
                    progress=r.progress,
                    message=r.message,
                    at=r.at,
                )
                for r in rows
            ]

    def finish(
        self,
        job_id: int,
        fence: JobFence,
        status: JobStatus,
        now: datetime,
        *,
        result: JsonValue = None,
        error: str | None = None,
    ) -> JobRecord:
        """End the job (fenced)."""
        with self._translate("finish a job"), self._writer.begin() as conn:
            job = finished(
                self._locked(conn, job_id), fence, status, now, result=result, error=error
            )
            self._write(conn, job)
            return job

    def release(self, job_id: int, fence: JobFence) -> JobRecord:
        """Queue the job again, the attempt not counted (fenced)."""
        with self._translate("release a job"), self._writer.begin() as conn:
            job = released(self._locked(conn, job_id), fence)
            self._write(conn, job)
            return job

    def request_cancel(self, job_id: int, now: datetime) -> JobRecord:
        """Cancel now (queued) or flag (running); ``JobFinished`` when over."""
        with self._translate("cancel a job"), self._writer.begin() as conn:
            job = cancel_requested(self._locked(conn, job_id), now)
            self._write(conn, job)
            return job

    def take_over_expired(self, now: datetime) -> list[JobRecord]:
        """Re-queue, fail or cancel the running jobs whose lease expired."""
        query = select(jobs).where(
            jobs.c.status == JobStatus.RUNNING.value, jobs.c.lease_expires_at <= now
        )
        if self._dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        with self._translate("take over expired jobs"), self._writer.begin() as conn:
            out = []
            for row in conn.execute(query).all():
                job = taken_over(_record(row), now)
                self._write(conn, job)
                out.append(job)
            return out

    def _locked(self, conn: Connection, job_id: int) -> JobRecord:
        """The job's row, locked for the rest of the transaction (SQLite: already, by BEGIN)."""
        query = select(jobs).where(jobs.c.id == job_id)
        if self._dialect == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).one_or_none()
        if row is None:
            raise JobNotFound(job_id)
        return _record(row)

    def _write(self, conn: Connection, job: JobRecord) -> None:
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(_values(job)))


def _row(conn: Connection, job_id: int) -> Row[Any]:
    row = conn.execute(select(jobs).where(jobs.c.id == job_id)).one_or_none()
    if row is None:
        raise JobNotFound(job_id)
    return row


def _values(job: JobRecord) -> dict[str, Any]:
    """The row's mutable columns as the job has them."""
    values = {name: getattr(job, name) for name in _WRITABLE}
    values["status"] = job.status.value
    return values


def _record(row: Row[Any]) -> JobRecord:
    m = row._mapping
    return JobRecord(
        id=m["id"],
        kind=m["kind"],
        params=m["params"],
        status=JobStatus(m["status"]),
        created_at=m["created_at"],
        max_attempts=m["max_attempts"],
        attempt=m["attempt"],
        step=m["step"],
        progress=m["progress"],
        message=m["message"],
        result=m["result"],
        error=m["error"],
        lease_owner=m["lease_owner"],
        lease_expires_at=m["lease_expires_at"],
        heartbeat_at=m["heartbeat_at"],
        cancel_requested_at=m["cancel_requested_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        idempotency_key=m["idempotency_key"],
    )
