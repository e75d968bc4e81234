"""``SqlAgreementStore``: the ``AgreementStore`` port on ``judge_agreement``, SQLite and Postgres.

Small by design: one upsert per run's rows and three reads. The figures are
stored as columns (for the trend and ad-hoc SQL), the confusion matrix, the
contradictions and the reasons for missing figures as JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, func, select

from continuous_eval.adapters.db.base import SqlStoreBase, upsert
from continuous_eval.adapters.db.tables import judge_agreement
from continuous_eval.core.agreement import (
    Agreement,
    RunAgreement,
    confusion_from_json,
    contradictions_from_json,
)
from continuous_eval.core.labels import LabelScale
from continuous_eval.core.lifecycle import check_limit

_T = judge_agreement


class SqlAgreementStore(SqlStoreBase):
    """Agreement rows in SQLite or Postgres; thread-safe (a pooled connection per call).

    Args:
        engine: From ``engine.make_engine``, on a migrated database; the run
            store may share it.
        clock: Source of ``created_at``; None means the database's clock.
    """

    def put_agreements(self, rows: Sequence[RunAgreement]) -> None:
        """Insert or replace the rows by (run, feature, scorer), in one transaction."""
        if not rows:
            return
        statement = upsert(self._dialect, _T, ("run_id", "feature", "scorer"), skip=("id",))
        with self._translate("store judge agreement"), self._writer.begin() as conn:
            now = self._time.now().value(conn)
            conn.execute(statement, [_row(r, now) for r in rows])

    def run_agreements(self, run_id: str) -> list[RunAgreement]:
        """A run's rows, by feature then scorer."""
        query = select(_T).where(_T.c.run_id == run_id).order_by(_T.c.feature, _T.c.scorer)
        with self._translate(f"read the agreement of run {run_id!r}"), self._engine.connect() as c:
            return [_record(r) for r in c.execute(query)]

    def history(self, suite: str, feature: str, scorer: str, limit: int = 20) -> list[RunAgreement]:
        """The newest ``limit`` rows of one judge of one feature, newest first."""
        check_limit(limit)
        query = (
            select(_T)
            .where(_T.c.suite == suite, _T.c.feature == feature, _T.c.scorer == scorer)
            .order_by(_T.c.created_at.desc(), _T.c.id.desc())
            .limit(limit)
        )
        with self._translate("read the agreement trend"), self._engine.connect() as c:
            return [_record(r) for r in c.execute(query)]

    def latest(self, suite: str, feature: str | None = None) -> list[RunAgreement]:
        """The newest row of every (feature, scorer) of the suite (or of one feature)."""
        ranked = select(
            _T.c.id,
            func.row_number()
            .over(
                partition_by=(_T.c.feature, _T.c.scorer),
                order_by=(_T.c.created_at.desc(), _T.c.id.desc()),
            )
            .label("rank"),
        ).where(_T.c.suite == suite)
        if feature is not None:
            ranked = ranked.where(_T.c.feature == feature)
        newest = ranked.subquery()
        query = (
            select(_T)
            .join(newest, newest.c.id == _T.c.id)
            .where(newest.c.rank == 1)
            .order_by(_T.c.feature, _T.c.scorer)
        )
        with self._translate("read the latest agreement"), self._engine.connect() as c:
            return [_record(r) for r in c.execute(query)]


def _row(r: RunAgreement, now: Any) -> dict[str, Any]:
    a = r.agreement
    return {
        "run_id": r.run_id,
        "suite": r.suite,
        "feature": r.feature,
        "scorer": r.scorer,
        "eval_set": r.eval_set,
        "scale": a.scale,
        "n": a.n,
        "split": a.split,
        "exact": a.exact,
        "kappa": a.kappa,
        "spearman": a.spearman,
        "confusion": a.confusion.as_json(),
        "contradictions": [c.as_json() for c in a.contradictions],
        "reasons": dict(a.reasons),
        "created_at": now,
    }


def _record(row: Row[Any]) -> RunAgreement:
    scale: LabelScale = "pass_fail" if row.scale == "pass_fail" else "1-5"
    agreement = Agreement(
        scale=scale,
        n=row.n,
        split=row.split,
        exact=row.exact,
        kappa=row.kappa,
        spearman=row.spearman,
        confusion=confusion_from_json(row.confusion),
        contradictions=contradictions_from_json(row.contradictions),
        reasons={str(k): str(v) for k, v in dict(row.reasons or {}).items()},
    )
    return RunAgreement(
        run_id=row.run_id,
        suite=row.suite,
        feature=row.feature,
        scorer=row.scorer,
        eval_set=row.eval_set,
        agreement=agreement,
        created_at=row.created_at,
    )
