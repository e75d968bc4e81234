"""Wire shapes of eval sets: sets, their cases with labels, and labels, with the conversions
from the core's records (``core.labels``)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from continuous_eval.adapters.http.schemas import NO_NUL
from continuous_eval.core.labels import (
    EvalCase,
    EvalSet,
    Label,
    LabelledCase,
    LabelScale,
    NewLabel,
    consensus,
)

MAX_ITEMS = 1000
"""Cases or labels per request; the body cap bounds them too."""

Text200 = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
Comment = Annotated[str, Field(max_length=10_000, pattern=NO_NUL)]


class EvalSetIn(BaseModel):
    """A set to create."""

    model_config = ConfigDict(extra="forbid")

    name: Text200
    scale: LabelScale
    """``pass_fail``: labels 1 (pass) or 0 (fail); ``1-5``: a rating."""
    description: Comment | None = None
    feature: Text200 | None = None
    """Fill the set from the feedback on this feature's production traces."""


class EvalSetOut(BaseModel):
    """An eval set."""

    id: int
    name: str
    scale: LabelScale
    description: str | None
    feature: str | None
    created_at: datetime


def eval_set_out(item: EvalSet) -> EvalSetOut:
    """A set as answered."""
    return EvalSetOut(
        id=item.id,
        name=item.name,
        scale=item.scale,
        description=item.description,
        feature=item.feature,
        created_at=item.created_at,
    )


class EvalSetList(BaseModel):
    """Every eval set, by name."""

    items: list[EvalSetOut]


class EvalSetDetail(EvalSetOut):
    """A set with the counts of its labels in force now."""

    labelled_cases: int
    """Cases with at least one label."""
    labels: int
    """Labels in force: the latest of each author on each case."""
    authors: dict[str, int]
    """Labels in force per author."""
    consensus: dict[str, int]
    """Labelled cases per consensus value (``pass``/``fail`` or ``1``-``5``; ``none``: a tie)."""


def _value(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


class CaseLabelIn(BaseModel):
    """A label given with its case."""

    model_config = ConfigDict(extra="forbid")

    author: Text200
    value: float
    """1 (pass) or 0 (fail), or 1-5, by the set's scale."""
    comment: Comment | None = None

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float) -> float:
        return _value(value)


class CaseIn(BaseModel):
    """A case to add or replace (by ``case_id``), with labels of it if any."""

    model_config = ConfigDict(extra="forbid")

    case_id: Text200
    input: JsonValue
    output: Annotated[str, Field(max_length=1_000_000, pattern=NO_NUL)]
    expected: JsonValue = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    labels: list[CaseLabelIn] = Field(default_factory=list, max_length=100)

    def to_case(self) -> EvalCase:
        """The record to store."""
        return EvalCase(
            case_id=self.case_id,
            input=self.input,
            output=self.output,
            expected=self.expected,
            metadata=self.metadata,
        )

    def to_labels(self) -> list[NewLabel]:
        """Its labels as records to store."""
        return [NewLabel(self.case_id, x.author, x.value, x.comment, "api") for x in self.labels]


class CasesIn(BaseModel):
    """Cases to add or replace, all or none."""

    model_config = ConfigDict(extra="forbid")

    cases: list[CaseIn] = Field(min_length=1, max_length=MAX_ITEMS)


class CasesOut(BaseModel):
    """What a batch of cases did."""

    cases_new: int
    cases_updated: int
    labels: int


class LabelIn(CaseLabelIn):
    """A label of a case already in the set."""

    case_id: Text200

    def to_label(self) -> NewLabel:
        """The record to store."""
        return NewLabel(self.case_id, self.author, self.value, self.comment, "api")


class LabelsIn(BaseModel):
    """Labels to add, all or none."""

    model_config = ConfigDict(extra="forbid")

    labels: list[LabelIn] = Field(min_length=1, max_length=MAX_ITEMS)


class LabelOut(BaseModel):
    """A stored label; never changed, superseded by a later label of the same author."""

    id: int
    case_id: str
    author: str
    value: float
    comment: str | None
    source: str
    created_at: datetime


def label_out(item: Label) -> LabelOut:
    """A label as answered."""
    return LabelOut(
        id=item.id,
        case_id=item.label.case_id,
        author=item.label.author,
        value=item.label.value,
        comment=item.label.comment,
        source=item.label.source,
        created_at=item.created_at,
    )


class LabelList(BaseModel):
    """Labels, oldest first."""

    items: list[LabelOut]


class CaseOut(BaseModel):
    """A case with its labels in force and their consensus."""

    case_id: str
    input: JsonValue
    output: str
    expected: JsonValue
    metadata: dict[str, JsonValue]
    trace_id: str | None
    labels: list[LabelOut]
    consensus: float | None
    """The majority for pass/fail (null on a tie), the lower median for 1-5."""


def case_out(item: LabelledCase, scale: LabelScale) -> CaseOut:
    """A labelled case as answered."""
    case = item.case
    return CaseOut(
        case_id=case.case_id,
        input=case.input,
        output=case.output,
        expected=case.expected,
        metadata=case.metadata,
        trace_id=case.trace_id,
        labels=[label_out(x) for x in item.labels],
        consensus=consensus(item.labels, scale),
    )


class CasePage(BaseModel):
    """One page of labelled cases by case id; ``next_cursor`` is null on the last page."""

    items: list[CaseOut]
    next_cursor: str | None
