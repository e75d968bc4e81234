"""``MemoryResultSink``: the ``ResultSink`` port in dictionaries.

Only the writes of results and aggregates, and the writer's reads of them,
belong here; ordering and upsert semantics follow ``SqlResultSink``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace

from continuous_eval.core.models import (
    CaseResult,
    Fence,
    ProgressDelta,
    ResultRecord,
    ResultStatus,
    ScoreAggregate,
)
from continuous_eval.testing.base import MemoryStoreBase


class MemoryResultSink(MemoryStoreBase):
    """Store a run's results and aggregates; read its scores back; see ``SqlRunStore``."""

    def save_results(
        self,
        run_id: str,
        results: Sequence[CaseResult],
        delta: ProgressDelta,
        *,
        fence: Fence | None = None,
    ) -> None:
        """Upsert results and add the counts; see ``SqlRunStore.save_results``."""
        with self._lock:
            run = self._writable(run_id, fence)
            now = self.clock.now()
            stored = self.results[run_id]
            for result in results:
                key = (result.feature, result.scorer, result.case_id)
                # An upsert keeps the row, and so its id (a retried case is not new).
                kept = stored.get(key)
                stored[key] = ResultRecord(
                    id=kept.id if kept is not None else next(self._result_ids),
                    run_id=run_id,
                    feature=result.feature,
                    case_id=result.case_id,
                    scorer=result.scorer,
                    status=ResultStatus(result.status),
                    score=result.score,
                    passed=result.passed,
                    output_excerpt=result.output_excerpt,
                    error=result.error,
                    rationale=result.rationale,
                    latency_ms=result.latency_ms,
                    usage=result.usage,
                    attempt=result.attempt,
                    created_at=now,
                    input_excerpt=result.input_excerpt,
                    expected_excerpt=result.expected_excerpt,
                    trace_id=result.trace_id,
                )
            self.runs[run_id] = replace(
                run,
                cases_done=run.cases_done + delta.cases_done,
                scored=run.scored + delta.scored,
                errored=run.errored + delta.errored,
                judge_usage=run.judge_usage + delta.judge_usage,
                target_usage=run.target_usage + delta.target_usage,
            )

    def iter_scores(self, run_id: str) -> Iterator[tuple[str, str, ResultStatus, float | None]]:
        """Yield (feature, scorer, status, score) ordered by feature, scorer, case id."""
        with self._lock:
            self._run(run_id)
            snapshot = sorted(self.results[run_id].items())
        for (feature, scorer, _case_id), result in snapshot:
            yield feature, scorer, result.status, result.score

    def case_result_counts(self, run_id: str) -> dict[tuple[str, str], int]:
        """Return stored results per (feature, case_id); see ``SqlRunStore``."""
        with self._lock:
            self._run(run_id)
            return dict(Counter((f, case_id) for f, _scorer, case_id in self.results[run_id]))

    def replace_aggregates(self, run_id: str, aggregates: Sequence[ScoreAggregate]) -> None:
        """Replace a run's aggregates, whatever its status."""
        with self._lock:
            self._run(run_id)
            self.aggregates[run_id] = {(a.feature, a.scorer): a for a in aggregates}
