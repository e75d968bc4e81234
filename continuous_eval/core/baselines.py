"""Which earlier runs a key is compared with: the known-good baseline and the drift reference.

Pure. A key's comparable history is its earlier measurements in scheduled,
complete runs, newest first, up to the first one taken under another
fingerprint (a changed dataset, rubric, judge model or target resets the
baseline). Of those, the known-good runs are the ones whose stored decision
says so: never a run in an open incident, so a regression can never become
the baseline it is compared with, and the baseline cannot ratchet down.

The baseline pool is the newest ``baseline_window`` known-good runs. The
sequential detector's reference is the pool from before the current CUSUM
excursion began (the run of known-good runs whose stored CUSUM is above 0),
so a slow decline that has not alerted yet is compared with where it started,
not with itself; the reference stays fixed while the excursion lasts, so the
statistic carries on from the previous run's stored value.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from continuous_eval.core.decisions import (
    EPSILON,
    Incident,
    KeyState,
    RegressionPolicy,
    RunScores,
    ScoreKey,
)
from continuous_eval.core.models import ScoreAggregate
from continuous_eval.core.paired_test import CaseEvidence, PairedTest, paired_test
from continuous_eval.core.subset_test import CaseRuns, subset_p_lower


@dataclass(frozen=True, slots=True)
class Selection:
    """The earlier runs one key of the current run is decided against."""

    comparable: tuple[RunScores, ...]
    """Usable measurements with the current fingerprint, newest first."""
    reset_by: RunScores | None
    """The newest usable run with another fingerprint, where the history stops."""
    pool: tuple[RunScores, ...]
    """The baseline: the newest known-good comparable runs."""
    excursion: tuple[RunScores, ...]
    """Known-good runs of the current CUSUM excursion, newest first (their stored
    CUSUM is above 0); only the newest one's value and where it began are read."""
    reference: tuple[RunScores, ...]
    """The known-good runs from before the excursion (the pool when there is none)."""


def key_complete(agg: ScoreAggregate, floor: float) -> bool:
    """Whether a key's scored share of what it attempted reaches the completeness floor."""
    attempted = agg.n + agg.errors
    return attempted == 0 or agg.n / attempted + EPSILON >= floor


def usable(run: RunScores, key: ScoreKey, floor: float) -> bool:
    """Whether an earlier run measured the key well enough to be compared with."""
    agg = run.aggregates.get(key)
    return (
        run.run_type == "scheduled"
        and run.completeness + EPSILON >= floor
        and agg is not None
        and agg.mean is not None
        and key_complete(agg, floor)
    )


def state(run: RunScores, key: ScoreKey) -> KeyState:
    """A run's stored state for the key; a run decided before decisions were stored is good."""
    if run.states is None:
        return KeyState(known_good=True)
    return run.states.get(key, KeyState(known_good=False))


def prior(key: ScoreKey, history: Sequence[RunScores]) -> KeyState | None:
    """The newest stored state of the key in a scheduled run: where its incident lives."""
    for run in history:
        if run.run_type == "scheduled" and run.states is not None and key in run.states:
            return run.states[key]
    return None


def incident_baselines(states_newest_first: Iterable[Mapping[ScoreKey, KeyState]]) -> set[str]:
    """The frozen known-good runs of the incidents still open, over runs' states newest first.

    Each key's newest state decides whether its incident is open: a key that
    recovered since no longer holds on to the runs it was measured against.
    """
    newest: dict[ScoreKey, KeyState] = {}
    for states in states_newest_first:
        for key, found in states.items():
            newest.setdefault(key, found)
    return {
        run_id
        for found in newest.values()
        if found.incident is not None
        for run_id in found.incident.baseline_run_ids
    }


def select(
    current: RunScores,
    key: ScoreKey,
    history: Sequence[RunScores],
    policy: RegressionPolicy,
    *,
    candidate: bool = False,
) -> Selection:
    """Choose the baseline pool and the drift reference of one key.

    While the key has an open incident, both are the incident's frozen
    known-good runs (those of them still in ``history``): a drift incident
    is measured against where the decline started, not against the runs of
    the excursion that led to it.
    """
    fingerprint = current.aggregates[key].fingerprint
    comparable: list[RunScores] = []
    reset_by: RunScores | None = None
    for run in history:
        if not usable(run, key, policy.completeness_floor):
            continue
        if run.aggregates[key].fingerprint != fingerprint:
            reset_by = run
            break
        comparable.append(run)
    eligible = [run for run in comparable if state(run, key).known_good]
    window = policy.baseline_window
    incident = None if candidate else _open_incident(key, history)
    if incident is not None and incident.baseline_run_ids:
        frozen = set(incident.baseline_run_ids)
        pool = tuple(run for run in comparable if run.run_id in frozen)
        if pool:
            return Selection(tuple(comparable), reset_by, pool, (), pool)
    excursion: list[RunScores] = []
    for run in eligible:
        if state(run, key).cusum <= EPSILON or len(excursion) >= policy.excursion_limit:
            break
        excursion.append(run)
    depth = policy.drift_reference_runs
    reference = eligible[len(excursion) : len(excursion) + depth]
    if not reference:
        excursion, reference = [], eligible[:depth]
    return Selection(
        tuple(comparable), reset_by, tuple(eligible[:window]), tuple(excursion), tuple(reference)
    )


def _open_incident(key: ScoreKey, history: Sequence[RunScores]) -> Incident | None:
    found = prior(key, history)
    return None if found is None else found.incident


def needed_runs(
    current: RunScores,
    history: Sequence[RunScores],
    policy: RegressionPolicy,
    *,
    candidate: bool = False,
) -> set[str]:
    """The earlier runs whose per-case scores the decisions will read.

    The store reads every earlier run's aggregates and states (small), then
    the case scores of only these (large).
    """
    needed: set[str] = set()
    for key in current.aggregates:
        chosen = select(current, key, history, policy, candidate=candidate)
        needed.update(run.run_id for run in (*chosen.pool, *chosen.reference))
    return needed


def evidence(
    scores: Mapping[str, float], pool: Sequence[RunScores], key: ScoreKey, *, anchors: bool
) -> list[CaseEvidence]:
    """Pair each case scored now with its scores in the pool (cases never scored there drop out)."""
    history: dict[str, list[float]] = {}
    for run in pool:
        source = run.anchor_scores if anchors else run.case_scores
        for case_id, score in source.get(key, {}).items():
            if case_id in scores:
                history.setdefault(case_id, []).append(score)
    return [
        CaseEvidence(case_id, scores[case_id], tuple(values))
        for case_id, values in sorted(history.items())
    ]


def cusum(
    selection: Selection,
    key: ScoreKey,
    current_scores: Mapping[str, float],
    test: PairedTest,
    policy: RegressionPolicy,
) -> tuple[float, float]:
    """Return the CUSUM after this run and the paired difference against its reference.

    Without an excursion the reference is the pool and the statistic starts
    from 0. During one, the reference is fixed (the known-good runs from
    before it began), so the statistic carries on from the previous run's
    stored value: S = max(0, S_previous - z - k), with z this run's evidence
    against that same reference.
    """
    k = policy.cusum_k
    previous = state(selection.excursion[0], key).cusum if selection.excursion else 0.0
    same = [r.run_id for r in selection.reference] == [r.run_id for r in selection.pool]
    # Until the history holds more known-good runs than the pool, they are the same runs.
    now = (
        test
        if same
        else paired_test(evidence(current_scores, selection.reference, key, anchors=False))
    )
    if now is None:
        return previous, test.mean_difference
    return max(0.0, previous - now.z - k), now.mean_difference


@dataclass(frozen=True, slots=True)
class DriftTest:
    """The excursion's runs pooled and compared with the reference, case by case."""

    runs: int
    """Runs pooled: the current one and those of the excursion."""
    mean_difference: float
    """Mean over cases of (mean of the pooled runs - mean of the reference)."""
    p_value: float
    """One-sided p that the pooled runs sit this low by chance, times the number of
    runs pooled (the CUSUM looked once per run: Bonferroni over its looks)."""


def drift_test(
    selection: Selection, key: ScoreKey, current_scores: Mapping[str, float]
) -> DriftTest | None:
    """Test whether the runs of the excursion, together, fell below the reference.

    Under no change the pooled runs' scores of a case are a random subset of
    the case's values (pooled and reference alike), so the sum of the pooled
    scores has an exact null distribution (``core.subset_test``): exact, not
    normal, because a feature where one flaky case is all that varies has a
    sum far from normal. The reference's own noise is in that distribution,
    which is why a CUSUM alarm must pass this test before it alerts.
    """
    recent_runs = [current_scores, *(run.case_scores.get(key, {}) for run in selection.excursion)]
    cases: list[CaseRuns] = []
    differences = []
    for case_id in current_scores:
        recent = tuple(scores[case_id] for scores in recent_runs if case_id in scores)
        before = tuple(
            run.case_scores[key][case_id]
            for run in selection.reference
            if case_id in run.case_scores.get(key, {})
        )
        if not before:
            continue
        cases.append(CaseRuns(recent, before))
        differences.append(statistics.fmean(recent) - statistics.fmean(before))
    if not differences:
        return None
    # The CUSUM looked once per run of the excursion: Bonferroni over those looks.
    looks = len(recent_runs)
    p = subset_p_lower(cases)
    return DriftTest(looks, statistics.fmean(differences), min(1.0, p * looks))
