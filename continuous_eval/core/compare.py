"""Two runs side by side, case by case: what fell, what improved, what errored.

The dashboard's compare page asks "which cases got worse, and why?". Both
runs' results are paired on (feature, scorer, case id); each pair becomes a
``CaseChange`` that carries what a person needs to judge it (the input, the
expected answer, both outputs, both scores, both rationales), classified and
ordered by how much the score moved. Pure: the caller reads the results.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from continuous_eval.core.models import ResultRecord, ResultStatus

EPSILON = 1e-9
"""Score differences smaller than this are float noise: unchanged."""


class Change(StrEnum):
    """How one case x scorer moved from the baseline run to the other run."""

    FELL = "fell"
    IMPROVED = "improved"
    ERRORED = "errored"
    """Errored in the compared run (whatever it did in the baseline)."""
    UNCHANGED = "unchanged"
    ADDED = "added"
    """Only in the compared run (a new case)."""
    REMOVED = "removed"
    """Only in the baseline run (a case no longer in the dataset)."""


@dataclass(frozen=True, slots=True)
class CaseChange:
    """One case x scorer in both runs."""

    feature: str
    scorer: str
    case_id: str
    change: Change
    before: ResultRecord | None
    """The baseline run's result; None when the case is new."""
    after: ResultRecord | None
    """The compared run's result; None when the case is gone."""

    @property
    def delta(self) -> float | None:
        """The score's move (after - before), when both runs scored it."""
        if self.before is None or self.after is None:
            return None
        if self.before.score is None or self.after.score is None:
            return None
        return self.after.score - self.before.score

    @property
    def input_excerpt(self) -> str | None:
        """What the case asked, from the newer run when it kept it."""
        return _first(self.after, self.before, "input_excerpt")

    @property
    def expected_excerpt(self) -> str | None:
        """What the case expected, from the newer run when it kept it."""
        return _first(self.after, self.before, "expected_excerpt")

    @property
    def trace_id(self) -> str | None:
        """The recorded interaction an online case scored (one run scored it)."""
        return _first(self.after, self.before, "trace_id")


def _first(a: ResultRecord | None, b: ResultRecord | None, name: str) -> str | None:
    for record in (a, b):
        value = getattr(record, name, None) if record is not None else None
        if value is not None:
            return str(value)
    return None


def classify(before: ResultRecord | None, after: ResultRecord | None) -> Change:
    """Say how a case moved; an error in the compared run outranks any score."""
    if after is None:
        return Change.REMOVED
    if after.status is not ResultStatus.OK or after.score is None:
        return Change.ERRORED
    if before is None:
        return Change.ADDED
    if before.status is not ResultStatus.OK or before.score is None:
        return Change.IMPROVED  # from an error to a score
    delta = after.score - before.score
    if delta < -EPSILON:
        return Change.FELL
    if delta > EPSILON:
        return Change.IMPROVED
    return Change.UNCHANGED


def compare_runs(before: Iterable[ResultRecord], after: Iterable[ResultRecord]) -> list[CaseChange]:
    """Pair two runs' results and order them: the largest fall first.

    Order: fallen cases by how far they fell, then errors, then improvements
    by how far they rose, then new and gone cases, then the unchanged; ties
    by feature, scorer and case id, so the page is stable between reloads.
    """
    old = {(r.feature, r.scorer, r.case_id): r for r in before}
    new = {(r.feature, r.scorer, r.case_id): r for r in after}
    changes = [
        CaseChange(
            key[0], key[1], key[2], classify(old.get(key), new.get(key)), old.get(key), new.get(key)
        )
        for key in sorted(old.keys() | new.keys())
    ]
    return sorted(changes, key=_order)


_RANK = {
    Change.FELL: 0,
    Change.ERRORED: 1,
    Change.IMPROVED: 2,
    Change.ADDED: 3,
    Change.REMOVED: 4,
    Change.UNCHANGED: 5,
}


def _order(change: CaseChange) -> tuple[int, float, str, str, str]:
    size = abs(change.delta) if change.delta is not None else 0.0
    return (_RANK[change.change], -size, change.feature, change.scorer, change.case_id)


def counts(changes: Iterable[CaseChange]) -> dict[Change, int]:
    """How many cases moved each way (every kind present, zero when none)."""
    tally = dict.fromkeys(Change, 0)
    for change in changes:
        tally[change.change] += 1
    return tally
