"""The per-key step of ``core.regression.decide_run``: one key's test, before the family's.

Pure. For one feature x scorer of the current run it picks the known-good
pool (``core.baselines.select``), runs the exact paired test, the anchors'
test and the CUSUM, and leaves a :class:`PendingKey`: the numbers of the
decision and the p-values that join the run's family. What the key finally
says is ``core.conclusion.conclude``'s, once the family has been adjusted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Protocol

from continuous_eval.core.baselines import (
    DriftTest,
    Selection,
    cusum,
    drift_test,
    evidence,
    key_complete,
    select,
)
from continuous_eval.core.baselines import prior as prior_state
from continuous_eval.core.decisions import (
    EPSILON,
    Decision,
    DecisionKind,
    Incident,
    KeyState,
    RegressionPolicy,
    RunScores,
    ScoreKey,
)
from continuous_eval.core.models import CaseDrop
from continuous_eval.core.paired_test import PairedTest, paired_test
from continuous_eval.core.unpaired_baselines import (
    per_run,
    pooled,
    spread_runs,
    unpaired_cusum,
    unpaired_drift_test,
)
from continuous_eval.core.unpaired_test import UnpairedTest, unpaired_runs_test

KeyTest = PairedTest | UnpairedTest
"""A key's drop test: paired by case, or unpaired for a feature whose cases never repeat."""


@dataclass(slots=True)
class PendingKey:
    """A key between the per-key step and the family step."""

    base: Decision
    run_id: str
    reference_ids: tuple[str, ...] = ()
    """The drift reference's runs: a drift incident is measured against them."""
    test: KeyTest | None = None
    minimum: float = 0.0
    in_family: bool = False
    drift: DriftTest | None = None
    """The pooled excursion test, when the CUSUM reached its threshold."""
    drift_adjusted: float | None = None
    anchor_test: PairedTest | None = None
    prior: KeyState | None = None
    """The key's state as the newest scheduled run left it (none for a candidate)."""
    drop_p: float | None = None

    @property
    def incident(self) -> Incident | None:
        """The incident the key is in as this run begins, if any."""
        return None if self.prior is None else self.prior.incident


def carry(decision: Decision, prior: KeyState | None) -> Decision:
    """An undecided run keeps the key's incident and CUSUM as they were."""
    if prior is None:
        return decision
    return replace(decision, incident=prior.incident, cusum=prior.cusum)


def decide_key(
    current: RunScores,
    key: ScoreKey,
    history: Sequence[RunScores],
    policy: RegressionPolicy,
    as_candidate: bool,
) -> PendingKey:
    agg = current.aggregates[key]
    prior = None if as_candidate else prior_state(key, history)
    make = partial(_make, key, current.run_id, prior)
    if agg.mean is None:
        return _pending_carry(make(DecisionKind.NO_SCORES, "no case was scored"))
    if not key_complete(agg, policy.completeness_floor):
        message = f"{agg.n} scored, {agg.errors} errors: below the completeness floor"
        return _pending_carry(make(DecisionKind.INCOMPLETE, message))
    chosen = select(current, key, history, policy, candidate=as_candidate)
    if not chosen.pool:
        return _without_pool(chosen, agg.mean, prior, make, as_candidate)
    compare = _compared_unpaired if policy.unpaired(key[0]) else _compared
    pending = compare(current, key, agg.mean, chosen, policy, make)
    in_regression = pending.incident is not None and pending.incident.kind == "regression"
    if pending.test is not None and not in_regression:
        _sequential(pending, chosen, key, current.case_scores.get(key, {}), policy, as_candidate)
    return pending


class _Make(Protocol):
    def __call__(self, kind: DecisionKind, message: str, **fields: object) -> PendingKey: ...


def _make(
    key: ScoreKey,
    run_id: str,
    prior: KeyState | None,
    kind: DecisionKind,
    message: str,
    **fields: object,
) -> PendingKey:
    decision = Decision(key[0], key[1], kind, message, **fields)  # type: ignore[arg-type]
    return PendingKey(decision, run_id, prior=prior)


def _without_pool(
    chosen: Selection, mean: float, prior: KeyState | None, make: _Make, as_candidate: bool
) -> PendingKey:
    """A key with no known-good run to compare with: still down, reset, or a new baseline."""
    if chosen.comparable and prior is not None and prior.incident is not None:
        # Every comparable run is in the incident: the known-good runs are
        # older than the history read. Still down, as far as anyone knows.
        message = "incident open; its known-good runs are older than the history read"
        return _pending_carry(make(DecisionKind.STILL_REGRESSED, message))
    if chosen.reset_by is not None:
        message = f"fingerprint changed since run {chosen.reset_by.run_id}: baseline reset"
        pending = make(DecisionKind.BASELINE_RESET, message, current=mean, known_good=True)
        if prior is not None and prior.incident is not None:
            pending.base = replace(pending.base, transition="reset")
        return pending
    message = (
        "no known-good scheduled run to compare with"
        if as_candidate
        else "no known-good scheduled run measured this yet: this run starts the baseline"
    )
    return make(DecisionKind.NO_BASELINE, message, current=mean, known_good=True)


def _compared(
    current: RunScores,
    key: ScoreKey,
    mean: float,
    chosen: Selection,
    policy: RegressionPolicy,
    make: _Make,
) -> PendingKey:
    """The exact test of the current cases against the pool, with its numbers and anchors."""
    pool = chosen.pool
    cur_cases = current.case_scores.get(key, {})
    cases = evidence(cur_cases, pool, key, anchors=False)
    test = paired_test(cases)
    ids = tuple(run.run_id for run in pool)
    if test is None:
        message = "no case was scored both now and in the known-good runs"
        return make(
            DecisionKind.INSUFFICIENT_EVIDENCE,
            message,
            current=mean,
            baseline_run_ids=ids,
            known_good=True,
        )
    drops = (CaseDrop(c.case_id, c.baseline, c.current) for c in cases if c.difference < -EPSILON)
    observed = [mean, *cur_cases.values(), *(run.aggregates[key].mean or 0 for run in pool)]
    minimum = policy.for_scorer(key[1], observed).min_effect
    return _tested(make, test, drops, current, key, chosen, minimum)


def _tested(
    make: _Make,
    test: KeyTest,
    drops: Iterable[CaseDrop],
    current: RunScores,
    key: ScoreKey,
    chosen: Selection,
    minimum: float,
) -> PendingKey:
    """A key's tested decision, not significant until the family says otherwise: its
    numbers, the cases that fell (worst first), and its anchors' own test."""
    fallen = tuple(sorted(drops, key=lambda d: (d.after - d.before, d.case_id)))
    pending = make(
        DecisionKind.NOT_SIGNIFICANT,
        "",
        current=test.current_mean,
        baseline=test.baseline_mean,
        mean_difference=test.mean_difference,
        ci_low=test.ci_low,
        ci_high=test.ci_high,
        p_value=test.p_lower,
        n_paired=test.n_paired,
        baseline_run_ids=tuple(run.run_id for run in chosen.pool),
        fallen=fallen,
    )
    pending.test = test
    pending.reference_ids = tuple(run.run_id for run in chosen.reference)
    pending.minimum = minimum
    cur_anchors = current.anchor_scores.get(key)
    if cur_anchors:
        # Anchors are frozen outputs with fixed ids: they pair, online feature or not.
        pending.anchor_test = paired_test(evidence(cur_anchors, chosen.pool, key, anchors=True))
    return pending


def _compared_unpaired(
    current: RunScores,
    key: ScoreKey,
    mean: float,
    chosen: Selection,
    policy: RegressionPolicy,
    make: _Make,
) -> PendingKey:
    """The unpaired test of the current sample against the pool's scores, pooled.

    An online feature's cases are fresh traffic every run: nothing pairs, so
    the evidence is the two samples (``core.unpaired_baselines``). The
    "fallen" cases are the current interactions scored below the baseline's
    mean, worst first, so a person can open the traces behind a fall.
    """
    pool = chosen.pool
    cur_cases = current.case_scores.get(key, {})
    baseline = pooled(pool, key)
    test = unpaired_runs_test(
        [list(cur_cases.values())],
        per_run(pool, key),
        spread=spread_runs(chosen, key),
        min_samples=policy.min_samples,
    )
    ids = tuple(run.run_id for run in pool)
    observed = [mean, *cur_cases.values(), *(run.aggregates[key].mean or 0 for run in pool)]
    minimum = policy.for_scorer(key[1], observed).min_effect
    if test is None:
        message = (
            f"{len(cur_cases)} interactions scored now, {len(baseline)} in the known-good runs: "
            f"an online key needs {policy.min_samples} on each side"
        )
        # A sample too small to test whose mean fell by the minimum effect is
        # not a baseline (as for a paired feature too small to test).
        fell = bool(baseline) and mean - sum(baseline) / len(baseline) <= -minimum + EPSILON
        return make(
            DecisionKind.INSUFFICIENT_EVIDENCE,
            message,
            current=mean,
            baseline_run_ids=ids,
            known_good=not fell,
        )
    drops = (
        CaseDrop(case_id, test.baseline_mean, score)
        for case_id, score in cur_cases.items()
        if score < test.baseline_mean - EPSILON
    )
    return _tested(make, test, drops, current, key, chosen, minimum)


def _sequential(
    pending: PendingKey,
    chosen: Selection,
    key: ScoreKey,
    cur_cases: Mapping[str, float],
    policy: RegressionPolicy,
    as_candidate: bool,
) -> None:
    """Enter the drop test in the family (or say it cannot decide) and run the CUSUM."""
    test = pending.test
    assert test is not None
    if test.p_floor > policy.fdr + EPSILON:
        pending.base = replace(pending.base, kind=DecisionKind.INSUFFICIENT_EVIDENCE)
    else:
        pending.in_family = True
        pending.drop_p = test.p_lower
    if isinstance(test, UnpairedTest):
        statistic = unpaired_cusum(chosen, key, cur_cases, test, policy)
    else:
        statistic, _ = cusum(chosen, key, cur_cases, test, policy)
    pending.base = replace(pending.base, cusum=statistic)
    if not as_candidate and statistic + EPSILON >= policy.cusum_h:
        found = (
            unpaired_drift_test(chosen, key, cur_cases, policy)
            if isinstance(test, UnpairedTest)
            else drift_test(chosen, key, cur_cases)
        )
        if found is not None and found.mean_difference <= -pending.minimum / 2 + EPSILON:
            pending.drift = found


def _pending_carry(pending: PendingKey) -> PendingKey:
    """An undecided key keeps the incident and CUSUM it came in with (see ``carry``)."""
    pending.base = carry(pending.base, pending.prior)
    return pending
