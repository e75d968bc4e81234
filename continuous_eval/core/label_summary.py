"""What people's labels of an eval set add up to: labels per case, per author, and the
consensus distribution. Pure; ``eval-sets show`` and ``GET /api/eval-sets/{id}`` print it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from continuous_eval.core.labels import EvalSet, LabelledCase, LabelScale, consensus


@dataclass(frozen=True, slots=True)
class CaseSummary:
    """One case as ``show`` prints it."""

    case_id: str
    labels: int
    authors: tuple[str, ...]
    consensus: float | None


@dataclass(frozen=True, slots=True)
class EvalSetSummary:
    """An eval set's cases, who labelled them and what they agree on."""

    eval_set: EvalSet
    cases: tuple[CaseSummary, ...]
    authors: dict[str, int]
    """Labels in force per author."""
    distribution: dict[str, int]
    """Cases per consensus value (``none``: a tie)."""


def summary(eval_set: EvalSet, labelled: list[LabelledCase]) -> EvalSetSummary:
    """What ``eval-sets show`` prints of a set's labelled cases (labels in force now)."""
    authors: Counter[str] = Counter()
    distribution: Counter[str] = Counter()
    cases = []
    for item in labelled:
        agreed = consensus(item.labels, eval_set.scale)
        names = tuple(x.label.author for x in item.labels)
        authors.update(names)
        distribution[consensus_name(eval_set.scale, agreed)] += 1
        cases.append(CaseSummary(item.case.case_id, len(item.labels), names, agreed))
    return EvalSetSummary(
        eval_set, tuple(cases), dict(sorted(authors.items())), dict(sorted(distribution.items()))
    )


def consensus_name(scale: LabelScale, value: float | None) -> str:
    """A consensus as a word: pass/fail, the rating, or ``none`` (a tie)."""
    if value is None:
        return "none"
    if scale == "pass_fail":
        return "pass" if value >= 0.5 else "fail"
    return str(int(value))
