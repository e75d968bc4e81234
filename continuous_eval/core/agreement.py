"""How far an LLM judge agrees with people: the figures of one run's ``@labels`` feature.

A judge scores an eval set's labelled cases (``<feature>@labels``); this
module compares its verdicts with the people's consensus label of each case
(``core.labels.consensus``) and returns exact agreement, Cohen's kappa,
Spearman's rho, the confusion matrix and the worst contradictions.

- **pass_fail** sets compare the judge's *passed* (its score at or above the
  scorer's ``pass_threshold``) with the label; kappa is unweighted.
- **1-5** sets compare the judge's 1-5 score with the label; kappa uses
  QUADRATIC weights over the fixed categories 1..5, so a 5 against a 1 costs
  sixteen times a 4 against a 5, and the figure does not depend on which
  ratings happen to occur in this run.
- Spearman's rho is always the judge's 1-5 score against the label: it says
  whether higher scores go with better labels even when the threshold is off.

Cases where people split (no consensus) are excluded and counted. A figure
that is undefined (fewer than two cases, every case in one category, a
constant column) is ``None`` with a reason, never NaN: NaN is not JSON.

The statistics come from scikit-learn and SciPy, imported inside
``measure``: the daemon must not load SciPy at start-up (``bench/startup.py``).

Contradiction order (worst first): for 1-5, the largest ``|judge - label|``;
for pass_fail, the judge *passing* what a person failed comes before the
judge failing what a person passed (a judge that lets bad answers through
hides regressions; one that is too strict only raises false alarms), and
within each the judge score furthest on the wrong side. Ties by case id.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from continuous_eval.core.labels import LabelScale

MAX_CONTRADICTIONS: Final = 20
"""Contradictions kept per run x feature x judge: enough to read, small enough to store."""

PASS_FAIL_CATEGORIES: Final = (0.0, 1.0)
RATING_CATEGORIES: Final = (1.0, 2.0, 3.0, 4.0, 5.0)


@dataclass(frozen=True, slots=True)
class JudgedCase:
    """One labelled case as the judge scored it."""

    case_id: str
    score: float
    """The judge's 1-5 score."""
    passed: bool
    """Whether the score reached the judge's pass threshold."""
    label: float | None
    """People's consensus: 0/1 or 1-5 by the scale; None when they split."""


@dataclass(frozen=True, slots=True)
class Contradiction:
    """A case the judge and people disagree on."""

    case_id: str
    judge: float
    """The judge's verdict on the label's scale: 0/1 for pass_fail, 1-5 otherwise."""
    judge_score: float
    """The judge's raw 1-5 score."""
    label: float
    gap: float
    """``|judge - label|`` on the label's scale."""

    def as_json(self) -> dict[str, object]:
        """The contradiction as stored and served."""
        return {
            "case_id": self.case_id,
            "judge": self.judge,
            "judge_score": self.judge_score,
            "label": self.label,
            "gap": self.gap,
        }


@dataclass(frozen=True, slots=True)
class Confusion:
    """Counts of (label, judge) pairs: ``matrix[i][j]`` = label ``categories[i]``, judge ``[j]``."""

    categories: tuple[float, ...]
    matrix: tuple[tuple[int, ...], ...]

    def as_json(self) -> dict[str, object]:
        """Rows are people's labels, columns the judge's, both in ``categories`` order."""
        return {"categories": list(self.categories), "matrix": [list(r) for r in self.matrix]}


@dataclass(frozen=True, slots=True)
class Agreement:
    """The judge against people on one run's labelled cases."""

    scale: LabelScale
    n: int
    """Cases compared (with a consensus)."""
    split: int
    """Cases left out because people split."""
    exact: float | None
    kappa: float | None
    spearman: float | None
    confusion: Confusion
    contradictions: tuple[Contradiction, ...]
    reasons: dict[str, str] = field(default_factory=dict)
    """Why a figure is None, by name (``exact``, ``kappa``, ``spearman``)."""


def categories(scale: LabelScale) -> tuple[float, ...]:
    """The label categories of a scale, in the confusion matrix's order."""
    return PASS_FAIL_CATEGORIES if scale == "pass_fail" else RATING_CATEGORIES


def verdict(case: JudgedCase, scale: LabelScale) -> float:
    """The judge's verdict on the label's scale: passed as 0/1, or the rounded 1-5 score."""
    if scale == "pass_fail":
        return 1.0 if case.passed else 0.0
    return float(min(5, max(1, round(case.score))))


def measure(
    cases: Sequence[JudgedCase], scale: LabelScale, *, limit: int = MAX_CONTRADICTIONS
) -> Agreement:
    """Compare the judge with people's consensus on ``cases``; see the module docstring."""
    compared = [c for c in cases if c.label is not None]
    split = len(cases) - len(compared)
    cats = categories(scale)
    judge = [verdict(c, scale) for c in compared]
    labels = [float(c.label) for c in compared if c.label is not None]
    scores = [c.score for c in compared]
    reasons: dict[str, str] = {}
    exact: float | None = None
    if compared:
        exact = sum(1 for j, la in zip(judge, labels, strict=True) if j == la) / len(compared)
    else:
        reasons["exact"] = "no labelled case with a consensus"
    kappa = _kappa(labels, judge, scale, reasons)
    rho = _spearman(scores, labels, reasons)
    return Agreement(
        scale=scale,
        n=len(compared),
        split=split,
        exact=exact,
        kappa=kappa,
        spearman=rho,
        confusion=_confusion(labels, judge, cats),
        contradictions=contradictions(compared, scale, limit=limit),
        reasons=reasons,
    )


def _kappa(
    labels: list[float], judge: list[float], scale: LabelScale, reasons: dict[str, str]
) -> float | None:
    if len(labels) < 2:
        reasons["kappa"] = f"{len(labels)} labelled case(s): kappa needs at least 2"
        return None
    if len(set(labels) | set(judge)) < 2:
        reasons["kappa"] = "judge and people used one category only: kappa is undefined"
        return None
    from sklearn.metrics import cohen_kappa_score  # type: ignore[import-untyped]

    weights = None if scale == "pass_fail" else "quadratic"
    with warnings.catch_warnings():
        # scikit-learn warns (and answers NaN) when the chance agreement is total.
        warnings.simplefilter("ignore")
        value = float(
            cohen_kappa_score(labels, judge, labels=list(categories(scale)), weights=weights)
        )
    if math.isnan(value):
        reasons["kappa"] = "the chance agreement is total: kappa is undefined"
        return None
    return value


def _spearman(scores: list[float], labels: list[float], reasons: dict[str, str]) -> float | None:
    if len(labels) < 2:
        reasons["spearman"] = f"{len(labels)} labelled case(s): a correlation needs at least 2"
        return None
    if len(set(scores)) < 2 or len(set(labels)) < 2:
        which = "judge's scores" if len(set(scores)) < 2 else "labels"
        reasons["spearman"] = f"the {which} are all the same: the correlation is undefined"
        return None
    from scipy.stats import spearmanr  # type: ignore[import-untyped]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(spearmanr(scores, labels).statistic)
    if math.isnan(value):
        reasons["spearman"] = "the correlation is undefined"
        return None
    return value


def _confusion(labels: list[float], judge: list[float], cats: tuple[float, ...]) -> Confusion:
    if not labels:
        return Confusion(cats, tuple(tuple(0 for _ in cats) for _ in cats))
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(labels, judge, labels=list(cats))
    return Confusion(cats, tuple(tuple(int(x) for x in row) for row in matrix))


def contradictions(
    cases: Sequence[JudgedCase], scale: LabelScale, *, limit: int = MAX_CONTRADICTIONS
) -> tuple[Contradiction, ...]:
    """The cases judge and people disagree on, worst first (see the module docstring)."""
    found: list[tuple[tuple[float, float, str], Contradiction]] = []
    for case in cases:
        if case.label is None:
            continue
        said = verdict(case, scale)
        if said == case.label:
            continue
        gap = abs(said - case.label)
        if scale == "pass_fail":
            false_pass = said > case.label
            # A false pass first; then the score furthest on the wrong side.
            wrongness = case.score if false_pass else -case.score
            order = (0.0 if false_pass else 1.0, -wrongness, case.case_id)
        else:
            order = (-gap, 0.0, case.case_id)
        found.append((order, Contradiction(case.case_id, said, case.score, case.label, gap)))
    found.sort(key=lambda item: item[0])
    return tuple(c for _, c in found[:limit])


@dataclass(frozen=True, slots=True)
class RunAgreement:
    """One run's agreement of one judge of one feature with an eval set's labels: a stored row."""

    run_id: str
    suite: str
    feature: str
    """The calibrated feature (without ``@labels``)."""
    scorer: str
    eval_set: str
    agreement: Agreement
    created_at: datetime | None = None
    """Set by the store when written."""

    def as_json(self) -> dict[str, object]:
        """The row as the API and the CLI's ``--json`` serve it (no NaN: figures are None)."""
        a = self.agreement
        return {
            "run_id": self.run_id,
            "suite": self.suite,
            "feature": self.feature,
            "scorer": self.scorer,
            "eval_set": self.eval_set,
            "scale": a.scale,
            "n": a.n,
            "split": a.split,
            "exact": a.exact,
            "kappa": a.kappa,
            "spearman": a.spearman,
            "confusion": a.confusion.as_json(),
            "contradictions": [c.as_json() for c in a.contradictions],
            "reasons": dict(a.reasons),
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


def confusion_from_json(value: object) -> Confusion:
    """Read back ``Confusion.as_json``."""
    data = value if isinstance(value, dict) else {}
    cats = tuple(float(c) for c in data.get("categories", []))
    matrix = tuple(tuple(int(x) for x in row) for row in data.get("matrix", []))
    return Confusion(cats, matrix)


def contradictions_from_json(value: object) -> tuple[Contradiction, ...]:
    """Read back a list of ``Contradiction.as_json``."""
    items = value if isinstance(value, list) else []
    return tuple(
        Contradiction(
            case_id=str(c["case_id"]),
            judge=float(c["judge"]),
            judge_score=float(c["judge_score"]),
            label=float(c["label"]),
            gap=float(c["gap"]),
        )
        for c in items
        if isinstance(c, dict)
    )
