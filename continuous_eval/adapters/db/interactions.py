"""``SqlInteractionStore``: the ``InteractionStore`` port on SQLAlchemy Core, SQLite and Postgres.

Only the queries of recorded traffic belong here (``interactions`` and
``interaction_feedback``); the row mapping is at the bottom. Ingestion is on
the hot path: a batch is one transaction and, on Postgres, one
``INSERT ... SELECT FROM json_populate_recordset(...) ON CONFLICT DO NOTHING``
run in autocommit, stamped by its own ``now()``: one round trip, where
BEGIN, a read of the clock, the INSERT and COMMIT were four (on SQLite an
executemany of one cached multi-row INSERT); the rows it
reports are the spans that were new, so a re-sent batch counts as duplicates.

Deletes go by id in batches (``DELETE ... WHERE id IN (SELECT id ... LIMIT n)``)
so retention never holds a long lock on a table ingestion writes to. Feedback
belongs to a trace, not to a row: it is deleted with the trace's *last*
interaction (feedback on the deleted traces whose trace has no interaction
left), so a trace half deleted by a row cap keeps its feedback until the rest
of it goes too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    TextClause,
    delete,
    exists,
    func,
    select,
    text,
)
from sqlalchemy.sql.dml import Insert

from continuous_eval.adapters.db.base import SqlStoreBase, insert_ignore
from continuous_eval.adapters.db.tables import interaction_feedback, interactions
from continuous_eval.core.interactions import (
    SAMPLE_KEY_SPACE,
    Feedback,
    Interaction,
    NewFeedback,
    StoredInteraction,
    sample_key,
    sample_threshold,
)
from continuous_eval.core.lifecycle import check_limit, require_aware
from continuous_eval.core.trajectory import Step


class SqlInteractionStore(SqlStoreBase):
    """Store, sample and bound recorded interactions in SQLite or Postgres.

    Thread-safe: every method takes its own pooled connection. Errors leave
    as ``StoreError`` naming the operation, as the run store's do.

    Args:
        engine: From ``engine.make_engine``, on a migrated database; the run
            store may share it (``close`` disposes of it).
        clock: Source of ``ingested_at`` and feedback's ``created_at``; None
            means the database's clock (see ``base.StoreTime``).
    """

    @cached_property
    def _insert(self) -> Insert:
        # SQLite's. Built once per store, so its compiled form is cached:
        # executed with a list of rows it becomes SQLAlchemy's
        # "insertmanyvalues", multi-row INSERTs of up to 1,000 rows, compiled
        # once. RETURNING rather than the row count, which the driver does not
        # report for such an executemany: the ids returned are the rows new.
        ignore = insert_ignore(self._dialect, interactions, ("trace_id", "span_id"))
        return ignore.returning(interactions.c.id)

    @cached_property
    def _autocommit(self) -> Engine:
        # Postgres's. The batch is one statement, atomic on its own: run in
        # autocommit it is its own transaction, with no BEGIN and COMMIT round
        # trips (the commit still waits for the WAL flush: as durable as before).
        return self._engine.execution_options(isolation_level="AUTOCOMMIT")

    def add_interactions(self, items: Sequence[Interaction]) -> int:
        """Store the spans not stored yet; return how many were new (first write wins).

        Spans repeated within the batch count once. One transaction: a batch
        is stored whole or not at all.

        Raises:
            ValueError: A start or end time is naive; nothing was written.
        """
        if not items:
            return 0
        first: dict[tuple[str, str], Interaction] = {}
        for item in items:
            _require_times_aware(item)
            first.setdefault((item.trace_id, item.span_id), item)
        if self._dialect == "postgresql":
            return self._add_recordset(list(first.values()))
        with self._translate("store interactions"), self._writer.begin() as conn:
            now = self._time.now().value(conn)
            rows = [_interaction_row(item, now) for item in first.values()]
            return len(conn.execute(self._insert, rows).all())

    def _add_recordset(self, items: Sequence[Interaction]) -> int:
        """Postgres: the whole batch as one INSERT ... SELECT FROM json_populate_recordset.

        One statement with one parameter, whatever the batch size: the server
        parses one JSON text into typed rows. A multi-row VALUES has 18
        parameters a row, and the driver's parse of a 1,800-parameter statement
        (or its escaping of 18 text arrays, for ``unnest``) took most of a
        100-span request; ``json.dumps`` is C. ``ingested_at`` is the
        statement's own ``now()`` (or the injected clock's reading, bound), so
        nothing is read first: one round trip. The row count is the rows new.
        """
        payload = _recordset_json(items)
        stamp = self._time.now().stamp()
        if isinstance(stamp, datetime):
            statement, params = _INSERT_RECORDSET_AT, {"rows": payload, "ingested_at": stamp}
        else:
            statement, params = _INSERT_RECORDSET_NOW, {"rows": payload}
        with self._translate("store interactions"), self._autocommit.connect() as conn:
            return conn.execute(statement, params).rowcount

    def list_interactions(
        self,
        feature: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_id: int | None = None,
        limit: int = 100,
    ) -> list[StoredInteraction]:
        """Interactions in id order after ``after_id``, by feature and ``started_at`` in
        ``[since, until)``; see the port."""
        check_limit(limit)
        require_aware(since, "since")
        require_aware(until, "until")
        c = interactions.c
        where: list[ColumnElement[bool]] = []
        if feature is not None:
            where.append(c.feature == feature)
        if since is not None:
            where.append(c.started_at >= since)
        if until is not None:
            where.append(c.started_at < until)
        if after_id is not None:
            where.append(c.id > after_id)
        stmt = select(interactions).where(*where).order_by(c.id).limit(limit)
        with self._translate("list interactions"), self._engine.connect() as conn:
            return [_stored(row) for row in conn.execute(stmt)]

    def trace(self, trace_id: str) -> list[StoredInteraction]:
        """Every interaction of one trace, by start time then id."""
        c = interactions.c
        stmt = select(interactions).where(c.trace_id == trace_id).order_by(c.started_at, c.id)
        with self._translate(f"read trace {trace_id!r}"), self._engine.connect() as conn:
            return [_stored(row) for row in conn.execute(stmt)]

    def sample(
        self, feature: str, start: datetime, end: datetime, rate: float, limit: int
    ) -> list[StoredInteraction]:
        """The window's lowest sample keys below ``sample_threshold(rate)``, at most ``limit``.

        Read from the (feature, sample_key, started_at) index in key order,
        with the window filtered inside the index, stopping at the limit: the
        cost is the rows sampled, not the rows stored. Spans of one trace
        share a key; they come by start time, then id.
        """
        threshold = sample_threshold(rate)
        check_limit(limit)
        require_aware(start, "start")
        require_aware(end, "end")
        c = interactions.c
        where = [c.feature == feature, c.started_at >= start, c.started_at < end]
        if threshold < SAMPLE_KEY_SPACE:
            # At rate 1 the bound (2**63) is past every key and past BIGINT: no bound.
            where.append(c.sample_key < threshold)
        stmt = (
            select(interactions)
            .where(*where)
            .order_by(c.sample_key, c.started_at, c.id)
            .limit(limit)
        )
        with self._translate(f"sample interactions of {feature!r}"), self._engine.connect() as conn:
            return [_stored(row) for row in conn.execute(stmt)]

    def add_feedback(self, feedback: NewFeedback) -> Feedback:
        """Store feedback on a stored trace.

        Raises:
            LookupError: No interaction of the trace is stored.
        """
        known = select(exists().where(interactions.c.trace_id == feedback.trace_id))
        with self._translate("store feedback"), self._writer.begin() as conn:
            if not conn.execute(known).scalar_one():
                raise LookupError(f"no interaction of trace {feedback.trace_id!r} is stored")
            now = self._time.now().value(conn)
            row = {
                "trace_id": feedback.trace_id,
                "span_id": feedback.span_id,
                "author": feedback.author,
                "score": feedback.score,
                "label": feedback.label,
                "comment": feedback.comment,
                "created_at": now,
            }
            insert = interaction_feedback.insert().values(row).returning(interaction_feedback.c.id)
            feedback_id: int = conn.execute(insert).scalar_one()
        return Feedback(feedback_id, feedback, now)

    def list_feedback(self, trace_id: str) -> list[Feedback]:
        """A trace's feedback in id order."""
        c = interaction_feedback.c
        stmt = select(interaction_feedback).where(c.trace_id == trace_id).order_by(c.id)
        with self._translate(f"read feedback of {trace_id!r}"), self._engine.connect() as conn:
            return [_feedback(row) for row in conn.execute(stmt)]

    def feedback_since(self, after_id: int | None = None, limit: int = 100) -> list[Feedback]:
        """All feedback in id order after ``after_id``."""
        check_limit(limit)
        c = interaction_feedback.c
        stmt = select(interaction_feedback).order_by(c.id).limit(limit)
        if after_id is not None:
            stmt = stmt.where(c.id > after_id)
        with self._translate("read feedback"), self._engine.connect() as conn:
            return [_feedback(row) for row in conn.execute(stmt)]

    def interaction_features(self) -> dict[str, int]:
        """Rows per feature (an index-only count on either backend)."""
        c = interactions.c
        stmt = select(c.feature, func.count()).group_by(c.feature).order_by(c.feature)
        with self._translate("count interactions"), self._engine.connect() as conn:
            return {feature: count for feature, count in conn.execute(stmt)}

    def delete_interactions_before(self, feature: str, cutoff: datetime, batch: int) -> int:
        """Delete up to ``batch`` of the feature's interactions started before ``cutoff``.

        Rows started exactly at the cutoff stay. Served by the
        (feature, started_at) index.
        """
        check_limit(batch)
        require_aware(cutoff, "cutoff")
        c = interactions.c
        doomed = (
            select(c.id, c.trace_id)
            .where(c.feature == feature, c.started_at < cutoff)
            .order_by(c.started_at, c.id)
            .limit(batch)
        )
        action = f"delete old interactions of {feature!r}"
        with self._translate(action), self._writer.begin() as conn:
            return _delete(conn, list(conn.execute(doomed)))

    def delete_interactions_over(self, feature: str, keep: int, batch: int) -> int:
        """Delete up to ``batch`` of the feature's lowest ids beyond its newest ``keep`` rows.

        "Oldest" is by id, the order rows were stored in: the (feature, id)
        index finds the oldest row kept (the ``keep``-th newest), and the
        rows below it go, lowest first.
        """
        check_limit(batch)
        if keep < 0:
            raise ValueError(f"keep must be >= 0, got {keep}")
        c = interactions.c
        action = f"cap the interactions of {feature!r}"
        with self._translate(action), self._writer.begin() as conn:
            where = [c.feature == feature]
            if keep > 0:
                oldest_kept = conn.execute(
                    select(c.id)
                    .where(c.feature == feature)
                    .order_by(c.id.desc())
                    .offset(keep - 1)
                    .limit(1)
                ).scalar_one_or_none()
                if oldest_kept is None:
                    return 0  # no more rows than the cap
                where.append(c.id < oldest_kept)
            doomed = select(c.id, c.trace_id).where(*where).order_by(c.id).limit(batch)
            return _delete(conn, list(conn.execute(doomed)))


def _delete(conn: Connection, doomed: Sequence[Row[Any]]) -> int:
    """Delete rows (id, trace_id), then the feedback of those traces left with no interaction."""
    if not doomed:
        return 0
    ids = [row.id for row in doomed]
    traces = sorted({row.trace_id for row in doomed})
    conn.execute(delete(interactions).where(interactions.c.id.in_(ids)))
    fb = interaction_feedback.c
    orphaned = ~exists().where(interactions.c.trace_id == fb.trace_id)
    conn.execute(delete(interaction_feedback).where(fb.trace_id.in_(traces), orphaned))
    return len(ids)


_RECORD_COLUMNS = [c.name for c in interactions.columns if c.name not in ("id", "ingested_at")]
_COLUMNS = ", ".join(_RECORD_COLUMNS)


def _recordset_insert(ingested_at: str) -> TextClause:
    # Only the table's own column names are interpolated; the rows are one bound parameter.
    return text(
        f"INSERT INTO interactions ({_COLUMNS}, ingested_at)"  # noqa: S608
        f" SELECT {_COLUMNS}, {ingested_at}"
        " FROM json_populate_recordset(NULL::interactions, CAST(:rows AS json))"
        " ON CONFLICT (trace_id, span_id) DO NOTHING"
    )


_INSERT_RECORDSET_NOW = _recordset_insert("now()")
"""Postgres: a whole batch as one JSON array of rows, typed by the table's own row type."""

_INSERT_RECORDSET_AT = _recordset_insert("CAST(:ingested_at AS timestamptz)")
"""The same with an injected clock's reading as ``ingested_at``."""


def _recordset_json(items: Sequence[Interaction]) -> str:
    """The batch as the JSON array ``json_populate_recordset`` reads: one object a row,
    times as ISO 8601 text with their offset, built straight from the interactions."""
    keys: dict[str, int] = {}
    rows = []
    for item in items:
        key = keys.get(item.trace_id)
        if key is None:
            key = keys[item.trace_id] = sample_key(item.trace_id)
        row = _values(item, key)
        row["started_at"] = _iso(item.started_at)
        row["ended_at"] = None if item.ended_at is None else _iso(item.ended_at)
        rows.append(row)
    return json.dumps(rows)


def _values(item: Interaction, key: int) -> dict[str, Any]:
    """The row's columns but its times, whose form each insert path chooses."""
    return {
        "trace_id": item.trace_id,
        "span_id": item.span_id,
        "parent_span_id": item.parent_span_id,
        "feature": item.feature,
        "name": item.name,
        "operation": item.operation,
        "model": item.model,
        "input": item.input,
        "output": item.output,
        "steps": [step.model_dump(mode="json", exclude_none=True) for step in item.steps],
        "attributes": item.metadata,
        "input_tokens": item.input_tokens,
        "output_tokens": item.output_tokens,
        "error": item.error,
        "sample_key": key,
    }


def _iso(when: datetime) -> str:
    return (when if when.tzinfo is UTC else when.astimezone(UTC)).isoformat()


def _require_times_aware(item: Interaction) -> None:
    """Refuse a naive start or end: which instant it means is a guess (see ``UTCDateTime``)."""
    require_aware(item.started_at, "started_at")
    require_aware(item.ended_at, "ended_at")


def _interaction_row(item: Interaction, now: datetime) -> dict[str, Any]:
    return {
        **_values(item, sample_key(item.trace_id)),
        "started_at": item.started_at,
        "ended_at": item.ended_at,
        "ingested_at": now,
    }


def _stored(row: Row[Any]) -> StoredInteraction:
    interaction = Interaction(
        trace_id=row.trace_id,
        span_id=row.span_id,
        feature=row.feature,
        input=row.input,
        output=row.output,
        started_at=row.started_at,
        ended_at=row.ended_at,
        parent_span_id=row.parent_span_id,
        name=row.name,
        operation=row.operation,
        model=row.model,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        steps=tuple(Step.model_validate(step) for step in row.steps or ()),
        metadata=dict(row.attributes or {}),
        error=row.error,
    )
    return StoredInteraction(row.id, interaction, row.ingested_at)


def _feedback(row: Row[Any]) -> Feedback:
    feedback = NewFeedback(
        trace_id=row.trace_id,
        author=row.author,
        score=row.score,
        label=row.label,
        comment=row.comment,
        span_id=row.span_id,
    )
    return Feedback(row.id, feedback, row.created_at)
