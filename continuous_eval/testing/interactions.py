"""``InMemoryInteractionStore``: the ``InteractionStore`` port in lists and dictionaries.

Only the fake of the interaction store belongs here. It keeps the SQL
store's semantics (``adapters.db.interactions``): the first write of a span
wins, ids count up from 1, ``ingested_at`` comes from the injected clock, a
sample is the lowest keys of the window, and deleting a trace's last
interaction deletes its feedback. ``tests/integration/test_interaction_store_contract.py``
runs one suite against both.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from continuous_eval.core.interactions import (
    Feedback,
    Interaction,
    NewFeedback,
    StoredInteraction,
    sample_threshold,
)
from continuous_eval.core.lifecycle import check_limit, require_aware
from continuous_eval.ports import Clock
from continuous_eval.testing.clock import FakeClock


class InMemoryInteractionStore:
    """Recorded traffic in memory, thread-safe through one lock; see ``SqlInteractionStore``.

    The attributes are public so tests can assert on (or arrange) the stored
    state directly.

    Args:
        clock: Source of ``ingested_at`` and of feedback's ``created_at``.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or FakeClock()
        self.interactions: dict[int, StoredInteraction] = {}
        """By id, in insertion (id) order."""
        self.feedback: dict[int, Feedback] = {}
        """By id, in insertion (id) order."""
        self._spans: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._feedback_ids = itertools.count(1)

    def add_interactions(self, items: Sequence[Interaction]) -> int:
        """Store the spans not stored yet; the first write of a span wins."""
        with self._lock:
            now = self.clock.now()
            added = 0
            for item in items:
                key = (item.trace_id, item.span_id)
                if key in self._spans:
                    continue
                stored = StoredInteraction(next(self._ids), _as_read_back(item), now)
                self.interactions[stored.id] = stored
                self._spans[key] = stored.id
                added += 1
            return added

    def list_interactions(
        self,
        feature: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_id: int | None = None,
        limit: int = 100,
    ) -> list[StoredInteraction]:
        """Interactions in id order after ``after_id``, filtered; see the port."""
        check_limit(limit)
        require_aware(since, "since")
        require_aware(until, "until")
        found: list[StoredInteraction] = []
        with self._lock:
            for stored in self.interactions.values():
                item = stored.interaction
                if (
                    (after_id is None or stored.id > after_id)
                    and (feature is None or item.feature == feature)
                    and (since is None or item.started_at >= since)
                    and (until is None or item.started_at < until)
                ):
                    found.append(stored)
                    if len(found) == limit:
                        break
        return found

    def trace(self, trace_id: str) -> list[StoredInteraction]:
        """Every interaction of the trace, by start time (then id)."""
        with self._lock:
            found = [s for s in self.interactions.values() if s.interaction.trace_id == trace_id]
        return sorted(found, key=lambda s: (s.interaction.started_at, s.id))

    def sample(
        self, feature: str, start: datetime, end: datetime, rate: float, limit: int
    ) -> list[StoredInteraction]:
        """The window's interactions with keys below the rate's threshold, lowest keys first.

        Ties (the spans of one trace share a key) go by start time, then id,
        as the SQL store orders them.
        """
        threshold = sample_threshold(rate)
        check_limit(limit)
        require_aware(start, "start")
        require_aware(end, "end")
        with self._lock:
            found = [
                s
                for s in self.interactions.values()
                if s.interaction.feature == feature
                and s.interaction.sample_key < threshold
                and start <= s.interaction.started_at < end
            ]
        found.sort(key=lambda s: (s.interaction.sample_key, s.interaction.started_at, s.id))
        return found[:limit]

    def add_feedback(self, feedback: NewFeedback) -> Feedback:
        """Store feedback; ``LookupError`` when no interaction of the trace is stored."""
        with self._lock:
            if not any(s.interaction.trace_id == feedback.trace_id for s in self._stored()):
                raise LookupError(f"no interaction of trace {feedback.trace_id!r} is stored")
            stored = Feedback(next(self._feedback_ids), feedback, self.clock.now())
            self.feedback[stored.id] = stored
            return stored

    def list_feedback(self, trace_id: str) -> list[Feedback]:
        """The trace's feedback in id order."""
        with self._lock:
            return [f for f in self.feedback.values() if f.feedback.trace_id == trace_id]

    def feedback_since(self, after_id: int | None = None, limit: int = 100) -> list[Feedback]:
        """All feedback in id order after ``after_id``."""
        check_limit(limit)
        with self._lock:
            found = [f for f in self.feedback.values() if after_id is None or f.id > after_id]
        return found[:limit]

    def interaction_features(self) -> dict[str, int]:
        """Rows per feature."""
        counts: dict[str, int] = {}
        with self._lock:
            for stored in self.interactions.values():
                feature = stored.interaction.feature
                counts[feature] = counts.get(feature, 0) + 1
        return counts

    def delete_interactions_before(self, feature: str, cutoff: datetime, batch: int) -> int:
        """Delete up to ``batch`` of the feature's rows started before ``cutoff``, oldest first."""
        check_limit(batch)
        require_aware(cutoff, "cutoff")
        with self._lock:
            old = [
                s
                for s in self._stored()
                if s.interaction.feature == feature and s.interaction.started_at < cutoff
            ]
            old.sort(key=lambda s: (s.interaction.started_at, s.id))
            return self._delete([s.id for s in old[:batch]])

    def delete_interactions_over(self, feature: str, keep: int, batch: int) -> int:
        """Delete up to ``batch`` of the feature's lowest ids beyond its newest ``keep`` rows."""
        check_limit(batch)
        if keep < 0:
            raise ValueError(f"keep must be >= 0, got {keep}")
        with self._lock:
            ids = [s.id for s in self._stored() if s.interaction.feature == feature]
            doomed = ids[: max(0, len(ids) - keep)][:batch]
            return self._delete(doomed)

    def close(self) -> None:
        """Nothing to release."""

    def _stored(self) -> list[StoredInteraction]:
        return list(self.interactions.values())

    def _delete(self, ids: Sequence[int]) -> int:
        """Delete rows by id, then the feedback of traces left with no interaction."""
        traces = set()
        for row_id in ids:
            stored = self.interactions.pop(row_id)
            item = stored.interaction
            del self._spans[(item.trace_id, item.span_id)]
            traces.add(item.trace_id)
        remaining = {s.interaction.trace_id for s in self.interactions.values()}
        for feedback_id, found in list(self.feedback.items()):
            trace_id = found.feedback.trace_id
            if trace_id in traces and trace_id not in remaining:
                del self.feedback[feedback_id]
        return len(ids)


def _as_read_back(item: Interaction) -> Interaction:
    """The interaction as a database hands it back: its times in UTC."""
    ended = None if item.ended_at is None else item.ended_at.astimezone(UTC)
    return replace(item, started_at=item.started_at.astimezone(UTC), ended_at=ended)
