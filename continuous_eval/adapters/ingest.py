"""Ingestion: map spans, store the interactions once each, and count what happened.

The HTTP routes (OTLP and plain JSON) and the CLI's import all end here, so
the rules are the same whichever way traffic arrives (an adapter, not the
service: it is glue between the store and the metrics, with no rule of its
own beyond counting): a span repeated within
a batch or already stored counts as a duplicate (accepted, written once), a
GenAI span that cannot be stored is rejected by reason, anything else is
skipped.

Interactions are stored one feature at a time, so ``ingested`` counts new
rows per feature exactly (the store reports only how many of a batch were
new). A batch is nearly always one feature: one service's exporter sends it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from continuous_eval.adapters.ingest_metrics import IngestMetrics
from continuous_eval.core.genai_spans import Span, map_spans
from continuous_eval.core.interactions import IngestOutcome, Interaction
from continuous_eval.ports.interactions import InteractionStore


class Ingestor:
    """Stores interactions from spans or from plain records (blocking: call it in a thread).

    Args:
        store: Where interactions go.
        feature_attributes: The span (then resource) attributes that name a
            span's feature (``settings.trace_feature_attributes``).
        events: The metrics; None counts nothing (the CLI's import).
    """

    def __init__(
        self,
        store: InteractionStore,
        feature_attributes: Sequence[str],
        events: IngestMetrics | None = None,
    ) -> None:
        self._store = store
        self._features = tuple(feature_attributes)
        self._events = events

    def ingest_spans(self, spans: Iterable[Span]) -> IngestOutcome:
        """Map and store a batch of decoded spans (``POST /v1/traces``)."""
        mapped = map_spans(spans, self._features)
        if self._events is not None:
            if mapped.skipped:
                self._events.spans_skipped(mapped.skipped)
            for reason, count in mapped.rejected.items():
                self._events.interactions_rejected(reason, count)
        stored, duplicates = self._store_all(mapped.interactions)
        return IngestOutcome(
            stored=stored,
            duplicates=duplicates,
            skipped=mapped.skipped,
            rejected=dict(mapped.rejected),
            messages=tuple(mapped.messages),
        )

    def ingest(self, interactions: Sequence[Interaction]) -> IngestOutcome:
        """Store interactions already validated (``POST /api/traces``, ``traces import``)."""
        stored, duplicates = self._store_all(interactions)
        return IngestOutcome(stored=stored, duplicates=duplicates)

    def _store_all(self, interactions: Sequence[Interaction]) -> tuple[int, int]:
        """Store by feature; return (new, duplicates), repeats within the batch included."""
        seen: set[tuple[str, str]] = set()
        by_feature: dict[str, list[Interaction]] = {}
        for item in interactions:
            key = (item.trace_id, item.span_id)
            if key not in seen:
                seen.add(key)
                by_feature.setdefault(item.feature, []).append(item)
        stored = 0
        for feature, items in by_feature.items():
            new = self._store.add_interactions(items)
            stored += new
            if self._events is not None and new:
                self._events.interactions_ingested(feature, new)
        return stored, len(interactions) - stored
