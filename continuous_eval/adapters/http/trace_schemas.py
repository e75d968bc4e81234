"""Wire shapes of recorded traffic: plain JSON ingestion, interactions, traces, feedback.

The body items of ``POST /api/traces`` are ``adapters.interaction_json.InteractionIn``,
shared with ``traces import``; the rest is here, with the conversions from
the core's records.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from continuous_eval.adapters.interaction_json import NO_NUL, InteractionIn, SpanId
from continuous_eval.core.interactions import (
    Feedback,
    IngestOutcome,
    NewFeedback,
    StoredInteraction,
)
from continuous_eval.core.trajectory import Step

MAX_BATCH = 1000
"""Interactions per ``POST /api/traces``; the body cap bounds it too."""


class TracesIn(BaseModel):
    """A batch of interactions to store; each is stored once, however often it is sent."""

    model_config = ConfigDict(extra="forbid")

    interactions: list[InteractionIn] = Field(min_length=1, max_length=MAX_BATCH)


class IngestOut(BaseModel):
    """What a batch did."""

    stored: int
    """New interactions written."""
    duplicates: int
    """Interactions already stored (or repeated in the batch): accepted, written once."""
    skipped: int = 0
    rejected: dict[str, int] = Field(default_factory=dict)
    """Refused, by reason (OTLP only: a plain JSON batch is valid whole or refused whole)."""


def ingest_out(outcome: IngestOutcome) -> IngestOut:
    """The outcome as answered."""
    return IngestOut(
        stored=outcome.stored,
        duplicates=outcome.duplicates,
        skipped=outcome.skipped,
        rejected=dict(outcome.rejected),
    )


class InteractionOut(BaseModel):
    """A stored interaction."""

    id: int
    trace_id: str
    span_id: str
    parent_span_id: str | None
    feature: str
    name: str | None
    operation: str | None
    model: str | None
    input: str
    output: str
    input_tokens: int | None
    output_tokens: int | None
    steps: list[Step]
    metadata: dict[str, JsonValue]
    error: str | None
    started_at: datetime
    ended_at: datetime | None
    ingested_at: datetime


def interaction_out(stored: StoredInteraction) -> InteractionOut:
    """A stored interaction as answered."""
    item = stored.interaction
    fields = {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
    return InteractionOut(id=stored.id, ingested_at=stored.ingested_at, **fields)


class InteractionPage(BaseModel):
    """One page of interactions, oldest first; ``next_cursor`` is null on the last page."""

    items: list[InteractionOut]
    next_cursor: str | None


class FeedbackIn(BaseModel):
    """A person's judgement of a trace: a score, a label or both, with who said it."""

    model_config = ConfigDict(extra="forbid")

    author: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    score: float | None = None
    label: str | None = Field(default=None, min_length=1, max_length=200, pattern=NO_NUL)
    comment: str | None = Field(default=None, max_length=10_000, pattern=NO_NUL)
    span_id: SpanId | None = None
    """The interaction judged, when the trace has several; none: the whole trace."""

    @field_validator("score")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("score must be a finite number")
        return value

    @model_validator(mode="after")
    def _something(self) -> FeedbackIn:
        if self.score is None and self.label is None:
            raise ValueError("give a score, a label or both")
        return self

    def to_feedback(self, trace_id: str) -> NewFeedback:
        """The record to store."""
        return NewFeedback(
            trace_id=trace_id,
            author=self.author,
            score=self.score,
            label=self.label,
            comment=self.comment,
            span_id=self.span_id,
        )


class FeedbackOut(BaseModel):
    """Stored feedback."""

    id: int
    trace_id: str
    span_id: str | None
    author: str
    score: float | None
    label: str | None
    comment: str | None
    created_at: datetime


def feedback_out(stored: Feedback) -> FeedbackOut:
    """Stored feedback as answered."""
    item = stored.feedback
    return FeedbackOut(
        id=stored.id,
        trace_id=item.trace_id,
        span_id=item.span_id,
        author=item.author,
        score=item.score,
        label=item.label,
        comment=item.comment,
        created_at=stored.created_at,
    )


class FeedbackList(BaseModel):
    """A trace's feedback, oldest first."""

    items: list[FeedbackOut]


class TraceOut(BaseModel):
    """A trace: its interactions by start time, and the feedback on it."""

    trace_id: str
    interactions: list[InteractionOut]
    feedback: list[FeedbackOut]
