"""``SqlEvalSetStore``: the ``EvalSetStore`` port on SQLAlchemy Core, SQLite and Postgres.

Only the queries of eval sets belong here (``eval_sets``, ``eval_cases``,
``eval_labels``). Labels are append-only: a person who changes their mind
adds a label, and readers take each author's latest at or before a time
(``core.labels.labels_as_of``), so nothing here ever updates or deletes one.

``labelled_cases`` serves calibration and learned evaluators over sets of
~10k cases: two queries whatever the size (the labels up to the time, then
the cases that have one), grouped in Python, never a query per case.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Row, select, update
from sqlalchemy.exc import IntegrityError

from continuous_eval.adapters.db.base import SqlStoreBase, upsert
from continuous_eval.adapters.db.tables import eval_cases, eval_labels, eval_sets
from continuous_eval.core.labels import (
    EvalCase,
    EvalSet,
    Label,
    LabelledCase,
    LabelScale,
    LabelSource,
    NewLabel,
    labels_as_of,
    valid_label_value,
)
from continuous_eval.core.lifecycle import require_aware
from continuous_eval.errors import EvalSetExists

CHUNK = 500
"""Rows per statement of a large write, and case ids per ``IN`` of a read."""


class SqlEvalSetStore(SqlStoreBase):
    """Eval sets, their cases and labels in SQLite or Postgres; see the port.

    Thread-safe: every method takes its own pooled connection. Errors leave
    as ``StoreError`` naming the operation.

    Args:
        engine: From ``engine.make_engine``, on a migrated database; the run
            store may share it (``close`` disposes of it).
        clock: Source of every ``created_at``; None means the database's.
    """

    def create_eval_set(
        self,
        name: str,
        scale: LabelScale,
        description: str | None = None,
        feature: str | None = None,
    ) -> EvalSet:
        """Create a set; a taken name raises ``EvalSetExists``."""
        with self._translate(f"create eval set {name!r}"):
            try:
                with self._writer.begin() as conn:
                    taken = conn.execute(select(eval_sets.c.id).where(eval_sets.c.name == name))
                    if taken.first() is not None:
                        raise EvalSetExists(f"eval set {name!r} exists already")
                    now = self._time.now().value(conn)
                    row = {
                        "name": name,
                        "scale": scale,
                        "description": description,
                        "feature": feature,
                        "created_at": now,
                    }
                    insert = eval_sets.insert().values(row).returning(eval_sets.c.id)
                    made_id: int = conn.execute(insert).scalar_one()
            except IntegrityError:
                # Two creators raced past the check: the unique name decided.
                raise EvalSetExists(f"eval set {name!r} exists already") from None
        return EvalSet(made_id, name, scale, now, description, feature)

    def eval_set(self, name: str) -> EvalSet | None:
        """The set of that name, if any."""
        stmt = select(eval_sets).where(eval_sets.c.name == name)
        with self._translate(f"read eval set {name!r}"), self._engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else _eval_set(row)

    def eval_set_by_id(self, eval_set_id: int) -> EvalSet | None:
        """The set of that id, if any."""
        stmt = select(eval_sets).where(eval_sets.c.id == eval_set_id)
        with self._translate(f"read eval set {eval_set_id}"), self._engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else _eval_set(row)

    def list_eval_sets(self) -> list[EvalSet]:
        """Every set, by name."""
        stmt = select(eval_sets).order_by(eval_sets.c.name)
        with self._translate("list eval sets"), self._engine.connect() as conn:
            return [_eval_set(row) for row in conn.execute(stmt)]

    def put_cases(self, eval_set_id: int, cases: Sequence[EvalCase]) -> int:
        """Add or replace cases by case id (the last of a repeated id wins); return how
        many were new. One transaction."""
        with self._translate("store eval cases"), self._writer.begin() as conn:
            _scale(conn, eval_set_id)
            return self._put_cases(conn, eval_set_id, cases)

    def add_labels(self, eval_set_id: int, labels: Sequence[NewLabel]) -> list[Label]:
        """Store all the labels or none (unknown case: ``LookupError``; off the scale:
        ``ValueError``)."""
        with self._translate("store labels"), self._writer.begin() as conn:
            scale = _scale(conn, eval_set_id)
            return self._add_labels(conn, eval_set_id, scale, labels, ())

    def labelled_cases(self, eval_set_id: int, as_of: datetime | None = None) -> list[LabelledCase]:
        """Cases with a label at ``as_of`` (every label when None), each author's latest then.

        Two queries: the set's labels up to ``as_of`` (from the
        (eval_set_id, case_id, created_at) index), then the cases that have one.
        """
        require_aware(as_of, "as_of")
        c = eval_labels.c
        where = [c.eval_set_id == eval_set_id]
        if as_of is not None:
            where.append(c.created_at <= as_of)
        stmt = select(eval_labels).where(*where).order_by(c.case_id, c.id)
        with self._translate("read labelled cases"), self._engine.connect() as conn:
            _scale(conn, eval_set_id)
            by_case: dict[str, list[Label]] = defaultdict(list)
            for row in conn.execute(stmt):
                by_case[row.case_id].append(_label(row))
            cases = _cases_by_id(conn, eval_set_id, sorted(by_case))
        return [
            LabelledCase(case=cases[case_id], labels=labels_as_of(labels, None))
            for case_id, labels in sorted(by_case.items())
            if case_id in cases
        ]

    def label_history(self, eval_set_id: int, case_id: str) -> list[Label]:
        """Every label of one case, oldest first."""
        c = eval_labels.c
        stmt = (
            select(eval_labels)
            .where(c.eval_set_id == eval_set_id, c.case_id == case_id)
            .order_by(c.created_at, c.id)
        )
        with self._translate(f"read labels of {case_id!r}"), self._engine.connect() as conn:
            return [_label(row) for row in conn.execute(stmt)]

    def feedback_cursor(self, eval_set_id: int) -> int | None:
        """The id of the last feedback the set was filled from."""
        stmt = select(eval_sets.c.feedback_cursor).where(eval_sets.c.id == eval_set_id)
        with self._translate("read the feedback cursor"), self._engine.connect() as conn:
            value: int | None = conn.execute(stmt).scalar_one_or_none()
        return value

    def record_fill(
        self,
        eval_set_id: int,
        cases: Sequence[EvalCase],
        labels: Sequence[NewLabel],
        *,
        after: int | None,
        cursor: int,
    ) -> bool:
        """Cases, labels and the cursor's move in one transaction, guarded by the cursor:
        the UPDATE runs first and matches no row when another replica moved it."""
        s = eval_sets.c
        still = s.feedback_cursor.is_(None) if after is None else s.feedback_cursor == after
        move = update(eval_sets).where(s.id == eval_set_id, still).values(feedback_cursor=cursor)
        with self._translate("fill an eval set from feedback"), self._writer.begin() as conn:
            scale = _scale(conn, eval_set_id)
            if conn.execute(move).rowcount != 1:
                return False
            self._put_cases(conn, eval_set_id, cases)
            self._add_labels(conn, eval_set_id, scale, labels, [c.case_id for c in cases])
            return True

    # ------------------------------------------------------------- helpers

    def _put_cases(self, conn: Connection, eval_set_id: int, cases: Sequence[EvalCase]) -> int:
        last = {case.case_id: case for case in cases}
        if not last:
            return 0
        existing = _existing(conn, eval_set_id, list(last))
        now = self._time.now().value(conn)
        rows = [_case_row(eval_set_id, case, now) for case in last.values()]
        statement = upsert(
            self._dialect, eval_cases, ("eval_set_id", "case_id"), skip=("id", "created_at")
        )
        for start in range(0, len(rows), CHUNK):
            conn.execute(statement, rows[start : start + CHUNK])
        return len(last) - len(existing)

    def _add_labels(
        self,
        conn: Connection,
        eval_set_id: int,
        scale: LabelScale,
        labels: Sequence[NewLabel],
        also_known: Sequence[str],
    ) -> list[Label]:
        """Check every label first, then insert them all: a bad one writes none."""
        if not labels:
            return []
        wanted = sorted({item.case_id for item in labels} - set(also_known))
        known = _existing(conn, eval_set_id, wanted) | set(also_known)
        for item in labels:
            if item.case_id not in known:
                raise LookupError(f"eval set has no case {item.case_id!r}")
            if not valid_label_value(scale, item.value):
                raise ValueError(f"label {item.value} is not on the {scale} scale")
        now = self._time.now().value(conn)
        rows = [
            {
                "eval_set_id": eval_set_id,
                "case_id": item.case_id,
                "author": item.author,
                "value": float(item.value),
                "comment": item.comment,
                "source": item.source,
                "created_at": now,
            }
            for item in labels
        ]
        insert = eval_labels.insert().returning(eval_labels.c.id, sort_by_parameter_order=True)
        made: list[Label] = []
        for start in range(0, len(rows), CHUNK):
            chunk = labels[start : start + CHUNK]
            ids = conn.execute(insert, rows[start : start + CHUNK]).scalars().all()
            made += [
                Label(id=i, label=item, created_at=now) for i, item in zip(ids, chunk, strict=True)
            ]
        return made


def _scale(conn: Connection, eval_set_id: int) -> LabelScale:
    """The set's scale; ``LookupError`` when there is no such set."""
    stmt = select(eval_sets.c.scale).where(eval_sets.c.id == eval_set_id)
    scale = conn.execute(stmt).scalar_one_or_none()
    if scale is None:
        raise LookupError(f"no eval set with id {eval_set_id}")
    return cast(LabelScale, scale)


def _existing(conn: Connection, eval_set_id: int, case_ids: Sequence[str]) -> set[str]:
    c = eval_cases.c
    found: set[str] = set()
    for start in range(0, len(case_ids), CHUNK):
        chunk = case_ids[start : start + CHUNK]
        stmt = select(c.case_id).where(c.eval_set_id == eval_set_id, c.case_id.in_(chunk))
        found.update(conn.execute(stmt).scalars())
    return found


def _cases_by_id(
    conn: Connection, eval_set_id: int, case_ids: Sequence[str]
) -> dict[str, EvalCase]:
    """The cases named, read in one scan of the set when they are many."""
    c = eval_cases.c
    # Only what a case holds: its two timestamps would be 2 conversions a row for nothing.
    columns = (c.case_id, c.input, c.output, c.expected, c.metadata, c.trace_id)
    stmt = select(*columns).where(c.eval_set_id == eval_set_id)
    if len(case_ids) <= CHUNK:
        stmt = stmt.where(c.case_id.in_(case_ids))
    wanted = set(case_ids)
    return {row.case_id: _case(row) for row in conn.execute(stmt) if row.case_id in wanted}


def _case_row(eval_set_id: int, case: EvalCase, now: datetime) -> dict[str, Any]:
    return {
        "eval_set_id": eval_set_id,
        "case_id": case.case_id,
        "input": case.input,
        "output": case.output,
        "expected": case.expected,
        "metadata": dict(case.metadata),
        "trace_id": case.trace_id,
        "created_at": now,
        "updated_at": now,
    }


def _eval_set(row: Row[Any]) -> EvalSet:
    return EvalSet(
        id=row.id,
        name=row.name,
        scale=cast(LabelScale, row.scale),
        created_at=row.created_at,
        description=row.description,
        feature=row.feature,
    )


def _case(row: Row[Any, Any, Any, Any, Any, Any]) -> EvalCase:
    return EvalCase(
        case_id=row.case_id,
        input=row.input,
        output=row.output,
        expected=row.expected,
        metadata=dict(row.metadata or {}),
        trace_id=row.trace_id,
    )


def _label(row: Row[Any]) -> Label:
    label = NewLabel(
        case_id=row.case_id,
        author=row.author,
        value=row.value,
        comment=row.comment,
        source=cast(LabelSource, row.source),
    )
    return Label(id=row.id, label=label, created_at=row.created_at)
