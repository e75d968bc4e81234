"""A feature x scorer's state at a glance, and its recent scores as a sparkline.

The overview shows one line per key: is it fine, has it fallen, is it
drifting, can nothing be said, did the judge move, or has it never run? The
answer comes from the key's newest stored decision (what the detector
concluded, and whether an incident is open), not from re-deciding anything
here. Pure: the caller reads the decisions and scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from continuous_eval.core.decisions import Decision, DecisionKind


class Health(StrEnum):
    """The overview's state of one key."""

    REGRESSED = "regressed"
    DRIFTING = "drifting"
    JUDGE_DRIFT = "judge_drift"
    INCONCLUSIVE = "inconclusive"
    OK = "ok"
    NEVER_RUN = "never_run"


_INCONCLUSIVE = frozenset(
    {DecisionKind.INCOMPLETE, DecisionKind.NO_SCORES, DecisionKind.INSUFFICIENT_EVIDENCE}
)

SEVERITY = {
    Health.REGRESSED: 0,
    Health.DRIFTING: 1,
    Health.JUDGE_DRIFT: 2,
    Health.INCONCLUSIVE: 3,
    Health.OK: 4,
    Health.NEVER_RUN: 5,
}
"""Worst first: the overview sorts a suite's keys by it."""


def health(decision: Decision | None, *, has_runs: bool) -> Health:
    """The state of a key given its newest decision.

    An open incident wins over the run's own conclusion: a key whose latest
    run was inconclusive is still regressed until a run shows it recovered.
    A key with scores but no stored decision (runs from before decisions were
    kept) is shown ok: nothing said otherwise.
    """
    if decision is None:
        return Health.OK if has_runs else Health.NEVER_RUN
    incident = decision.incident
    if incident is not None:
        if incident.kind == "judge_drift":
            return Health.JUDGE_DRIFT
        return Health.DRIFTING if decision.rule == "drift" else Health.REGRESSED
    if decision.kind is DecisionKind.DRIFTING:
        return Health.DRIFTING
    if decision.kind in (DecisionKind.REGRESSED, DecisionKind.STILL_REGRESSED):
        return Health.REGRESSED
    if decision.kind is DecisionKind.JUDGE_DRIFT:
        return Health.JUDGE_DRIFT
    if decision.kind in _INCONCLUSIVE:
        return Health.INCONCLUSIVE
    return Health.OK


def sparkline(values: Sequence[float | None], *, width: float = 120.0, height: float = 24.0) -> str:
    """SVG ``points`` of a polyline through ``values`` (oldest first), scaled to the box.

    Drawn on the server, so the overview needs no script and no chart
    library. Missing values (a run where every case errored) leave a gap in
    the x positions but no point. A flat line sits in the middle.
    """
    present = [v for v in values if v is not None]
    if not present:
        return ""
    low, high = min(present), max(present)
    span = high - low
    step = width / (len(values) - 1) if len(values) > 1 else 0.0
    pad = 2.0
    points = []
    for i, value in enumerate(values):
        if value is None:
            continue
        x = i * step if len(values) > 1 else width / 2
        y = height / 2 if span == 0 else pad + (high - value) / span * (height - 2 * pad)
        points.append(f"{x:.1f},{y:.1f}")
    return " ".join(points)
