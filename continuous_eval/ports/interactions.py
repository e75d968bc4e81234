"""The store of recorded traffic: what ingestion, online runs and retention need.

``adapters.db.interactions`` implements it on SQLite and Postgres and
``testing.interactions`` in memory; the same contract tests run on all three.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from continuous_eval.core.interactions import (
    Feedback,
    Interaction,
    NewFeedback,
    StoredInteraction,
)


class InteractionStore(Protocol):
    """Stores interactions once each, samples them, and keeps them bounded."""

    def add_interactions(self, items: Sequence[Interaction]) -> int:
        """Store the interactions not stored yet (by trace and span id); return how many were new.

        One transaction; a span already stored is left as it was (the first
        write wins), so a re-sent batch changes nothing.
        """
        ...

    def list_interactions(
        self,
        feature: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_id: int | None = None,
        limit: int = 100,
    ) -> list[StoredInteraction]:
        """Interactions in id order (oldest first) after ``after_id``, filtered by
        feature and by ``started_at`` in ``[since, until)``."""
        ...

    def trace(self, trace_id: str) -> list[StoredInteraction]:
        """Every stored interaction of one trace, by start time."""
        ...

    def sample(
        self, feature: str, start: datetime, end: datetime, rate: float, limit: int
    ) -> list[StoredInteraction]:
        """The feature's interactions started in ``[start, end)`` whose sample key is
        below ``sample_threshold(rate)``, lowest keys first, at most ``limit``."""
        ...

    def add_feedback(self, feedback: NewFeedback) -> Feedback:
        """Store feedback on a trace; raises ``LookupError`` when the trace is unknown."""
        ...

    def list_feedback(self, trace_id: str) -> list[Feedback]:
        """A trace's feedback, oldest first."""
        ...

    def feedback_since(self, after_id: int | None = None, limit: int = 100) -> list[Feedback]:
        """All feedback in id order after ``after_id`` (for learned evaluators)."""
        ...

    def interaction_features(self) -> dict[str, int]:
        """Every feature with stored interactions and how many rows it has."""
        ...

    def delete_interactions_before(self, feature: str, cutoff: datetime, batch: int) -> int:
        """Delete up to ``batch`` of the feature's interactions started before ``cutoff``
        (and their feedback); return how many were deleted."""
        ...

    def delete_interactions_over(self, feature: str, keep: int, batch: int) -> int:
        """Delete up to ``batch`` of the feature's oldest interactions beyond the newest
        ``keep`` (and their feedback); return how many were deleted."""
        ...
