"""What one key of a run concludes, once the run's family has been adjusted.

Pure, the last step of ``core.regression.decide_run``: from a
``core.key_decision.PendingKey`` (the key's test, its adjusted p-values and
the anchors' check) to the :class:`Decision` stored with the run: an incident
opened, worsened, recovered or kept, judge drift, or no regression.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import replace
from typing import Literal

from continuous_eval.core.decisions import (
    EPSILON,
    Decision,
    DecisionKind,
    Incident,
    RegressionPolicy,
    Transition,
)
from continuous_eval.core.key_decision import KeyTest, PendingKey
from continuous_eval.core.paired_test import PairedTest, t_quantile_975
from continuous_eval.core.unpaired_test import UnpairedTest


def conclude(p: PendingKey, policy: RegressionPolicy, as_candidate: bool) -> Decision:
    d = p.base
    test = p.test
    if test is None:
        return d if not as_candidate else replace(d, known_good=False, transition=None)
    incident = p.incident
    anchor = d.anchor
    judged = anchor is not None and anchor.drifted
    shift = anchor.mean_difference if anchor is not None and judged else 0.0
    difference = test.mean_difference - shift
    moved = f"{test.baseline_mean:.3f} -> {test.current_mean:.3f} over {_sample(test)}"
    if judged:
        # Under judge drift the run's evidence is the judge's as much as the
        # product's: the CUSUM adds none of it, and only a corrected fall alerts.
        d = replace(d, corrected_difference=difference, cusum=0.0)
    if incident is not None and incident.kind == "regression" and not as_candidate:
        return _in_incident(d, test, incident, p.minimum, moved)
    rule = _alarm(p, d, test, policy, judged, difference)
    if rule is not None:
        return _opened(p, d, policy, as_candidate, rule, difference, moved)
    if judged:
        return _judge_drift(p, d, as_candidate, incident, moved)
    return _no_regression(p, d, test, policy, as_candidate, incident, moved)


def _in_incident(
    d: Decision, test: KeyTest, incident: Incident, minimum: float, moved: str
) -> Decision:
    """A key with an open regression incident: recovered, fallen further, or still down."""
    if test.mean_difference + EPSILON >= -minimum / 2:
        message = f"back at the known-good level ({moved}): incident closed"
        return replace(
            d, kind=DecisionKind.RECOVERED, message=message, transition="recovered",
            known_good=True, incident=None, cusum=0.0,
        )  # fmt: skip
    if test.mean_difference <= incident.worst_difference - minimum + EPSILON:
        worse = replace(incident, worst_difference=test.mean_difference)
        message = f"fell further since the incident opened ({moved})"
        return replace(
            d, kind=DecisionKind.REGRESSED, rule="drop", message=message,
            transition="worsened", incident=worse,
        )  # fmt: skip
    message = f"still down since run {incident.opened_run_id} ({moved})"
    return replace(d, kind=DecisionKind.STILL_REGRESSED, message=message, incident=incident)


def _alarm(
    p: PendingKey,
    d: Decision,
    test: KeyTest,
    policy: RegressionPolicy,
    judged: bool,
    difference: float,
) -> Literal["drop", "drift"] | None:
    """Which rule, if any, says the key regressed: the drop test first, then the drift test."""
    significant = d.p_adjusted is not None and d.p_adjusted <= policy.fdr + EPSILON
    if judged:
        significant = significant and _corrected_significant(test, p.anchor_test, difference)
    if significant and difference <= -p.minimum + EPSILON:
        return "drop"
    drift = (
        not judged
        and p.drift is not None
        and p.drift_adjusted is not None
        and p.drift_adjusted <= policy.fdr + EPSILON
    )
    return "drift" if drift else None


def _opened(
    p: PendingKey,
    d: Decision,
    policy: RegressionPolicy,
    as_candidate: bool,
    rule: Literal["drop", "drift"],
    difference: float,
    moved: str,
) -> Decision:
    """A regression (drop) or a drift: an incident opens, frozen on its known-good runs."""
    dropped = rule == "drop"
    kind = DecisionKind.REGRESSED if dropped else DecisionKind.DRIFTING
    why = (
        f"fell {-difference:.3f} (adjusted p={d.p_adjusted:.2g})"
        if dropped
        else _drift_text(p, policy)
    )
    if d.anchor is not None and d.anchor.drifted:
        why += f", corrected for a judge shift of {d.anchor.mean_difference:+.3f}"
    message = f"{why}: {moved}"
    if as_candidate:
        return replace(d, kind=kind, rule=rule, message=message)
    assert p.test is not None
    frozen = d.baseline_run_ids if dropped else p.reference_ids
    opened = Incident(p.run_id, "regression", p.test.mean_difference, frozen)
    return replace(
        d, kind=kind, rule=rule, message=message, transition="opened", incident=opened,
        cusum=0.0,
    )  # fmt: skip


def _judge_drift(
    p: PendingKey, d: Decision, as_candidate: bool, incident: Incident | None, moved: str
) -> Decision:
    """The anchors moved and the corrected fall is no regression: a judge-drift incident."""
    anchor = d.anchor
    assert anchor is not None
    message = (
        f"the judge moved {anchor.mean_difference:+.3f} on {anchor.n_paired} anchors "
        f"(adjusted p={anchor.p_adjusted:.2g}); the target's change is confounded ({moved})"
    )
    if as_candidate or (incident is not None and incident.kind == "judge_drift"):
        return replace(d, kind=DecisionKind.JUDGE_DRIFT, message=message, incident=incident)
    assert p.test is not None
    opened = Incident(p.run_id, "judge_drift", p.test.mean_difference, d.baseline_run_ids)
    return replace(
        d, kind=DecisionKind.JUDGE_DRIFT, message=message, transition="opened",
        incident=opened,
    )  # fmt: skip


def _no_regression(
    p: PendingKey,
    d: Decision,
    test: KeyTest,
    policy: RegressionPolicy,
    as_candidate: bool,
    incident: Incident | None,
    moved: str,
) -> Decision:
    """Nothing alerts: not significant, or too small to decide (and then maybe not a baseline)."""
    transition: Transition | None = None
    if incident is not None and incident.kind == "judge_drift" and not as_candidate:
        transition = "recovered"  # the judge is back; the key is decided normally again
    if d.kind is DecisionKind.INSUFFICIENT_EVIDENCE:
        message = (
            f"{_sample(test, 'paired cases')}: even a fall of every case could not reach "
            f"p <= {policy.fdr:g} ({moved})"
        )
    else:
        p_text = "" if d.p_adjusted is None else f", adjusted p={d.p_adjusted:.2g}"
        message = f"no regression: {test.mean_difference:+.3f}{p_text} ({moved})"
    # A feature too small to test whose point estimate fell by the minimum
    # effect is not a baseline: a small feature that collapsed must not become
    # its own yardstick. (A run the test cleared is, whatever its noise.)
    looks_down = (
        d.kind is DecisionKind.INSUFFICIENT_EVIDENCE
        and test.mean_difference <= -p.minimum + EPSILON
    )
    return replace(
        d, message=message, transition=transition, incident=None,
        known_good=not as_candidate and not looks_down,
    )  # fmt: skip


def _sample(test: KeyTest, cases: str = "cases") -> str:
    """What the test compared: paired cases, or two samples of traffic."""
    if isinstance(test, UnpairedTest):
        # The day-to-day sd, when there is one, is why a visible fall may not alert.
        wobble = f", runs' means sd {test.between_run_sd:.3f}" if test.between_run_sd else ""
        return f"{test.n_current} interactions (baseline: {test.n_baseline}{wobble})"
    return f"{test.n_paired} {cases}"


def _drift_text(p: PendingKey, policy: RegressionPolicy) -> str:
    assert p.drift is not None
    return (
        f"sustained decline over {p.drift.runs} runs: {p.drift.mean_difference:+.3f} against "
        f"the runs before it (CUSUM {p.base.cusum:.1f} >= {policy.cusum_h:g}, "
        f"adjusted p={p.drift_adjusted:.2g})"
    )


def _corrected_significant(test: KeyTest, anchor: PairedTest | None, difference: float) -> bool:
    """Whether the difference in differences is itself significant (normal approximation)."""
    if anchor is None or test.ci_low is None or anchor.ci_low is None:
        return False
    assert test.ci_high is not None
    assert anchor.ci_high is not None
    se_t = (test.ci_high - test.ci_low) / (2 * t_quantile_975(test.n_paired - 1))
    se_a = (anchor.ci_high - anchor.ci_low) / (2 * t_quantile_975(anchor.n_paired - 1))
    se = math.hypot(se_t, se_a)
    if se <= 0:
        return difference < 0
    return statistics.NormalDist().cdf(difference / se) <= 0.05
