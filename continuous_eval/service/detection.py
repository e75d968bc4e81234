"""Feed the pure detector from the store: the run, its known-good history, the case scores it pairs.

Two reads: every recent scheduled run's aggregates and stored decision states
(small), then the per-case scores of only the runs the decisions will pair
with (``core.baselines.needed_runs``), so a suite of 150 keys reads a handful
of runs' results, not forty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from continuous_eval.core.baselines import incident_baselines, needed_runs
from continuous_eval.core.models import RunRecord, ScoreAggregate
from continuous_eval.core.regression import (
    DEFAULT_POLICY,
    KeyState,
    RegressionPolicy,
    RunDecision,
    RunScores,
    ScoreKey,
    decide_run,
    split_anchors,
)
from continuous_eval.errors import RunNotFound
from continuous_eval.ports import HistoryReader
from continuous_eval.service.alerts import Detect


def history_limit(policy: RegressionPolicy) -> int:
    """How many earlier scheduled runs are read: a pool, an excursion and its reference."""
    reference = max(policy.baseline_window, policy.drift_reference_runs)
    return policy.excursion_limit + reference + policy.baseline_window


def _scores(
    store: HistoryReader,
    run: RunRecord,
    aggregates: Sequence[ScoreAggregate],
    *,
    with_cases: bool,
    states: Mapping[ScoreKey, KeyState] | None = None,
    as_scheduled: bool = False,
) -> RunScores:
    own, cases, anchors = split_anchors(aggregates, store.case_scores(run.id) if with_cases else {})
    return RunScores.build(
        run.id,
        run.suite,
        "scheduled" if as_scheduled else run.run_type,
        run.completeness,
        own,
        cases,
        anchor_scores=anchors,
        states=states,
    )


def decide_finished_run(
    store: HistoryReader,
    run: RunRecord,
    aggregates: Sequence[ScoreAggregate],
    policy: RegressionPolicy = DEFAULT_POLICY,
    *,
    candidate: bool | None = None,
    baseline_run_id: str | None = None,
) -> RunDecision:
    """Decide every key of ``run`` against its known-good history (or one given baseline).

    Args:
        candidate: decide as a candidate (no incidents, never a baseline);
            by default a manual run is one and a scheduled run is not.
        baseline_run_id: compare with this one run only, taken as known-good
            whatever its type (the CI gate's ``--baseline``); implies candidate.

    Raises:
        RunNotFound: the baseline run does not exist.
        ValueError: the run has not started, or the baseline is the run itself
            or another suite's.
    """
    if run.started_at is None:
        raise ValueError(f"run {run.id} has not started")
    if baseline_run_id is not None:
        if baseline_run_id == run.id:
            raise ValueError("a run cannot be its own baseline")
        base = store.get_run(baseline_run_id)
        if base.suite != run.suite:
            raise ValueError(f"baseline run {baseline_run_id} belongs to suite {base.suite!r}")
        history = [
            _scores(store, base, store.get_aggregates(base.id), with_cases=True, as_scheduled=True)
        ]
        current = _scores(store, run, aggregates, with_cases=True)
        return decide_run(current, history, policy, candidate=True)

    earlier = [
        r
        for r in store.scheduled_history(
            run.suite, before=run.started_at, limit=history_limit(policy)
        )
        if r.id != run.id
    ]
    states = store.decision_states([r.id for r in earlier])
    earlier = _with_incident_baselines(store, run, earlier, states)
    states.update(store.decision_states([r.id for r in earlier if r.id not in states]))
    bare = {r.id: (r, store.get_aggregates(r.id)) for r in earlier}
    current = _scores(store, run, aggregates, with_cases=True)
    outline = [
        _scores(store, r, aggs, with_cases=False, states=states.get(r.id))
        for r, aggs in bare.values()
    ]
    as_candidate = run.run_type != "scheduled" if candidate is None else candidate
    wanted = needed_runs(current, outline, policy, candidate=as_candidate)
    history = [
        _scores(store, r, aggs, with_cases=r.id in wanted, states=states.get(r.id))
        if r.id in wanted
        else scores
        for (r, aggs), scores in zip(bare.values(), outline, strict=True)
    ]
    return decide_run(current, history, policy, candidate=candidate)


def _with_incident_baselines(
    store: HistoryReader,
    run: RunRecord,
    earlier: list[RunRecord],
    states: Mapping[str, Mapping[ScoreKey, KeyState]],
) -> list[RunRecord]:
    """Add the frozen baseline runs of open incidents that are older than the history read.

    An incident can outlast the history window; it is still measured against
    the known-good runs it opened with.
    """
    have = {r.id for r in earlier}
    frozen = incident_baselines(states.get(r.id, {}) for r in earlier)
    missing = frozen - have - {run.id}
    if not missing:
        return earlier
    found = []
    for run_id in sorted(missing):
        try:
            found.append(store.get_run(run_id))
        except RunNotFound:
            continue  # deleted since; the incident falls back to the known-good runs read
    merged = [*earlier, *(r for r in found if r.suite == run.suite and r.started_at is not None)]
    return sorted(merged, key=lambda r: (r.started_at, r.id), reverse=True)


def make_detect(policies: Mapping[str, RegressionPolicy]) -> Detect:
    """Return the planner's ``detect``: the suite's policy, the store's history."""

    def detect(
        store: HistoryReader, run: RunRecord, aggregates: Sequence[ScoreAggregate]
    ) -> RunDecision:
        return decide_finished_run(store, run, aggregates, policies.get(run.suite, DEFAULT_POLICY))

    return detect
