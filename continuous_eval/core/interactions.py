"""Recorded production traffic: interactions, feedback on them, and deterministic sampling.

Pure records and rules. An *interaction* is one GenAI span of a trace (a
model call or an agent's invocation) as ingested from OTLP or the plain JSON
API: what was asked, what was answered, the tools it called, and who it was
for. Online features sample them by a hash of the trace id, so every replica
and every retry of a run picks the same cases from the same window.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import JsonValue

from continuous_eval.core.trajectory import Step

SAMPLE_KEY_BITS = 63
"""Sample keys are non-negative signed 64-bit integers: they fit a BIGINT column."""

SAMPLE_KEY_SPACE = 1 << SAMPLE_KEY_BITS


def sample_key(trace_id: str) -> int:
    """The trace's place in the sampling order: the first 63 bits of SHA-256 of its id.

    Every span of a trace gets the same key, so a sample takes whole traces;
    the key is uniform, so the lowest keys of a window are a uniform sample
    of it (bottom-k sampling), the same on every replica.
    """
    digest = hashlib.sha256(trace_id.lower().encode("ascii", "replace")).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SAMPLE_KEY_BITS)


def sample_threshold(rate: float) -> int:
    """The exclusive upper bound on sample keys kept at ``rate`` (0 < rate <= 1)."""
    if not 0 < rate <= 1:
        raise ValueError(f"sample rate must be in (0, 1], got {rate}")
    return min(SAMPLE_KEY_SPACE, int(rate * SAMPLE_KEY_SPACE))


@dataclass(frozen=True, slots=True)
class Interaction:
    """One ingested GenAI span, ready to store; idempotent on (trace_id, span_id)."""

    trace_id: str
    """32 lowercase hex digits, as OpenTelemetry writes them."""
    span_id: str
    """16 lowercase hex digits."""
    feature: str
    input: str
    """What was asked: the user's text of the last turn (or the whole input as JSON text)."""
    output: str
    """What was answered: the assistant's text (or its output as JSON text)."""
    started_at: datetime
    ended_at: datetime | None = None
    parent_span_id: str | None = None
    name: str | None = None
    """The span's name, e.g. ``chat claude-haiku-4-5``."""
    operation: str | None = None
    """``gen_ai.operation.name``: chat, invoke_agent, text_completion..."""
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    steps: tuple[Step, ...] = ()
    """The trajectory as it happened: tool calls, their results, messages."""
    metadata: dict[str, JsonValue] = field(default_factory=dict)
    """User-supplied attributes (everything that is not a ``gen_ai.*`` attribute)."""
    error: str | None = None
    """The span's error status message, when it ended in error."""

    @property
    def sample_key(self) -> int:
        """See ``sample_key``."""
        return sample_key(self.trace_id)


@dataclass(frozen=True, slots=True)
class StoredInteraction:
    """An interaction as read back, with its row id and when it was stored."""

    id: int
    interaction: Interaction
    ingested_at: datetime


FeedbackKind = Literal["score", "label"]


@dataclass(frozen=True, slots=True)
class NewFeedback:
    """A person's judgement of a trace: a score or a label, with who said it and why."""

    trace_id: str
    author: str
    score: float | None = None
    label: str | None = None
    comment: str | None = None
    span_id: str | None = None
    """The interaction judged, when the trace has several; none: the whole trace."""


@dataclass(frozen=True, slots=True)
class Feedback:
    """Stored feedback."""

    id: int
    feedback: NewFeedback
    created_at: datetime


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What one ingest request did: the OTLP partial-success counts, and the metrics'."""

    stored: int = 0
    """New interactions written."""
    duplicates: int = 0
    """Spans already stored (a re-sent batch): accepted, written once."""
    skipped: int = 0
    """Spans that are not GenAI interactions (no ``gen_ai.*`` attributes): accepted, ignored."""
    rejected: dict[str, int] = field(default_factory=dict)
    """Spans refused, by reason code (e.g. ``bad_trace_id``, ``no_feature``)."""
    messages: tuple[str, ...] = ()
    """The first few rejection messages, for the response's ``error_message``."""

    @property
    def rejected_total(self) -> int:
        """Spans refused in all."""
        return sum(self.rejected.values())


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """How long one feature's rows live: an age and a row cap (either may be off)."""

    max_age_days: float | None
    max_rows: int | None


@dataclass(frozen=True, slots=True)
class RetentionOutcome:
    """What one retention pass deleted, for the metrics and the log."""

    interactions_by_age: int = 0
    interactions_by_cap: int = 0
    results_by_age: int = 0
    feedback: int = 0
