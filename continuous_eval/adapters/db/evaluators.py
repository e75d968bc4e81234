"""``SqlEvaluatorStore``: the ``EvaluatorStore`` port on SQLAlchemy Core, SQLite and Postgres.

Only the queries of ``learned_evaluators`` belong here, and the mapping of
its JSON columns to ``core.evaluators`` records at the bottom. The next
version of a name is ``max(version) + 1`` read and inserted in one
transaction; two generations finishing together may read the same max, and
the unique (name, version) constraint lets only one insert win: the other
retries with a fresh read, a few times, and only then fails.
"""

from __future__ import annotations

from typing import Any

from pydantic import JsonValue
from sqlalchemy import Row, func, select, update
from sqlalchemy.exc import IntegrityError

from continuous_eval.adapters.db.base import SqlStoreBase
from continuous_eval.adapters.db.tables import learned_evaluators
from continuous_eval.core.evaluators import (
    Contradiction,
    EvaluatorMetrics,
    LearnedEvaluator,
    NewEvaluator,
    promotion_problem,
)
from continuous_eval.errors import StoreError

VERSION_ATTEMPTS = 20
"""Inserts tried when concurrent generations keep taking the next version first."""


class SqlEvaluatorStore(SqlStoreBase):
    """Versions of learned evaluators in SQLite or Postgres.

    Thread-safe: every method takes its own pooled connection. Errors leave
    as ``StoreError`` naming the operation.

    Args:
        engine: From ``engine.make_engine``, on a migrated database.
        clock: Source of ``created_at`` and ``promoted_at``; None means the
            database's clock (see ``base.StoreTime``).
    """

    def add_evaluator(self, new: NewEvaluator) -> LearnedEvaluator:
        """Store the next version of ``new.name`` (1 for a new name), not promoted."""
        c = learned_evaluators.c
        latest = select(func.max(c.version)).where(c.name == new.name)
        for _ in range(VERSION_ATTEMPTS):
            try:
                with self._translate("store an evaluator version"), self._writer.begin() as conn:
                    version = (conn.execute(latest).scalar_one_or_none() or 0) + 1
                    now = self._time.now().value(conn)
                    conn.execute(learned_evaluators.insert().values(_row(new, version, now)))
            except StoreError as exc:
                if not isinstance(exc.__cause__, IntegrityError):
                    raise
                continue  # another generation took this version: read the max again
            return LearnedEvaluator(version=version, evaluator=new, created_at=now)
        raise StoreError(
            f"could not store a version of evaluator {new.name!r}: "
            f"{VERSION_ATTEMPTS} concurrent generations took the next version first"
        )

    def evaluator(self, name: str, version: int) -> LearnedEvaluator | None:
        """One version, if stored."""
        c = learned_evaluators.c
        stmt = select(learned_evaluators).where(c.name == name, c.version == version)
        with self._translate(f"read evaluator {name}@{version}"), self._engine.connect() as conn:
            row = conn.execute(stmt).one_or_none()
        return None if row is None else _evaluator(row)

    def list_evaluators(self, name: str | None = None) -> list[LearnedEvaluator]:
        """Every version (of one name), by name then version."""
        c = learned_evaluators.c
        stmt = select(learned_evaluators).order_by(c.name, c.version)
        if name is not None:
            stmt = stmt.where(c.name == name)
        with self._translate("list evaluators"), self._engine.connect() as conn:
            return [_evaluator(row) for row in conn.execute(stmt)]

    def promote(self, name: str, version: int, floor: float) -> LearnedEvaluator:
        """Mark a version promoted (once: a second promotion keeps the first time).

        Raises:
            LookupError: no such version.
            ValueError: its held-out accuracy is under ``floor`` (the core's reason).
        """
        c = learned_evaluators.c
        where = (c.name == name, c.version == version)
        with self._translate(f"promote evaluator {name}@{version}"), self._writer.begin() as conn:
            row = conn.execute(select(learned_evaluators).where(*where)).one_or_none()
            if row is None:
                raise LookupError(f"no evaluator {name}@{version}")
            found = _evaluator(row)
            problem = promotion_problem(found.evaluator.metrics, floor)
            if problem is not None:
                raise ValueError(f"{name}@{version} cannot be promoted: {problem}")
            if found.promoted_at is not None:
                return found
            now = self._time.now().value(conn)
            conn.execute(update(learned_evaluators).where(*where).values(promoted_at=now))
        return LearnedEvaluator(
            version=found.version,
            evaluator=found.evaluator,
            created_at=found.created_at,
            promoted_at=now,
        )


def metrics_json(metrics: EvaluatorMetrics) -> dict[str, JsonValue]:
    """The ``metrics`` column (and the API's shape) of ``EvaluatorMetrics``."""
    return {
        "accuracy": metrics.accuracy,
        "precision": metrics.precision,
        "recall": metrics.recall,
        "train_cases": metrics.train_cases,
        "test_cases": metrics.test_cases,
        "errors": metrics.errors,
        "contradictions": [
            {"case_id": c.case_id, "label": c.label, "value": c.value}
            for c in metrics.contradictions
        ],
    }


def metrics_from_json(data: Any) -> EvaluatorMetrics:
    """Read the ``metrics`` column back."""
    return EvaluatorMetrics(
        accuracy=float(data["accuracy"]),
        precision=None if data["precision"] is None else float(data["precision"]),
        recall=None if data["recall"] is None else float(data["recall"]),
        train_cases=int(data["train_cases"]),
        test_cases=int(data["test_cases"]),
        errors=int(data.get("errors", 0)),
        contradictions=tuple(
            Contradiction(str(c["case_id"]), float(c["label"]), c["value"])
            for c in data.get("contradictions", [])
        ),
    )


def _row(new: NewEvaluator, version: int, now: Any) -> dict[str, Any]:
    return {
        "name": new.name,
        "version": version,
        "eval_set": new.eval_set,
        "code": new.code,
        "model": new.model,
        "prompt": new.prompt,
        "metrics": metrics_json(new.metrics),
        "details": dict(new.details),
        "job_id": new.job_id,
        "created_at": now,
        "promoted_at": None,
    }


def _evaluator(row: Row[Any]) -> LearnedEvaluator:
    return LearnedEvaluator(
        version=row.version,
        evaluator=NewEvaluator(
            name=row.name,
            eval_set=row.eval_set,
            code=row.code,
            model=row.model,
            prompt=row.prompt,
            metrics=metrics_from_json(row.metrics),
            job_id=row.job_id,
            details=dict(row.details or {}),
        ),
        created_at=row.created_at,
        promoted_at=row.promoted_at,
    )
