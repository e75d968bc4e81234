"""``SqlResultSink``: the ``ResultSink`` port, a run's results and aggregates in SQL.

Only the writes of results and aggregates, and the reads the writer makes of
them (the scores streamed back to aggregate, the per-case counts a takeover
resumes from), belong here. ``save_results`` is on the runner's hot path: one
executemany upsert plus one guarded counter update, in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cached_property

from sqlalchemy import delete, func, select, update
from sqlalchemy.sql.dml import Insert

from continuous_eval.adapters.db.base import SqlStoreBase, refuse, require_run, upsert
from continuous_eval.adapters.db.rows import result_key, result_row, score_rows
from continuous_eval.adapters.db.tables import eval_results, eval_run_scores, eval_runs
from continuous_eval.core.models import (
    CaseResult,
    Fence,
    ProgressDelta,
    ResultStatus,
    ScoreAggregate,
)

STREAM_BATCH = 1000
"""Rows fetched per round trip when streaming a run's results."""


class SqlResultSink(SqlStoreBase):
    """Store a run's results and aggregates; stream its scores back."""

    @cached_property
    def _upsert_results(self) -> Insert:
        # Built once per store: the compiled form is cached per statement object.
        return upsert(
            self._dialect, eval_results, ("run_id", "feature", "scorer", "case_id"), skip=("id",)
        )

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
        unique = list({result_key(r): r for r in results}.values())
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
                refuse(conn, run_id, fence)
            if unique:
                now = self._time.now().value(conn)
                conn.execute(self._upsert_results, [result_row(run_id, r, now) for r in unique])

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
            require_run(conn, run_id)
            for feature, scorer, status, score in conn.execute(stmt):
                yield feature, scorer, ResultStatus(status), score

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
            require_run(conn, run_id)
            return {(feature, case_id): count for feature, case_id, count in conn.execute(stmt)}

    def replace_aggregates(self, run_id: str, aggregates: Sequence[ScoreAggregate]) -> None:
        """Replace a run's aggregates with ``aggregates``, whatever its status.

        Raises:
            RunNotFound: No such run.
        """
        rows = score_rows(run_id, aggregates)
        with self._translate(f"store aggregates of run {run_id!r}"), self._writer.begin() as conn:
            require_run(conn, run_id)
            conn.execute(delete(eval_run_scores).where(eval_run_scores.c.run_id == run_id))
            if rows:
                conn.execute(eval_run_scores.insert(), rows)
