"""The regression detector: examples of each rule and note, and its safety properties."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from continuous_eval.core.models import (
    NO_USAGE,
    CaseDrop,
    RunRecord,
    RunStatus,
    RunType,
    ScoreAggregate,
)
from continuous_eval.core.regression import (
    DEFAULT_POLICY,
    DetectionResult,
    NoteKind,
    RegressionPolicy,
    RunScores,
    ScorerPolicy,
    detect_regressions,
    infer_scale,
    min_paired_cases,
    paired_p_value,
    scorer_defaults,
)
from continuous_eval.core.scoring import aggregate

FEATURE, JUDGE, EXACT = "answers", "judge", "exact"
KEY = (FEATURE, JUDGE)
THRESHOLD = RegressionPolicy(judge=scorer_defaults("judge", mode="threshold"))
FAST = settings(max_examples=60, derandomize=True, deadline=None)
"""Deterministic and quick: the whole module runs in a couple of seconds."""


def run(
    run_id: str,
    scores: Sequence[float],
    *,
    run_type: RunType = "scheduled",
    completeness: float = 1.0,
    fingerprint: str = "fp",
    scorer: str = JUDGE,
    errors: int = 0,
    with_cases: bool = True,
) -> RunScores:
    """A one-feature run whose cases are c0, c1, ... with the given scores."""
    agg = aggregate(FEATURE, scorer, list(scores), errors, fingerprint)
    cases = {(FEATURE, scorer): {f"c{i}": s for i, s in enumerate(scores)}} if with_cases else {}
    return RunScores.build(run_id, "suite", run_type, completeness, [agg], cases)


def mean_only(run_id: str, mean: float, *, fingerprint: str = "fp", n: int = 100) -> RunScores:
    """A run known only by its aggregate (older runs, as the trend stores them)."""
    agg = ScoreAggregate(FEATURE, JUDGE, mean, 0.05, n, 0, fingerprint)
    return RunScores.build(run_id, "suite", "scheduled", 1.0, [agg])


def kinds(result: DetectionResult) -> set[NoteKind]:
    return {note.kind for note in result.notes}


# --- drop rule ------------------------------------------------------------------


def test_a_real_fall_of_0_3_on_100_cases_alerts_with_the_worst_cases() -> None:
    before = [4.0] * 100
    after = [4.0] * 70 + [3.0] * 28 + [1.0, 2.0]  # c98 fell 3 points, c99 two
    result = detect_regressions(run("now", after), [run("prev", before)])

    (found,) = result.regressions
    assert (found.suite, found.feature, found.scorer, found.rule) == (
        "suite",
        FEATURE,
        JUDGE,
        "drop",
    )
    assert (found.run_id, found.baseline_run_id) == ("now", "prev")
    assert found.baseline == 4.0
    assert found.current == pytest.approx(3.67)
    assert found.delta == pytest.approx(-0.33)
    assert found.cases_paired == 100
    assert found.p_value is not None
    assert found.p_value < 0.001
    assert found.worst_cases == (
        CaseDrop("c98", 4.0, 1.0),
        CaseDrop("c99", 4.0, 2.0),
        CaseDrop("c70", 4.0, 3.0),
        CaseDrop("c71", 4.0, 3.0),
        CaseDrop("c72", 4.0, 3.0),
    )
    assert found.key == "suite:answers:judge:now"


def test_a_fall_below_the_guarded_minimum_is_noted_not_alerted() -> None:
    before = [4.0] * 100
    after = [4.0] * 85 + [3.0] * 15
    result = detect_regressions(run("now", after), [run("prev", before)])
    assert result.regressions == ()
    (note,) = [n for n in result.notes if n.rule == "drop"]
    assert note.kind is NoteKind.BELOW_THRESHOLD
    assert note.baseline == 4.0
    assert note.current == pytest.approx(3.85)
    assert note.baseline_run_id == "prev"


def test_a_large_but_noisy_fall_is_not_significant() -> None:
    before = [3.0] * 10
    after = [1.0, 1.0, 4.0, 4.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0]  # mean 2.7: fell 0.3
    result = detect_regressions(run("now", after), [run("prev", before)])
    assert result.regressions == ()
    (note,) = [n for n in result.notes_for(FEATURE, JUDGE) if n.rule == "drop"]
    assert note.kind is NoteKind.NOT_SIGNIFICANT
    assert note.p_value is not None
    assert note.p_value > 0.05
    assert note.cases_paired == 10


def test_the_plain_threshold_rule_ignores_noise_but_needs_the_full_drop() -> None:
    before = [4.0] * 100
    fell_0_3 = [4.0] * 70 + [3.0] * 30
    assert (
        detect_regressions(run("now", fell_0_3), [run("prev", before)], THRESHOLD).regressions == ()
    )
    fell_0_5 = [4.0] * 50 + [3.0] * 50
    (found,) = detect_regressions(
        run("now", fell_0_5), [run("prev", before)], THRESHOLD
    ).regressions
    assert found.p_value is None  # no test in threshold mode
    assert found.delta == pytest.approx(-0.5)


def test_a_tiny_feature_falls_back_to_the_threshold_rule() -> None:
    assert min_paired_cases(0.05) == 5
    collapsed = detect_regressions(run("now", [1.0, 1.0, 1.0]), [run("prev", [5.0, 5.0, 5.0])])
    (found,) = collapsed.regressions
    assert found.p_value is None
    assert found.cases_paired == 3
    assert NoteKind.GUARD_FALLBACK in kinds(collapsed)

    slipped = detect_regressions(run("now", [5.0, 5.0, 4.0]), [run("prev", [5.0, 5.0, 5.0])])
    assert slipped.regressions == ()
    assert {NoteKind.GUARD_FALLBACK, NoteKind.BELOW_THRESHOLD} <= kinds(slipped)


def test_without_baseline_case_scores_the_threshold_rule_decides() -> None:
    result = detect_regressions(run("now", [4.0] * 50 + [3.0] * 50), [mean_only("prev", 4.0)])
    (found,) = result.regressions
    assert (found.cases_paired, found.worst_cases, found.p_value) == (0, (), None)
    assert NoteKind.GUARD_FALLBACK in kinds(result)


def test_pass_rates_are_inferred_and_the_float_boundary_counts() -> None:
    # 0.95 - 0.90 is 0.04999999999999993 in floats: still a five-point fall.
    before = [1.0] * 95 + [0.0] * 5
    after = [1.0] * 90 + [0.0] * 10
    policy = RegressionPolicy(pass_rate=scorer_defaults("pass_rate", mode="threshold"))
    result = detect_regressions(
        run("now", after, scorer=EXACT), [run("prev", before, scorer=EXACT)], policy
    )
    (found,) = result.regressions
    assert found.delta == pytest.approx(-0.05)


def test_a_listed_scorer_uses_its_own_policy() -> None:
    strict = ScorerPolicy(regression_drop=0.1, guarded_min_drop=0.1, mode="threshold")
    policy = RegressionPolicy(scorers={JUDGE: strict})
    after = [4.0] * 90 + [3.0] * 10
    result = detect_regressions(run("now", after), [run("prev", [4.0] * 100)], policy)
    assert len(result.regressions) == 1
    assert policy.for_scorer(JUDGE, [0.0, 1.0]) is strict
    assert policy.for_scorer("other", [0.0, 1.0]) is policy.pass_rate
    assert policy.for_scorer("other", [1.0, 4.0]) is policy.judge


def test_infer_scale() -> None:
    assert infer_scale([0.0, 1.0, 1.0]) == "pass_rate"
    assert infer_scale([0.73]) == "pass_rate"
    assert infer_scale([1.0, 3.0]) == "judge"


# --- validity -------------------------------------------------------------------


def test_a_manual_run_never_alerts() -> None:
    result = detect_regressions(
        run("now", [1.0] * 20, run_type="manual"), [run("prev", [5.0] * 20)]
    )
    assert result.regressions == ()
    assert kinds(result) == {NoteKind.MANUAL_RUN}


def test_manual_runs_are_never_baselines() -> None:
    history = [run("manual", [5.0] * 20, run_type="manual"), run("sched", [3.0] * 20)]
    result = detect_regressions(run("now", [3.0] * 20), history)
    assert result.regressions == ()  # against "sched", not the manual 5.0
    ignored = [n for n in result.notes if n.kind is NoteKind.IGNORED_RUN]
    assert [n.baseline_run_id for n in ignored] == ["manual"]
    assert any(n.kind is NoteKind.NO_DROP and n.baseline_run_id == "sched" for n in result.notes)


def test_an_incomplete_run_never_alerts_but_the_floor_itself_is_complete() -> None:
    history = [run("prev", [5.0] * 20)]
    incomplete = detect_regressions(run("now", [1.0] * 20, completeness=0.89), history)
    assert incomplete.regressions == ()
    assert kinds(incomplete) == {NoteKind.INCOMPLETE_RUN}
    at_floor = detect_regressions(run("now", [1.0] * 20, completeness=0.9), history)
    assert len(at_floor.regressions) == 1


def test_a_feature_scorer_with_many_errors_is_incomplete() -> None:
    result = detect_regressions(run("now", [1.0] * 8, errors=2), [run("prev", [5.0] * 20)])
    assert result.regressions == ()
    assert kinds(result) == {NoteKind.INCOMPLETE_RUN}


def test_an_incomplete_earlier_run_is_no_baseline() -> None:
    history = [run("partial", [5.0] * 20, completeness=0.5)]
    result = detect_regressions(run("now", [1.0] * 20), history)
    assert result.regressions == ()
    assert kinds(result) == {NoteKind.IGNORED_RUN, NoteKind.NO_BASELINE}


def test_a_changed_fingerprint_is_a_baseline_reset() -> None:
    history = [run("prev", [5.0] * 20, fingerprint="old")]
    result = detect_regressions(run("now", [1.0] * 20, fingerprint="new"), history)
    assert result.regressions == ()
    (note,) = result.notes
    assert (note.kind, note.baseline_run_id) == (NoteKind.BASELINE_RESET, "prev")


def test_no_scores_and_no_baseline_are_noted() -> None:
    empty = RunScores.build(
        "now", "suite", "scheduled", 1.0, [aggregate(FEATURE, JUDGE, [], 0, "fp")]
    )
    assert kinds(detect_regressions(empty, [run("prev", [5.0] * 5)])) == {NoteKind.NO_SCORES}
    assert kinds(detect_regressions(run("now", [1.0] * 5), [])) == {NoteKind.NO_BASELINE}


def test_callers_bugs_raise() -> None:
    now = run("now", [3.0] * 5)
    other_suite = replace(run("prev", [3.0] * 5), suite="other")
    with pytest.raises(ValueError, match="suite"):
        detect_regressions(now, [other_suite])
    with pytest.raises(ValueError, match="twice"):
        detect_regressions(now, [run("prev", [3.0] * 5), run("prev", [3.0] * 5)])
    with pytest.raises(ValueError, match="twice"):
        detect_regressions(now, [run("now", [3.0] * 5)])
    agg = aggregate(FEATURE, JUDGE, [3.0], 0)
    with pytest.raises(ValueError, match="two aggregates"):
        RunScores.build("x", "suite", "scheduled", 1.0, [agg, agg])


@pytest.mark.parametrize(
    "make",
    [
        lambda: ScorerPolicy(regression_drop=0.0, guarded_min_drop=0.2),
        lambda: ScorerPolicy(regression_drop=0.5, guarded_min_drop=-1.0),
        lambda: ScorerPolicy(regression_drop=0.5, guarded_min_drop=0.2, alpha=0.5),
        lambda: RegressionPolicy(completeness_floor=1.5),
        lambda: RegressionPolicy(drift_min_runs=8),
        lambda: RegressionPolicy(n_resamples=9),  # cannot reach alpha 0.05
    ],
)
def test_policies_refuse_nonsense(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        make()


def test_from_record_takes_identity_and_completeness() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    record = RunRecord(
        id="r1", suite="suite", run_type="scheduled", status=RunStatus.SUCCEEDED,
        status_reason=None, attempt=1, features=(FEATURE,), created_at=now, started_at=now,
        finished_at=now, scheduled_for=now, cases_total=10, cases_done=10, total=10,
        scored=8, errored=2, judge_usage=NO_USAGE, target_usage=NO_USAGE, fingerprint="fp",
        fingerprint_parts={},
    )  # fmt: skip
    scores = RunScores.from_record(record, [aggregate(FEATURE, JUDGE, [3.0], 0)])
    assert (scores.run_id, scores.suite, scores.run_type) == ("r1", "suite", "scheduled")
    assert scores.completeness == 0.8


# --- drift rule -----------------------------------------------------------------

SLIDE = [3.65, 3.8, 3.95, 4.1, 4.25, 4.4, 4.55, 5.0]
"""Newest first: each step 0.15 (below every drop minimum); the 8th run is outside K=7."""


def test_a_slow_slide_alerts_as_drift() -> None:
    history = [mean_only(f"r{i}", m) for i, m in enumerate(SLIDE)]
    result = detect_regressions(run("now", [3.5] * 100), history)
    (found,) = result.regressions
    assert (found.rule, found.baseline_run_id, found.p_value) == ("drift", None, None)
    assert found.baseline == pytest.approx(4.1)  # median of the newest 7
    assert found.delta == pytest.approx(-0.6)
    assert any(n.kind is NoteKind.BELOW_THRESHOLD and n.rule == "drop" for n in result.notes)


def test_drift_reports_cases_against_their_median() -> None:
    history = [run(f"r{i}", [m] * 10) for i, m in enumerate((4.0, 4.5, 5.0))]
    after = [3.5] * 9 + [1.0]
    result = detect_regressions(run("now", after), history, THRESHOLD)
    (found,) = result.regressions
    assert found.rule == "drop"  # 4.0 -> 3.25 fell 0.75
    assert NoteKind.SUPERSEDED in kinds(result)  # drift fired too: one alert, one key

    # 4.0 -> 3.61 is below the threshold rule's 0.5; the median 4.5 is 0.89 above.
    gentle = [run("r0", [4.0] * 10), mean_only("r1", 4.5), mean_only("r2", 5.0)]
    (drift,) = detect_regressions(run("now", [3.9] * 9 + [1.0]), gentle, THRESHOLD).regressions
    assert drift.rule == "drift"
    assert drift.cases_paired == 10
    assert drift.worst_cases[0] == CaseDrop("c9", 4.0, 1.0)


def test_drift_needs_enough_runs_since_the_last_reset() -> None:
    history = [mean_only("r0", 4.0), mean_only("r1", 4.1), mean_only("r2", 5.0, fingerprint="x")]
    result = detect_regressions(run("now", [3.85] * 100), history)
    assert result.regressions == ()
    (note,) = [n for n in result.notes if n.rule == "drift"]
    assert note.kind is NoteKind.TOO_FEW_RUNS
    assert "r2" in note.message


# --- the paired test ------------------------------------------------------------


def test_the_paired_test_is_exact_on_small_samples() -> None:
    assert paired_p_value([5.0] * 5, [4.0] * 5) == 1 / 32  # only the observed signs
    assert paired_p_value([3.0] * 5, [3.0] * 5) == 1.0
    assert paired_p_value([1.0, 2.0], [2.0, 3.0]) == 1.0
    with pytest.raises(ValueError, match="two cases"):
        paired_p_value([1.0], [0.0])


# --- properties -----------------------------------------------------------------

judge_scores = st.lists(st.integers(1, 5).map(float), min_size=1, max_size=40)
pass_scores = st.lists(st.sampled_from([0.0, 1.0]), min_size=1, max_size=40)
any_scores = st.one_of(judge_scores, pass_scores)
modes = st.sampled_from([DEFAULT_POLICY, THRESHOLD])


@FAST
@given(data=st.data(), base=any_scores, policy=modes)
def test_never_alerts_on_an_improvement_or_an_equal_score(
    data: st.DataObject, base: list[float], policy: RegressionPolicy
) -> None:
    top = 5.0 if max(base) > 1 else 1.0
    rises = data.draw(st.lists(st.integers(0, 4), min_size=len(base), max_size=len(base)))
    current = [min(top, b + r) for b, r in zip(base, rises, strict=True)]
    # Older runs never above the previous one, so the drift median cannot be either.
    history = [run("prev", base), *(run(f"old{i}", base) for i in range(3))]
    result = detect_regressions(run("now", current), history, policy)
    assert result.regressions == ()


@FAST
@given(current=any_scores, policy=modes)
def test_never_alerts_without_a_baseline(current: list[float], policy: RegressionPolicy) -> None:
    other_scorer = run("prev", [5.0] * 10, scorer="unrelated")
    assert detect_regressions(run("now", current), [], policy).regressions == ()
    assert detect_regressions(run("now", current), [other_scorer], policy).regressions == ()


@FAST
@given(
    base=any_scores,
    current=any_scores,
    completeness=st.floats(0.0, 0.8999),
    policy=modes,
)
def test_never_alerts_on_an_incomplete_run(
    base: list[float], current: list[float], completeness: float, policy: RegressionPolicy
) -> None:
    history = [run(f"r{i}", base) for i in range(4)]
    result = detect_regressions(run("now", current, completeness=completeness), history, policy)
    assert result.regressions == ()


@FAST
@given(base=any_scores, current=any_scores, policy=modes)
def test_never_alerts_across_a_fingerprint_change(
    base: list[float], current: list[float], policy: RegressionPolicy
) -> None:
    history = [run(f"r{i}", base, fingerprint="old") for i in range(4)]
    result = detect_regressions(run("now", current, fingerprint="new"), history, policy)
    assert result.regressions == ()
    assert kinds(result) == {NoteKind.BASELINE_RESET}


@FAST
@given(base=any_scores, current=any_scores, policy=modes)
def test_never_alerts_for_a_manual_run(
    base: list[float], current: list[float], policy: RegressionPolicy
) -> None:
    history = [run(f"r{i}", base) for i in range(4)]
    manual = run("now", current, run_type="manual")
    assert detect_regressions(manual, history, policy).regressions == ()


@FAST
@given(
    baseline=st.floats(1.0, 5.0),
    smaller=st.floats(0.0, 4.0),
    extra=st.floats(0.0, 4.0),
)
def test_threshold_alerting_is_monotone_in_the_drop(
    baseline: float, smaller: float, extra: float
) -> None:
    # Listed, so no scale inference: a mean can leave 1..5 here.
    policy = RegressionPolicy(scorers={JUDGE: scorer_defaults("judge", mode="threshold")})

    def alerts(drop: float) -> bool:
        now = mean_only("now", baseline - drop)
        return bool(detect_regressions(now, [mean_only("prev", baseline)], policy).regressions)

    if alerts(smaller):
        assert alerts(smaller + extra)


@FAST
@given(
    baseline=st.floats(0.05, 1.0) | st.floats(1.5, 5.0),
    below=st.floats(1e-7, 1e-3),
)
def test_the_threshold_boundary_is_exact(baseline: float, below: float) -> None:
    step = 0.05 if baseline <= 1.0 else 0.5  # pass rate or judge, inferred from the means
    policy = RegressionPolicy(
        judge=scorer_defaults("judge", mode="threshold"),
        pass_rate=scorer_defaults("pass_rate", mode="threshold"),
    )
    history = [mean_only("prev", baseline)]
    at = detect_regressions(mean_only("now", baseline - step), history, policy)
    assert len(at.regressions) == 1
    short = detect_regressions(mean_only("now", baseline - step + below), history, policy)
    assert short.regressions == ()


@FAST
@given(data=st.data(), scale=st.sampled_from(["judge", "pass_rate"]))
def test_guarded_lowering_current_scores_never_turns_an_alert_off(
    data: st.DataObject, scale: str
) -> None:
    low, high = (1, 5) if scale == "judge" else (0, 1)
    size = data.draw(st.integers(1, 40))
    ints = st.lists(st.integers(low, high), min_size=size, max_size=size)
    base = [float(x) for x in data.draw(ints)]
    current = [float(x) for x in data.draw(ints)]
    lowering = data.draw(st.lists(st.integers(0, 4), min_size=size, max_size=size))
    lower = [max(float(low), c - d) for c, d in zip(current, lowering, strict=True)]
    if scale == "judge":
        base[0] = 5.0  # a judge run shows some score above 1, as real ones do

    history = [run("prev", base)]
    if detect_regressions(run("now", current), history).regressions:
        assert detect_regressions(run("now", lower), history).regressions


@FAST
@given(data=st.data())
def test_the_p_value_never_rises_when_current_scores_fall(data: st.DataObject) -> None:
    size = data.draw(st.integers(2, 40))
    ints = st.lists(st.integers(1, 5).map(float), min_size=size, max_size=size)
    before, after = data.draw(ints), data.draw(ints)
    lowering = data.draw(st.lists(st.integers(0, 3), min_size=size, max_size=size))
    lower = [a - d for a, d in zip(after, lowering, strict=True)]
    assert paired_p_value(before, lower) <= paired_p_value(before, after)
