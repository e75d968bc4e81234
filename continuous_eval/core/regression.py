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

from collections.abc import Mapping, Sequence
from dataclasses import replace

from continuous_eval.core.baselines import prior as prior_state
from continuous_eval.core.conclusion import conclude
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
from continuous_eval.core.key_decision import PendingKey, carry, decide_key
from continuous_eval.core.models import ScoreAggregate
from continuous_eval.core.suite import ANCHOR_SUFFIX, LABELS_SUFFIX

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

    Calibration results (``<feature>@labels``) are dropped from all three.

    Anchors are not keys of their own; they are the judge canary of the
    feature they belong to, under the same scorer name. An anchor's id is
    prefixed with its set's fingerprint, so anchors pair only with runs that
    judged the same frozen outputs with the same judge: a replaced anchor set
    starts its own history instead of being read as the judge moving.
    """
    # ``@labels`` results (judge calibration, ``core.agreement``) are no key at
    # all: a relabelled eval set or a judge that drifts from people is the
    # agreement alert's business, never a regression of the product.
    aggregates = [a for a in aggregates if not a.feature.endswith(LABELS_SUFFIX)]
    own = [a for a in aggregates if not a.feature.endswith(ANCHOR_SUFFIX)]
    fingerprints = {
        (a.feature, a.scorer): a.fingerprint
        for a in aggregates
        if a.feature.endswith(ANCHOR_SUFFIX)
    }
    cases: dict[ScoreKey, Mapping[str, float]] = {}
    anchors: dict[ScoreKey, Mapping[str, float]] = {}
    for (feature, scorer), scores in case_scores.items():
        if feature.endswith(LABELS_SUFFIX):
            continue
        if feature.endswith(ANCHOR_SUFFIX):
            prefix = fingerprints.get((feature, scorer), "")
            anchors[(feature[: -len(ANCHOR_SUFFIX)], scorer)] = {
                f"{prefix}/{case_id}": score for case_id, score in scores.items()
            }
        else:
            cases[(feature, scorer)] = scores
    return own, cases, anchors


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
            carry(Decision(k[0], k[1], DecisionKind.INCOMPLETE, message), prior_state(k, history))
            for k in keys
        )
        return RunDecision(
            current.suite, current.run_id, as_candidate, policy.correction, 0, skipped
        )
    pending = [decide_key(current, key, history, policy, as_candidate) for key in keys]
    family = _adjust_family(pending, policy)
    _check_anchors(pending, policy)
    decisions = tuple(conclude(p, policy, as_candidate) for p in pending)
    return RunDecision(
        current.suite, current.run_id, as_candidate, policy.correction, family, decisions
    )


def _adjust_family(pending: Sequence[PendingKey], policy: RegressionPolicy) -> int:
    """Adjust the run's family together: every key's drop test and every triggered drift test.

    Returns the family's size.
    """
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
    return len(drops) + len(drifts)


def _check_anchors(pending: Sequence[PendingKey], policy: RegressionPolicy) -> None:
    """The anchors' two-sided tests form a family of their own: did the judge move?"""
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
