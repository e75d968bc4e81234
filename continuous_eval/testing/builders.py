"""Builders of the records a test arranges: new runs, case results, whole finished runs.

For the project's tests and for users' own. A test says only what matters to
it ("a scheduled run of suite billing") and gets sensible values for the
rest, so a field added to a record is one change here instead of one in
every test that builds it, and every test builds the same run the same way.
The builders return the core's frozen records, or write them through a
``RunStore`` (in memory or SQL alike); like the rest of this package they
import no database driver and not the service (a finished run's decisions
are the caller's: see ``add_finished_run``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from continuous_eval.core.decisions import Decision, ScoreKey
from continuous_eval.core.models import (
    CaseResult,
    NewRun,
    ProgressDelta,
    ResultStatus,
    RunRecord,
    RunStatus,
    RunType,
    ScoreAggregate,
)
from continuous_eval.core.scoring import aggregate
from continuous_eval.core.suite import Case
from continuous_eval.ports import RunLifecycle, RunPlan, RunStore

SLOT = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)
"""A scheduled slot for runs that need one (2025-03-01 06:00 UTC): fixed, so tests read it."""

Decide = Callable[[RunRecord, Sequence[ScoreAggregate]], Sequence[Decision]]
"""Decides a run that has stored its results, given its aggregates (``add_finished_run``)."""


def new_run(run_id: str = "run-1", **overrides: Any) -> NewRun:
    """A manual run of suite ``support``: features ``refunds`` and ``tone``, 3 cases, 6 results.

    Keyword arguments replace any field of ``NewRun`` (``run_type="scheduled",
    scheduled_for=SLOT``, say). The fingerprint parts are a new dict each call.
    """
    fields: dict[str, Any] = {
        "id": run_id,
        "suite": "support",
        "run_type": "manual",
        "features": ("refunds", "tone"),
        "cases_total": 3,
        "total": 6,
        "fingerprint": "f" * 64,
        "fingerprint_parts": {"dataset": "d1", "rubric": "r1"},
    }
    fields.update(overrides)
    return NewRun(**fields)


def ok(
    case_id: str, score: float, feature: str = "refunds", scorer: str = "judge", **more: Any
) -> CaseResult:
    """A scored result of ``refunds`` x ``judge``; keyword arguments set the other fields."""
    return CaseResult(feature, case_id, scorer, ResultStatus.OK, score=score, **more)


def failed(case_id: str, feature: str = "refunds", scorer: str = "judge") -> CaseResult:
    """An errored result of ``refunds`` x ``judge``: the judge timed out."""
    return CaseResult(feature, case_id, scorer, ResultStatus.ERROR, error="judge timed out")


def all_scores(store: RunStore, run_id: str) -> list[tuple[str, str, ResultStatus, float | None]]:
    """What a run stored, as (feature, scorer, status, score) in the store's order.

    The other side of ``ok`` and ``failed``: what a test asserts after saving them.
    """
    return list(store.iter_scores(run_id))


def cases(inputs: Sequence[str]) -> list[Case]:
    """One case per input, with ids ``c0``, ``c1``, ... in order."""
    return [Case(id=f"c{i}", input=text) for i, text in enumerate(inputs)]


def plan_run(store: RunLifecycle, plan: RunPlan, run_id: str = "r1") -> RunRecord:
    """Create the manual run that executing ``plan`` fills, sized and fingerprinted as the plan."""
    return store.create_run(
        NewRun(
            id=run_id,
            suite=plan.suite,
            run_type="manual",
            features=tuple(f.name for f in plan.features),
            cases_total=plan.cases_total,
            total=plan.results_total,
            fingerprint=plan.fingerprint,
        )
    )


def pass_fail(count: int, failing: int) -> list[float]:
    """``count`` pass/fail scores: the first ``failing`` fail (0.0), the rest pass (1.0)."""
    return [0.0 if i < failing else 1.0 for i in range(count)]


def add_finished_run(
    store: RunStore,
    run_id: str,
    scores: Mapping[ScoreKey, Sequence[float]],
    *,
    suite: str = "support",
    run_type: RunType = "scheduled",
    slot: datetime | None = None,
    status: RunStatus = RunStatus.SUCCEEDED,
    fingerprint: str = "fp",
    decide: Decide | None = None,
) -> list[Decision]:
    """Store a whole run as the runner would: created, every case scored, finished.

    ``scores`` holds each feature x scorer's scores, case ``i`` named
    ``c{i:02d}``; a score below 1 is a failing case, and its output excerpt
    and rationale say so (``a wrong answer to case 3``, ``case 3: no match``),
    so the run reads like a pass/fail scorer's. The aggregates are computed
    from the scores. ``decide`` (the service's detector, or decisions made
    up for the test) is called once the results are stored, and what it
    returns is stored with the run's final ``status``, as the service does;
    without it the run has no decisions. Returns the decisions stored.
    """
    ids = {(feature, i) for (feature, _), values in scores.items() for i in range(len(values))}
    total = sum(len(values) for values in scores.values())
    store.create_run(
        NewRun(
            id=run_id,
            suite=suite,
            run_type=run_type,
            features=tuple(sorted({feature for feature, _ in scores})),
            cases_total=len(ids),
            total=total,
            fingerprint=fingerprint,
            scheduled_for=slot,
        )
    )
    results = [
        _pass_fail_result(feature, scorer, i, score)
        for (feature, scorer), values in scores.items()
        for i, score in enumerate(values)
    ]
    store.save_results(run_id, results, ProgressDelta(cases_done=len(ids), scored=total))
    aggregates = [aggregate(f, s, list(v), 0, fingerprint) for (f, s), v in scores.items()]
    decisions = [] if decide is None else list(decide(store.get_run(run_id), aggregates))
    store.finish_run(run_id, status, None, aggregates, decisions=decisions)
    return decisions


def _pass_fail_result(feature: str, scorer: str, i: int, score: float) -> CaseResult:
    bad = score < 1.0
    return CaseResult(
        feature,
        f"c{i:02d}",
        scorer,
        ResultStatus.OK,
        score=score,
        passed=not bad,
        output_excerpt=f"{'a wrong' if bad else 'the right'} answer to case {i}",
        rationale=f"case {i}: {'no match' if bad else 'matched'}",
    )
