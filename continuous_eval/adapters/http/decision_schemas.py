"""The response schemas of a run's stored decisions (``GET /api/runs/{id}/decisions``).

Read off ``core.decisions.Decision`` by attribute (``from_attributes``): a
field added to the dataclass is one line here, and a renamed one fails
validation in the tests instead of silently vanishing from the API.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from continuous_eval.core.decisions import Decision, DecisionKind, IncidentKind, Transition
from continuous_eval.core.models import RunRecord, RunType


class CaseDropOut(BaseModel):
    """A paired case whose score is below its known-good level."""

    model_config = ConfigDict(from_attributes=True)

    case_id: str
    before: float
    """The case's known-good level: its mean over the baseline runs."""
    after: float
    """Its score in this run."""


class AnchorCheckOut(BaseModel):
    """The judge canary: the same frozen outputs re-judged, compared with the baseline runs."""

    model_config = ConfigDict(from_attributes=True)

    n_paired: int
    mean_difference: float
    """How far the judge moved on the anchors (now - then)."""
    p_value: float
    """Two-sided exact p of the shift."""
    p_adjusted: float
    """Adjusted over the run's anchored keys."""
    drifted: bool
    """Whether the shift counts as judge drift."""


class IncidentOut(BaseModel):
    """The key's open incident after this run."""

    model_config = ConfigDict(from_attributes=True)

    opened_run_id: str
    kind: IncidentKind
    worst_difference: float
    """The lowest paired mean difference alerted so far."""
    baseline_run_ids: list[str]
    """The known-good runs the incident is measured against, frozen when it opened."""


class DecisionOut(BaseModel):
    """What the detector concluded about one feature x scorer of a run, and its numbers."""

    model_config = ConfigDict(from_attributes=True)

    feature: str
    scorer: str
    kind: DecisionKind
    message: str
    """Why, in one sentence (what alerts and the CLI print)."""
    rule: Literal["drop", "drift"] | None
    """Which rule fired, for ``regressed`` and ``drifting``."""
    transition: Transition | None
    """What the run did to the key's incident: opened, worsened, recovered, reset."""
    alerting: bool
    """Whether this was news to a person (an incident opened or worsened)."""
    known_good: bool
    """Whether this run joined the key's known-good baseline."""
    current: float | None
    """Paired mean of this run (its plain mean when nothing was paired)."""
    baseline: float | None
    """Paired mean of the known-good baseline runs."""
    mean_difference: float | None
    """current - baseline."""
    ci_low: float | None
    """95% confidence interval of the mean difference."""
    ci_high: float | None
    p_value: float | None
    """One-sided exact p of a fall."""
    p_adjusted: float | None
    """Adjusted over the run's family of keys (Benjamini-Hochberg or Holm)."""
    n_paired: int
    """Cases scored both now and in the baseline runs."""
    baseline_run_ids: list[str]
    """The known-good runs compared with, newest first."""
    fallen: list[CaseDropOut]
    """Every paired case below its known-good level, worst first (the complete list)."""
    cusum: float
    """The sequential detector's statistic after this run."""
    anchor: AnchorCheckOut | None
    corrected_difference: float | None
    """Under judge drift: the fall minus the anchors' shift."""
    incident: IncidentOut | None


class RunDecisions(BaseModel):
    """A run's stored decisions, by feature and scorer."""

    run_id: str
    suite: str
    run_type: RunType
    decided: bool
    """False for a run without stored decisions (not finished, not succeeded, or older)."""
    candidate: bool
    """Decided as a candidate (a manual run): compared, but never alerting nor a baseline."""
    items: list[DecisionOut]


# ------------------------------------------------------------------ live events


def decision_out(decision: Decision) -> DecisionOut:
    """Convert one stored decision."""
    return DecisionOut.model_validate(decision)


def run_decisions(run: RunRecord, decisions: list[Decision]) -> RunDecisions:
    """Convert a run's stored decisions."""
    return RunDecisions(
        run_id=run.id,
        suite=run.suite,
        run_type=run.run_type,
        decided=bool(decisions),
        candidate=run.run_type != "scheduled",
        items=[decision_out(d) for d in decisions],
    )
