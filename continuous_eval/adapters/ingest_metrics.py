"""Prometheus counters of ingestion (implements ``ports.ingest.IngestEvents``).

Per replica, from zero at start, like ``adapters.metrics``; the stored
counts per feature come from the database, not from here.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

REJECTION_REASONS = (
    "bad_trace_id",
    "bad_span_id",
    "bad_time",
    "bad_feature",
    "no_feature",
)
"""The reasons ``core.genai_spans`` refuses a span for; each starts at 0."""

MAX_FEATURE_LABELS = 200
"""Distinct ``feature`` label values; later features count as ``_other``. Features are
named by whoever sends traces, and each label value is a time series for ever."""


class IngestMetrics:
    """``continuous_eval_interactions_ingested_total{feature}``, ``..._rejected_total{reason}``
    and ``continuous_eval_spans_skipped_total``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.ingested = Counter(
            "continuous_eval_interactions_ingested",
            "Interactions stored (new, not re-sent), by feature.",
            ["feature"],
            registry=registry,
        )
        self.rejected = Counter(
            "continuous_eval_interactions_rejected",
            "GenAI spans refused, by reason.",
            ["reason"],
            registry=registry,
        )
        self.skipped = Counter(
            "continuous_eval_spans_skipped",
            "Spans that were not GenAI spans, ignored.",
            registry=registry,
        )
        for reason in REJECTION_REASONS:
            self.rejected.labels(reason=reason)
        self._features: set[str] = set()

    def interactions_ingested(self, feature: str, count: int) -> None:
        """Count new interactions of ``feature``."""
        if feature not in self._features and len(self._features) < MAX_FEATURE_LABELS:
            self._features.add(feature)
        label = feature if feature in self._features else "_other"
        self.ingested.labels(feature=label).inc(count)

    def interactions_rejected(self, reason: str, count: int) -> None:
        """Count refused spans."""
        self.rejected.labels(reason=reason).inc(count)

    def spans_skipped(self, count: int) -> None:
        """Count ignored spans."""
        self.skipped.inc(count)
