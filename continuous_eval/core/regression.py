"""Decide, for one finished run, which feature x scorer keys got worse than their known-good level.

Everything here is pure: runs come in as :class:`RunScores` (with the stored
decision state of each earlier run), a :class:`RunDecision` comes out with one
:class:`Decision` per key of the current run, each saying what was found and
why, with the numbers behind it.

The rules, per key (feature x scorer) of the current run:

- **Known-good baseline.** The comparison is with the key's last
  ``baseline_window`` known-good runs: scheduled, complete, same fingerprint,
  and not in an open incident (a run that regressed, or was confounded by
  judge drift, never becomes a baseline). Each case is compared with its own
  scores in those runs (``core.paired_test``): paired, so errored cases
  cannot hide a drop, and per case, so a case that always passed and now fails
  weighs more than a flaky one.
- **Drop.** The exact test's one-sided p-value enters the run's family: every
  key of the run without an open incident. The family is controlled with
  Benjamini-Hochberg (or Holm) at ``fdr``; a key regresses when its adjusted p
  is at most ``fdr`` AND its paired mean fell by at least the scorer's
  ``min_effect``. A key whose test cannot reach ``fdr`` even if every case
  fell below its whole history says ``insufficient_evidence``; a total
  collapse of a small stable feature can still reach it (10 cases that passed
  in 7 runs: p = 8**-4 when 4 fail).
- **Drift.** A one-sided CUSUM over the runs' standardised evidence (the exact
  test's z against the drift reference, whose scale comes from the cases' own
  variance): S = max(0, S - z - k). While S stays above 0 the runs of that
  excursion are compared with the ``drift_reference_runs`` known-good runs
  from before it began, so a slow decline cannot drag its own baseline down.
  The CUSUM only says when to look: at S >= ``cusum_h`` the excursion's runs
  are pooled and tested against the reference (``core.baselines.drift_test``,
  the reference's own noise included, Bonferroni over the runs looked at),
  and that p-value joins the run's family. The key drifts when it survives
  the family's control and the pooled fall is at least half the minimum
  effect. It also catches a step drop that was missed on its day.
- **Incidents.** A drop or drift opens an incident for the key. While it is
  open the key is compared with the same known-good runs (the incident's runs
  are never baselines): a run still down says ``still_regressed`` and alerts
  nobody; a further fall of at least ``min_effect`` below the worst level
  alerted says ``regressed`` again (``worsened``); a run back within half the
  minimum effect of the known-good level closes it (``recovered``). A
  changed fingerprint resets the baseline and closes it without a recovery.
- **Judge canaries.** A key with anchor scores (frozen outputs re-judged by
  the same judge every run) tests them the same way, two-sided, in a family of
  their own. A shift of at least half the minimum effect is ``judge_drift``:
  the target's fall is corrected by the anchors' (difference in differences)
  and alerts as a regression only if the corrected fall is itself large and
  significant; otherwise the key says ``judge_drift`` and a judge-drift
  incident opens.
- **Validity.** A manual run is decided as a candidate (no incidents, never a
  baseline); an incomplete run or key says ``incomplete``.

Boundaries count: a fall of exactly the minimum effect alerts; every
threshold comparison allows ``EPSILON``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from continuous_eval.core.baselines import (
    DriftTest,
    cusum,
    drift_test,
    evidence,
    key_complete,
    select,
)
from continuous_eval.core.baselines import prior as prior_state
from continuous_eval.core.decisions import (
    ALERTING_KINDS,
    DEFAULT_POLICY,
    EPSILON,
    JUDGE_DEFAULTS,
    PASS_RATE_DEFAULTS,
    AnchorCheck,
    Decision,
    DecisionKind,
    Incident,
    IncidentKind,
    KeyState,
    RegressionPolicy,
    RunDecision,
    RunScores,
    Scale,
    ScoreKey,
    ScorerPolicy,
    Transition,
    infer_scale,
)
from continuous_eval.core.error_control import adjust
from continuous_eval.core.models import CaseDrop, ScoreAggregate
from continuous_eval.core.paired_test import PairedTest, paired_test, t_quantile_975
from continuous_eval.core.suite import ANCHOR_SUFFIX

__all__ = [
    "ALERTING_KINDS",
    "ANCHOR_SUFFIX",
    "DEFAULT_POLICY",
    "EPSILON",
    "JUDGE_DEFAULTS",
    "PASS_RATE_DEFAULTS",
    "AnchorCheck",
    "Decision",
    "DecisionKind",
    "Incident",
    "IncidentKind",
    "KeyState",
    "RegressionPolicy",
    "RunDecision",
    "RunScores",
    "Scale",
    "ScoreKey",
    "ScorerPolicy",
    "Transition",
    "decide_run",
    "infer_scale",
    "split_anchors",
]


def split_anchors(
    aggregates: Sequence[ScoreAggregate], case_scores: Mapping[ScoreKey, Mapping[str, float]]
) -> tuple[
    list[ScoreAggregate], dict[ScoreKey, Mapping[str, float]], dict[ScoreKey, Mapping[str, float]]
]:
    """Separate a run's anchor results from its own: (aggregates, case scores, anchor scores).

    Anchors are not keys of their own; they are the judge canary of the
    feature they belong to, under the same scorer name. An anchor's id is
    prefixed with its set's fingerprint, so anchors pair only with runs that
    judged the same frozen outputs with the same judge: a replaced anchor set
    starts its own history instead of being read as the judge moving.
    """
    own = [a for a in aggregates if not a.feature.endswith(ANCHOR_SUFFIX)]
    fingerprints = {
        (a.feature, a.scorer): a.fingerprint
        for a in aggregates
        if a.feature.endswith(ANCHOR_SUFFIX)
    }
    cases: dict[ScoreKey, Mapping[str, float]] = {}
    anchors: dict[ScoreKey, Mapping[str, float]] = {}
    for (feature, scorer), scores in case_scores.items():
        if feature.endswith(ANCHOR_SUFFIX):
            prefix = fingerprints.get((feature, scorer), "")
            anchors[(feature[: -len(ANCHOR_SUFFIX)], scorer)] = {
                f"{prefix}/{case_id}": score for case_id, score in scores.items()
            }
        else:
            cases[(feature, scorer)] = scores
    return own, cases, anchors


@dataclass(slots=True)
class _Pending:
    """A key between the per-key step and the family step."""

    base: Decision
    run_id: str
    reference_ids: tuple[str, ...] = ()
    """The drift reference's runs: a drift incident is measured against them."""
    test: PairedTest | None = None
    minimum: float = 0.0
    in_family: bool = False
    drift: DriftTest | None = None
    """The pooled excursion test, when the CUSUM reached its threshold."""
    drift_adjusted: float | None = None
    anchor_test: PairedTest | None = None
    prior: KeyState | None = None
    drop_p: float | None = None


def decide_run(
    current: RunScores,
    history: Sequence[RunScores],
    policy: RegressionPolicy = DEFAULT_POLICY,
    *,
    candidate: bool | None = None,
) -> RunDecision:
    """Decide every key of ``current`` against the earlier runs.

    Args:
        current: the run just finished, with its per-case (and anchor) scores.
        history: earlier runs of the suite, newest first, with their stored
            states and the per-case scores of the runs that may be baselines.
        candidate: decide as a candidate (default: when the run is manual).

    Raises:
        ValueError: an earlier run belongs to another suite, is the current
            run, or appears twice. These are the caller's bugs, not data.
    """
    _validate_history(current, history)
    as_candidate = current.run_type != "scheduled" if candidate is None else candidate
    keys = sorted(current.aggregates)
    if current.completeness + EPSILON < policy.completeness_floor:
        message = (
            f"run completeness {current.completeness:.3f} is below the floor "
            f"{policy.completeness_floor:.3f}"
        )
        skipped = tuple(
            _carry(Decision(k[0], k[1], DecisionKind.INCOMPLETE, message), prior_state(k, history))
            for k in keys
        )
        return RunDecision(
            current.suite, current.run_id, as_candidate, policy.correction, 0, skipped
        )
    pending = [_decide_key(current, key, history, policy, as_candidate) for key in keys]
    # One family: every key's drop test and every triggered drift test.
    drops = [p for p in pending if p.in_family and p.drop_p is not None]
    drifts = [p for p in pending if p.drift is not None]
    adjusted = adjust(
        [
            *(p.drop_p for p in drops if p.drop_p is not None),
            *(p.drift.p_value for p in drifts if p.drift),
        ],
        policy.correction,
    )
    for p, p_adj in zip(drops, adjusted[: len(drops)], strict=True):
        p.base = replace(p.base, p_adjusted=p_adj)
    for p, p_adj in zip(drifts, adjusted[len(drops) :], strict=True):
        p.drift_adjusted = p_adj
    family = [*drops, *drifts]
    anchored = [p for p in pending if p.anchor_test is not None]
    anchor_adjusted = adjust(
        [p.anchor_test.p_two_sided for p in anchored if p.anchor_test is not None],
        policy.correction,
    )
    for p, a_adj in zip(anchored, anchor_adjusted, strict=True):
        assert p.anchor_test is not None
        shift = p.anchor_test.mean_difference
        drifted = a_adj <= policy.fdr + EPSILON and abs(shift) + EPSILON >= p.minimum / 2
        check = AnchorCheck(
            p.anchor_test.n_paired, shift, p.anchor_test.p_two_sided, a_adj, drifted
        )
        p.base = replace(p.base, anchor=check)
    decisions = tuple(_conclude(p, policy, as_candidate) for p in pending)
    return RunDecision(
        current.suite, current.run_id, as_candidate, policy.correction, len(family), decisions
    )


def _validate_history(current: RunScores, history: Sequence[RunScores]) -> None:
    seen = {current.run_id}
    for run in history:
        if run.suite != current.suite:
            raise ValueError(
                f"run {run.run_id} belongs to suite {run.suite!r}, not {current.suite!r}"
            )
        if run.run_id in seen:
            raise ValueError(f"run {run.run_id} appears twice (or is the current run)")
        seen.add(run.run_id)


def _carry(decision: Decision, prior: KeyState | None) -> Decision:
    """An undecided run keeps the key's incident and CUSUM as they were."""
    if prior is None:
        return decision
    return replace(decision, incident=prior.incident, cusum=prior.cusum)


def _decide_key(
    current: RunScores,
    key: ScoreKey,
    history: Sequence[RunScores],
    policy: RegressionPolicy,
    as_candidate: bool,
) -> _Pending:
    agg = current.aggregates[key]
    prior = None if as_candidate else prior_state(key, history)

    def make(kind: DecisionKind, message: str, **fields: object) -> _Pending:
        decision = Decision(key[0], key[1], kind, message, **fields)  # type: ignore[arg-type]
        return _Pending(decision, current.run_id, prior=prior)

    if agg.mean is None:
        return _pending_carry(make(DecisionKind.NO_SCORES, "no case was scored"), prior)
    if not key_complete(agg, policy.completeness_floor):
        message = f"{agg.n} scored, {agg.errors} errors: below the completeness floor"
        return _pending_carry(make(DecisionKind.INCOMPLETE, message), prior)

    chosen = select(current, key, history, policy, candidate=as_candidate)
    if not chosen.pool:
        if chosen.comparable and prior is not None and prior.incident is not None:
            # Every comparable run is in the incident: the known-good runs are
            # older than the history read. Still down, as far as anyone knows.
            message = "incident open; its known-good runs are older than the history read"
            return _pending_carry(make(DecisionKind.STILL_REGRESSED, message), prior)
        if chosen.reset_by is not None:
            message = f"fingerprint changed since run {chosen.reset_by.run_id}: baseline reset"
            pending = make(DecisionKind.BASELINE_RESET, message, current=agg.mean, known_good=True)
            if prior is not None and prior.incident is not None:
                pending.base = replace(pending.base, transition="reset")
            return pending
        message = (
            "no known-good scheduled run to compare with"
            if as_candidate
            else "no known-good scheduled run measured this yet: this run starts the baseline"
        )
        return make(DecisionKind.NO_BASELINE, message, current=agg.mean, known_good=True)

    pool = chosen.pool
    cur_cases = current.case_scores.get(key, {})
    cases = evidence(cur_cases, pool, key, anchors=False)
    test = paired_test(cases)
    observed = [agg.mean, *cur_cases.values(), *(run.aggregates[key].mean or 0 for run in pool)]
    minimum = policy.for_scorer(key[1], observed).min_effect
    ids = tuple(run.run_id for run in pool)
    if test is None:
        message = "no case was scored both now and in the known-good runs"
        return make(
            DecisionKind.INSUFFICIENT_EVIDENCE,
            message,
            current=agg.mean,
            baseline_run_ids=ids,
            known_good=True,
        )
    fallen = tuple(
        sorted(
            (CaseDrop(c.case_id, c.baseline, c.current) for c in cases if c.difference < -EPSILON),
            key=lambda d: (d.after - d.before, d.case_id),
        )
    )
    numbers: dict[str, object] = {
        "current": test.current_mean,
        "baseline": test.baseline_mean,
        "mean_difference": test.mean_difference,
        "ci_low": test.ci_low,
        "ci_high": test.ci_high,
        "p_value": test.p_lower,
        "n_paired": test.n_paired,
        "baseline_run_ids": ids,
        "fallen": fallen,
    }
    pending = make(DecisionKind.NOT_SIGNIFICANT, "", **numbers)
    pending.test = test
    pending.reference_ids = tuple(run.run_id for run in chosen.reference)
    pending.minimum = minimum
    cur_anchors = current.anchor_scores.get(key)
    if cur_anchors:
        pending.anchor_test = paired_test(evidence(cur_anchors, pool, key, anchors=True))

    open_regression = (
        prior is not None and prior.incident is not None and prior.incident.kind == "regression"
    )
    if not open_regression:
        if test.p_floor > policy.fdr + EPSILON:
            pending.base = replace(pending.base, kind=DecisionKind.INSUFFICIENT_EVIDENCE)
        else:
            pending.in_family = True
            pending.drop_p = test.p_lower
        statistic, _ = cusum(chosen, key, cur_cases, test, policy)
        pending.base = replace(pending.base, cusum=statistic)
        if not as_candidate and statistic + EPSILON >= policy.cusum_h:
            found = drift_test(chosen, key, cur_cases)
            if found is not None and found.mean_difference <= -minimum / 2 + EPSILON:
                pending.drift = found
    return pending


def _pending_carry(pending: _Pending, prior: KeyState | None) -> _Pending:
    pending.base = _carry(pending.base, prior)
    return pending


def _conclude(p: _Pending, policy: RegressionPolicy, as_candidate: bool) -> Decision:
    d = p.base
    test = p.test
    if test is None:
        return d if not as_candidate else replace(d, known_good=False, transition=None)
    minimum = p.minimum
    incident = p.prior.incident if p.prior is not None else None
    anchor = d.anchor
    shift = anchor.mean_difference if anchor is not None and anchor.drifted else 0.0
    difference = test.mean_difference - shift
    moved = f"{test.baseline_mean:.3f} -> {test.current_mean:.3f} over {test.n_paired} cases"
    judged = anchor is not None and anchor.drifted
    # Under judge drift the run's evidence is the judge's as much as the
    # product's: the CUSUM adds none of it, and only a corrected fall alerts.
    drift = (
        not judged
        and p.drift is not None
        and p.drift_adjusted is not None
        and p.drift_adjusted <= policy.fdr + EPSILON
    )
    if judged:
        d = replace(d, corrected_difference=difference, cusum=0.0)

    if incident is not None and incident.kind == "regression" and not as_candidate:
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

    significant = d.p_adjusted is not None and d.p_adjusted <= policy.fdr + EPSILON
    if judged:
        significant = significant and _corrected_significant(test, p.anchor_test, difference)
    dropped = significant and difference <= -minimum + EPSILON
    if dropped or drift:
        rule: Literal["drop", "drift"] = "drop" if dropped else "drift"
        kind = DecisionKind.REGRESSED if dropped else DecisionKind.DRIFTING
        why = (
            f"fell {-difference:.3f} (adjusted p={d.p_adjusted:.2g})"
            if dropped
            else _drift_text(p, policy)
        )
        if judged and anchor is not None:
            why += f", corrected for a judge shift of {anchor.mean_difference:+.3f}"
        message = f"{why}: {moved}"
        if as_candidate:
            return replace(d, kind=kind, rule=rule, message=message)
        frozen = d.baseline_run_ids if dropped else p.reference_ids
        opened = Incident(p.run_id, "regression", test.mean_difference, frozen)
        return replace(
            d, kind=kind, rule=rule, message=message, transition="opened", incident=opened,
            cusum=0.0,
        )  # fmt: skip
    if judged and anchor is not None:
        message = (
            f"the judge moved {anchor.mean_difference:+.3f} on {anchor.n_paired} anchors "
            f"(adjusted p={anchor.p_adjusted:.2g}); the target's change is confounded ({moved})"
        )
        if as_candidate or (incident is not None and incident.kind == "judge_drift"):
            return replace(d, kind=DecisionKind.JUDGE_DRIFT, message=message, incident=incident)
        opened = Incident(p.run_id, "judge_drift", test.mean_difference, d.baseline_run_ids)
        return replace(
            d, kind=DecisionKind.JUDGE_DRIFT, message=message, transition="opened",
            incident=opened,
        )  # fmt: skip
    transition: Transition | None = None
    if incident is not None and incident.kind == "judge_drift" and not as_candidate:
        transition = "recovered"  # the judge is back; the key is decided normally again
    if d.kind is DecisionKind.INSUFFICIENT_EVIDENCE:
        message = (
            f"{test.n_paired} paired cases: even a fall of every case could not reach "
            f"p <= {policy.fdr:g} ({moved})"
        )
    else:
        p_text = "" if d.p_adjusted is None else f", adjusted p={d.p_adjusted:.2g}"
        message = f"no regression: {test.mean_difference:+.3f}{p_text} ({moved})"
    # A feature too small to test whose point estimate fell by the minimum
    # effect is not a baseline: a small feature that collapsed must not become
    # its own yardstick. (A run the test cleared is, whatever its noise.)
    looks_down = (
        d.kind is DecisionKind.INSUFFICIENT_EVIDENCE and test.mean_difference <= -minimum + EPSILON
    )
    return replace(
        d, message=message, transition=transition, incident=None,
        known_good=not as_candidate and not looks_down,
    )  # fmt: skip


def _drift_text(p: _Pending, policy: RegressionPolicy) -> str:
    assert p.drift is not None
    return (
        f"sustained decline over {p.drift.runs} runs: {p.drift.mean_difference:+.3f} against "
        f"the runs before it (CUSUM {p.base.cusum:.1f} >= {policy.cusum_h:g}, "
        f"adjusted p={p.drift_adjusted:.2g})"
    )


def _corrected_significant(test: PairedTest, anchor: PairedTest | None, difference: float) -> bool:
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
