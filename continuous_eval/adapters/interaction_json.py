"""The plain JSON shape of one interaction: ``POST /api/traces`` items and ``traces import`` lines.

One pydantic model for both, so a line that imports is a body item that
posts and the other way round. Ids are hex as OpenTelemetry writes them
(any case; stored lowercase); times must carry a time zone, since a naive
time would be read differently by every replica's clock settings.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    field_validator,
    model_validator,
)

from continuous_eval.core.interactions import Interaction
from continuous_eval.core.trajectory import Step

NO_NUL = r"^[^\x00]*$"

TraceId = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-fA-F]{32}$", to_lower=True),
    Field(description="32 hex digits (any case; stored lowercase)."),
]
SpanId = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-fA-F]{16}$", to_lower=True),
    Field(description="16 hex digits (any case; stored lowercase)."),
]

MAX_TEXT_CHARS = 1_000_000
"""An input or output longer than this is refused: it is not a conversation turn."""


class InteractionIn(BaseModel):
    """One interaction as sent in plain JSON; idempotent on (``trace_id``, ``span_id``)."""

    model_config = ConfigDict(extra="forbid")

    trace_id: TraceId
    span_id: SpanId
    parent_span_id: SpanId | None = None
    feature: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    input: str = Field(max_length=MAX_TEXT_CHARS)
    output: str = Field(max_length=MAX_TEXT_CHARS)
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    name: str | None = Field(default=None, max_length=500)
    operation: str | None = Field(default=None, max_length=64)
    model: str | None = Field(default=None, max_length=200)
    input_tokens: int | None = Field(default=None, ge=0, lt=2**31)
    output_tokens: int | None = Field(default=None, ge=0, lt=2**31)
    steps: list[Step] = Field(default_factory=list, max_length=10_000)
    metadata: dict[str, JsonValue] = Field(default_factory=dict, max_length=64)
    error: str | None = Field(default=None, max_length=10_000)

    @field_validator("input", "output", "name", "model", "error", mode="after")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        # Postgres refuses NUL in text; it carries nothing a scorer needs.
        return value.replace("\x00", "") if value else value

    @model_validator(mode="after")
    def _ids_not_zero(self) -> InteractionIn:
        if self.trace_id == "0" * 32 or self.span_id == "0" * 16:
            raise ValueError(
                "trace_id and span_id must not be all zeros (OpenTelemetry's invalid id)"
            )
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        return self

    def to_interaction(self) -> Interaction:
        """The record to store."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(Interaction)}
        return Interaction(
            **{**values, "steps": tuple(self.steps), "metadata": dict(self.metadata)}
        )
