"""``SqlCaseSteps``: the ``CaseStepStore`` seam, the steps agent targets streamed, in SQL.

Only the ``case_steps`` table's writes and reads belong here. A step is
written as soon as it arrives (one small transaction), so the run's event
stream, which polls the database from any replica, can show it live.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

from sqlalchemy import delete, func, select
from sqlalchemy.sql.dml import Insert

from continuous_eval.adapters.db.base import SqlStoreBase, require_run, upsert
from continuous_eval.adapters.db.tables import case_steps
from continuous_eval.core.case_steps import StoredStep
from continuous_eval.core.trajectory import Step


class SqlCaseSteps(SqlStoreBase):
    """Store each case's steps as they arrive; read them back by case or by id."""

    @cached_property
    def _upsert_steps(self) -> Insert:
        return upsert(self._dialect, case_steps, ("run_id", "feature", "case_id", "seq"), ("id",))

    def save_case_steps(
        self, run_id: str, feature: str, case_id: str, steps: Sequence[Step], *, first: int = 0
    ) -> None:
        """Store steps at positions ``first``...; ``first == 0`` replaces the case's steps.

        Raises:
            RunNotFound: No such run; nothing was written.
        """
        c = case_steps.c
        with self._translate(f"save steps of run {run_id!r}"), self._writer.begin() as conn:
            require_run(conn, run_id)
            if first == 0:
                conn.execute(
                    delete(case_steps).where(
                        c.run_id == run_id, c.feature == feature, c.case_id == case_id
                    )
                )
            if steps:
                now = self._time.now().value(conn)
                rows = [
                    {
                        "run_id": run_id,
                        "feature": feature,
                        "case_id": case_id,
                        "seq": first + offset,
                        "step": step.model_dump(mode="json", exclude_none=True),
                        "created_at": now,
                    }
                    for offset, step in enumerate(steps)
                ]
                conn.execute(self._upsert_steps, rows)

    def case_steps(self, run_id: str, feature: str, case_id: str) -> list[Step]:
        """A case's steps in order.

        Raises:
            RunNotFound: No such run.
        """
        c = case_steps.c
        stmt = (
            select(c.step)
            .where(c.run_id == run_id, c.feature == feature, c.case_id == case_id)
            .order_by(c.seq)
        )
        with self._translate(f"read steps of run {run_id!r}"), self._engine.connect() as conn:
            require_run(conn, run_id)
            return [Step.model_validate(row.step) for row in conn.execute(stmt)]

    def steps_after(self, run_id: str, *, after_id: int, limit: int) -> list[StoredStep]:
        """Up to ``limit`` of the run's steps with id > ``after_id``, by id."""
        c = case_steps.c
        stmt = (
            select(c.id, c.feature, c.case_id, c.seq, c.step)
            .where(c.run_id == run_id, c.id > after_id)
            .order_by(c.id)
            .limit(limit)
        )
        with self._translate(f"read steps of run {run_id!r}"), self._engine.connect() as conn:
            return [
                StoredStep(row.id, row.feature, row.case_id, row.seq, Step.model_validate(row.step))
                for row in conn.execute(stmt)
            ]

    def newest_step_id(self, run_id: str) -> int:
        """The id of the run's newest step, 0 when it has none."""
        stmt = select(func.max(case_steps.c.id)).where(case_steps.c.run_id == run_id)
        with self._translate(f"read steps of run {run_id!r}"), self._engine.connect() as conn:
            return int(conn.execute(stmt).scalar() or 0)
