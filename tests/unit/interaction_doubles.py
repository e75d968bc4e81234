"""A minimal in-memory ``InteractionStore`` for the ingestion tests: ids, once-each, feedback.

Only what ingestion and its routes call; sampling and retention raise.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from continuous_eval.core.interactions import (
    Feedback,
    Interaction,
    NewFeedback,
    StoredInteraction,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class MemoryInteractions:
    """Interactions and feedback in lists; the first write of a (trace, span) wins."""

    def __init__(self) -> None:
        self.rows: list[StoredInteraction] = []
        self.feedback: list[Feedback] = []
        self.batches: list[int] = []

    def add_interactions(self, items: Sequence[Interaction]) -> int:
        self.batches.append(len(items))
        known = {(r.interaction.trace_id, r.interaction.span_id) for r in self.rows}
        new = 0
        for item in items:
            if (item.trace_id, item.span_id) not in known:
                known.add((item.trace_id, item.span_id))
                self.rows.append(StoredInteraction(len(self.rows) + 1, item, NOW))
                new += 1
        return new

    def list_interactions(
        self,
        feature: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_id: int | None = None,
        limit: int = 100,
    ) -> list[StoredInteraction]:
        rows = [
            r
            for r in self.rows
            if (feature is None or r.interaction.feature == feature)
            and (since is None or r.interaction.started_at >= since)
            and (until is None or r.interaction.started_at < until)
            and (after_id is None or r.id > after_id)
        ]
        return rows[:limit]

    def trace(self, trace_id: str) -> list[StoredInteraction]:
        rows = [r for r in self.rows if r.interaction.trace_id == trace_id]
        return sorted(rows, key=lambda r: r.interaction.started_at)

    def sample(
        self, feature: str, start: datetime, end: datetime, rate: float, limit: int
    ) -> list[StoredInteraction]:
        raise NotImplementedError

    def add_feedback(self, feedback: NewFeedback) -> Feedback:
        if not self.trace(feedback.trace_id):
            raise LookupError(feedback.trace_id)
        stored = Feedback(len(self.feedback) + 1, feedback, NOW)
        self.feedback.append(stored)
        return stored

    def list_feedback(self, trace_id: str) -> list[Feedback]:
        return [f for f in self.feedback if f.feedback.trace_id == trace_id]

    def feedback_since(self, after_id: int | None = None, limit: int = 100) -> list[Feedback]:
        return [f for f in self.feedback if after_id is None or f.id > after_id][:limit]

    def interaction_features(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.interaction.feature] = counts.get(row.interaction.feature, 0) + 1
        return counts

    def delete_interactions_before(self, feature: str, cutoff: datetime, batch: int) -> int:
        raise NotImplementedError

    def delete_interactions_over(self, feature: str, keep: int, batch: int) -> int:
        raise NotImplementedError
