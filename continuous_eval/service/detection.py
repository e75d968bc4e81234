"""Feed the pure detector from the store: the run, its history and the case scores it pairs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from continuous_eval.core.models import RunRecord, ScoreAggregate
from continuous_eval.core.regression import (
    DEFAULT_POLICY,
    DetectionResult,
    NoteKind,
    RegressionPolicy,
    RunScores,
    detect_regressions,
)
from continuous_eval.ports import RunStore
from continuous_eval.service.alerts import Detect, Detection

_JUDGED = frozenset({NoteKind.NO_DROP, NoteKind.BELOW_THRESHOLD, NoteKind.NOT_SIGNIFICANT})
"""Notes that mean "compared with a baseline, and not regressing": a recovery, if it was."""


def detect_run(
    store: RunStore,
    run: RunRecord,
    aggregates: Sequence[ScoreAggregate],
    policy: RegressionPolicy,
    *,
    as_candidate: bool = False,
) -> DetectionResult:
    """Run the detector for ``run`` against the suite's earlier scheduled runs.

    Only the previous run's case scores are read (the drop rule pairs them);
    older runs contribute their aggregates to the drift median.

    Args:
        as_candidate: judge a manual run as if it were the next scheduled one.
            For the CI gate only: nothing is written, and the scheduled
            history is untouched.
    """
    if run.started_at is None:
        raise ValueError(f"run {run.id} has not started")
    history_runs = store.scheduled_history(
        run.suite, before=run.started_at, limit=policy.drift_window + 1
    )
    current = RunScores.build(
        run.id,
        run.suite,
        "scheduled" if as_candidate else run.run_type,
        run.completeness,
        aggregates,
        store.case_scores(run.id),
    )
    history = [
        RunScores.from_record(
            earlier,
            store.get_aggregates(earlier.id),
            store.case_scores(earlier.id) if index == 0 else None,
        )
        for index, earlier in enumerate(history_runs)
        if earlier.id != run.id
    ]
    return detect_regressions(current, history, policy)


def make_detect(policies: Mapping[str, RegressionPolicy]) -> Detect:
    """Return the planner's ``detect``: the suite's policy, the store's history."""

    def detect(store: RunStore, run: RunRecord, aggregates: Sequence[ScoreAggregate]) -> Detection:
        result = detect_run(store, run, aggregates, policies.get(run.suite, DEFAULT_POLICY))
        regressed = {(r.feature, r.scorer) for r in result.regressions}
        healthy = sorted(
            {
                (n.feature, n.scorer)
                for n in result.notes
                if n.kind in _JUDGED
                and n.rule == "drop"
                and n.feature is not None
                and n.scorer is not None
                and (n.feature, n.scorer) not in regressed
            }
        )
        notes = [n.message for n in result.notes if n.kind not in _JUDGED]
        return Detection(result.regressions, healthy, notes)

    return detect
