"""Labelled examples: eval sets of cases that people have judged.

Pure records and rules. An *eval set* is a named collection of cases, each an
input and the output being judged, and people's labels of them: pass/fail
(stored as 1.0/0.0) or a 1-5 rating. Labels are never overwritten: a person
who changes their mind adds a new label, and every reader asks for the labels
"as of" a time, so a run scored last week is checked against the labels that
existed last week. Several people may label one case; the reference a judge
is compared with is their consensus.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import JsonValue

LabelScale = Literal["pass_fail", "1-5"]
"""How an eval set's cases are labelled: pass (1) or fail (0), or a rating from 1 to 5."""

LabelSource = Literal["import", "api", "feedback"]
"""Where a label came from: a CSV/JSONL import, the API, or feedback on production traffic."""


def valid_label_value(scale: LabelScale, value: float) -> bool:
    """Whether ``value`` is a label on ``scale``: 0 or 1 for pass/fail, an integer 1-5 otherwise."""
    if scale == "pass_fail":
        return value in (0.0, 1.0)
    return value in (1.0, 2.0, 3.0, 4.0, 5.0)


@dataclass(frozen=True, slots=True)
class EvalSet:
    """A named set of labelled cases."""

    id: int
    name: str
    scale: LabelScale
    created_at: datetime
    description: str | None = None
    feature: str | None = None
    """When set, feedback on this feature's production traces fills the set."""


@dataclass(frozen=True, slots=True)
class EvalCase:
    """One case of an eval set: what was asked and the answer people judged."""

    case_id: str
    input: JsonValue
    output: str
    expected: JsonValue = None
    metadata: dict[str, JsonValue] = field(default_factory=dict)
    trace_id: str | None = None
    """The production trace the case came from, when it was filled from feedback."""


@dataclass(frozen=True, slots=True)
class NewLabel:
    """A person's judgement of one case of an eval set."""

    case_id: str
    author: str
    value: float
    """1.0 pass / 0.0 fail, or 1-5, by the eval set's scale."""
    comment: str | None = None
    source: LabelSource = "api"


@dataclass(frozen=True, slots=True)
class Label:
    """A stored label: never updated, superseded by a later one of the same author."""

    id: int
    label: NewLabel
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LabelledCase:
    """A case with the labels in force at some time: the latest of each author."""

    case: EvalCase
    labels: tuple[Label, ...]


def labels_as_of(labels: Iterable[Label], as_of: datetime | None) -> tuple[Label, ...]:
    """The latest label of each author created at or before ``as_of`` (all when none), by author."""
    latest: dict[str, Label] = {}
    for item in labels:
        if as_of is not None and item.created_at > as_of:
            continue
        seen = latest.get(item.label.author)
        if seen is None or (item.created_at, item.id) > (seen.created_at, seen.id):
            latest[item.label.author] = item
    return tuple(latest[a] for a in sorted(latest))


def consensus(labels: Iterable[Label], scale: LabelScale) -> float | None:
    """The reference value of a case: the majority for pass/fail (a tie is none), the
    lower median for 1-5 (an actual rating, never a half), none without labels."""
    values = [item.label.value for item in labels]
    if not values:
        return None
    if scale == "pass_fail":
        passes = sum(1 for v in values if v >= 0.5)
        fails = len(values) - passes
        if passes == fails:
            return None
        return 1.0 if passes > fails else 0.0
    return float(statistics.median_low(values))
