"""The regression detector, ``decide_run``: one example per rule of its module docstring.

Runs are decided one after another the way the service does it: each run's
decisions are stored as its ``states`` and the run joins the front of the
history (newest first) for the next one. Scores are explicit patterns (or a
seeded ``random.Random``), so every outcome is exact and repeatable.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import replace

import pytest

from continuous_eval.core.models import CaseDrop, RunType
from continuous_eval.core.regression import (
    ANCHOR_SUFFIX,
    DEFAULT_POLICY,
    EPSILON,
    Decision,
    DecisionKind,
    RegressionPolicy,
    RunDecision,
    RunScores,
    ScoreKey,
    decide_run,
    split_anchors,
)
from continuous_eval.core.scoring import aggregate

SUITE = "suite"
FEATURE, JUDGE, EXACT = "answers", "judge", "exact"
KEY: ScoreKey = (FEATURE, JUDGE)
PASS_KEY: ScoreKey = (FEATURE, EXACT)


# --- builders ---------------------------------------------------------------------


def cid(i: int) -> str:
    """Case ids sort in case order: c000, c001, ..."""
    return f"c{i:03d}"


def run(
    run_id: str,
    scores: Sequence[float] | Mapping[str, float],
    *,
    key: ScoreKey = KEY,
    run_type: RunType = "scheduled",
    completeness: float = 1.0,
    fingerprint: str = "fp",
    errors: int = 0,
    anchors: Sequence[float] | None = None,
) -> RunScores:
    """A one-key run; a sequence of scores is cases c000, c001, ...; errored cases are absent."""
    cases = (
        dict(scores) if isinstance(scores, Mapping) else {cid(i): s for i, s in enumerate(scores)}
    )
    agg = aggregate(key[0], key[1], list(cases.values()), errors, fingerprint)
    anchor_scores = None
    if anchors is not None:
        anchor_scores = {key: {f"a{i:02d}": s for i, s in enumerate(anchors)}}
    return RunScores.build(
        run_id, SUITE, run_type, completeness, [agg], {key: cases}, anchor_scores=anchor_scores
    )


def suite_run(
    run_id: str, keyed: Mapping[ScoreKey, Sequence[float]], *, completeness: float = 1.0
) -> RunScores:
    """A scheduled run of several keys, each with cases c000, c001, ..."""
    aggs = [aggregate(k[0], k[1], list(scores), 0, "fp") for k, scores in keyed.items()]
    cases = {k: {cid(i): s for i, s in enumerate(scores)} for k, scores in keyed.items()}
    return RunScores.build(run_id, SUITE, "scheduled", completeness, aggs, cases)


class Timeline:
    """Runs decided in order; each is stored with its decisions' states, newest first."""

    def __init__(self, policy: RegressionPolicy = DEFAULT_POLICY) -> None:
        self.policy = policy
        self.history: list[RunScores] = []

    def decide(self, current: RunScores) -> RunDecision:
        result = decide_run(current, self.history, self.policy)
        states = {d.key: d.state() for d in result.decisions}
        self.history.insert(0, replace(current, states=states))
        return result

    def key(self, current: RunScores, key: ScoreKey = KEY) -> Decision:
        """Decide the run and return the decision of ``key``."""
        found = self.decide(current).for_key(*key)
        assert found is not None
        return found


def base_level(i: int) -> float:
    """Case i's known-good judge score: 3, 4, 5, 3, 4, 5, ..."""
    return 3.0 + i % 3


BASE = [base_level(i) for i in range(100)]


def dropped(falls: Mapping[int, float], base: Sequence[float] = BASE) -> list[float]:
    """``base`` with case i lowered by falls[i] (raised when negative)."""
    return [s - falls.get(i, 0.0) for i, s in enumerate(base)]


DROP = {**dict.fromkeys(range(20), 1.0), **dict.fromkeys(range(20, 30), 2.0), 97: -1.0}
"""20 cases fall one point, 10 fall two, c097 rises one: a fall of 0.39 on 100 cases."""


def with_baseline(n_runs: int = 3, base: Sequence[float] = BASE) -> Timeline:
    """A timeline of ``n_runs`` identical known-good runs b1, b2, ..."""
    timeline = Timeline()
    for i in range(1, n_runs + 1):
        timeline.decide(run(f"b{i}", base))
    return timeline


def after_drop() -> Timeline:
    """b1..b3 at the base level, then r4 fell 0.39 and opened an incident."""
    timeline = with_baseline()
    opened = timeline.key(run("r4", dropped(DROP)))
    assert opened.transition == "opened"
    return timeline


# --- first run and fingerprint ----------------------------------------------------


def test_the_first_run_starts_the_baseline() -> None:
    decision = Timeline().key(run("r1", BASE))
    assert decision.kind is DecisionKind.NO_BASELINE
    assert decision.known_good
    assert (decision.incident, decision.transition) == (None, None)


def test_a_changed_fingerprint_resets_the_baseline() -> None:
    """A new dataset, rubric or judge is not comparable: no test, a fresh known-good start."""
    timeline = Timeline()
    timeline.decide(run("r1", [5.0] * 20, fingerprint="old"))
    decision = timeline.key(run("r2", [1.0] * 20, fingerprint="new"))
    assert decision.kind is DecisionKind.BASELINE_RESET
    assert decision.known_good
    assert decision.transition is None


def test_a_fingerprint_change_closes_an_open_incident_as_reset_not_recovered() -> None:
    timeline = after_drop()
    decision = timeline.key(run("r5", dropped(DROP), fingerprint="new"))
    assert decision.kind is DecisionKind.BASELINE_RESET
    assert decision.transition == "reset"
    assert decision.incident is None
    assert decision.known_good


# --- the drop rule ----------------------------------------------------------------


def test_a_clear_drop_opens_an_incident_with_every_fallen_case_worst_first() -> None:
    timeline = with_baseline()
    result = timeline.decide(run("r4", dropped(DROP)))
    (found,) = result.regressions
    assert found.kind is DecisionKind.REGRESSED
    assert (found.rule, found.transition) == ("drop", "opened")
    assert found.alerting
    assert not found.known_good
    assert found.incident is not None
    assert (found.incident.opened_run_id, found.incident.kind) == ("r4", "regression")
    assert found.mean_difference == pytest.approx(-0.39)
    assert found.p_adjusted is not None
    assert found.p_adjusted <= 0.05
    assert found.n_paired == 100
    assert found.baseline_run_ids == ("b3", "b2", "b1")
    two = [CaseDrop(cid(i), BASE[i], BASE[i] - 2) for i in range(20, 30)]
    one = [CaseDrop(cid(i), BASE[i], BASE[i] - 1) for i in range(20)]
    assert found.fallen == (*two, *one)  # c097 rose: not listed


# --- incidents: no ratchet --------------------------------------------------------


def test_a_regression_never_becomes_the_baseline_while_it_stays_down() -> None:
    """Eight more runs (more than the 7-run window) at the fallen level: still the old baseline."""
    timeline = after_drop()
    for n in range(5, 13):
        decision = timeline.key(run(f"r{n}", dropped(DROP)))
        assert decision.kind is DecisionKind.STILL_REGRESSED
        assert decision.transition is None
        assert not decision.alerting
        assert not decision.known_good
        assert decision.baseline_run_ids == ("b3", "b2", "b1")
        assert decision.incident is not None
        assert decision.incident.opened_run_id == "r4"


def test_a_return_to_the_known_good_level_recovers() -> None:
    timeline = after_drop()
    timeline.key(run("r5", dropped(DROP)))
    decision = timeline.key(run("r6", BASE))
    assert decision.kind is DecisionKind.RECOVERED
    assert decision.transition == "recovered"
    assert decision.known_good
    assert decision.incident is None
    assert decision.baseline_run_ids == ("b3", "b2", "b1")


def test_a_further_fall_of_the_minimum_effect_worsens_the_incident() -> None:
    """0.39 alerted; 0.49 is still the same incident; 0.59 (0.2 further, the minimum) is news."""
    timeline = after_drop()
    a_bit = timeline.key(run("r5", dropped({**DROP, **dict.fromkeys(range(30, 40), 1.0)})))
    assert a_bit.kind is DecisionKind.STILL_REGRESSED
    further = timeline.key(run("r6", dropped({**DROP, **dict.fromkeys(range(30, 50), 1.0)})))
    assert further.kind is DecisionKind.REGRESSED
    assert (further.rule, further.transition) == ("drop", "worsened")
    assert further.alerting
    assert further.incident is not None
    assert further.incident.opened_run_id == "r4"
    assert further.incident.worst_difference == pytest.approx(-0.59)
    assert further.baseline_run_ids == ("b3", "b2", "b1")


# --- paired evidence --------------------------------------------------------------


def test_errored_hard_cases_cannot_hide_a_drop() -> None:
    """The 10 hardest cases (score 1) error now; 20 of the other 90 fall one point.

    Unpaired, the mean rises (3.70 -> 3.78, the hard cases left the average);
    paired on the 90 cases scored in both, it fell 0.22.
    """
    base = [1.0] * 10 + [4.0] * 90
    timeline = with_baseline(base=base)
    now = {cid(i): 3.0 if i < 30 else 4.0 for i in range(10, 100)}
    current = run("now", now, errors=10, completeness=0.9)
    unpaired_now = current.aggregates[KEY].mean
    unpaired_before = timeline.history[0].aggregates[KEY].mean
    assert unpaired_now is not None
    assert unpaired_before is not None
    assert unpaired_now > unpaired_before
    decision = timeline.key(current)
    assert decision.kind is DecisionKind.REGRESSED
    assert decision.n_paired == 90
    assert decision.mean_difference == pytest.approx(-20 / 90)
    assert [d.case_id for d in decision.fallen] == [cid(i) for i in range(10, 30)]


# --- small features ---------------------------------------------------------------


def test_a_three_case_feature_says_insufficient_evidence_even_when_it_collapses() -> None:
    """2**-3 is the smallest p three cases with one baseline can give: never significant.

    It says so (never silent) and no threshold rule stands in for the test.
    """
    timeline = Timeline()
    timeline.decide(run("r1", [5.0] * 3))
    result = timeline.decide(run("r2", [1.0] * 3))
    (decision,) = result.decisions
    assert decision.kind is DecisionKind.INSUFFICIENT_EVIDENCE
    assert "could not reach" in decision.message
    assert decision.p_adjusted is None
    assert result.regressions == ()
    assert result.family_size == 0


def test_four_of_ten_stable_cases_failing_regresses() -> None:
    """10 cases that passed in 7 runs: p = 8**-4 when 4 fail, well under the level."""
    timeline = Timeline()
    for n in range(1, 8):
        timeline.decide(run(f"b{n}", [1.0] * 10, key=PASS_KEY))
    decision = timeline.key(run("now", [0.0] * 4 + [1.0] * 6, key=PASS_KEY), PASS_KEY)
    assert decision.kind is DecisionKind.REGRESSED
    assert decision.p_value == 8.0**-4
    assert decision.p_adjusted == 8.0**-4
    assert decision.mean_difference == pytest.approx(-0.4)


def test_one_flaky_case_failing_does_not_regress() -> None:
    """c000 failed in 3 of 7 runs: failing again is p = 4/8, no evidence of a change."""
    timeline = Timeline()
    for n in range(7):
        timeline.decide(run(f"b{n}", [float(n % 2 == 0)] + [1.0] * 19, key=PASS_KEY))
    decision = timeline.key(run("now", [0.0] + [1.0] * 19, key=PASS_KEY), PASS_KEY)
    assert decision.kind is DecisionKind.NOT_SIGNIFICANT
    assert decision.p_value == 0.5
    assert decision.fallen == (CaseDrop(cid(0), 4 / 7, 0.0),)
    assert decision.known_good


def test_a_flaky_case_failing_twice_after_a_lucky_streak_is_not_a_drift() -> None:
    """The reference caught c000 passing in all 7 runs; it then fails 4 times in 5.

    Each failure is a 1-in-8 event against that history, not a 4-sigma one
    (its variance is nearly 0 there): the CUSUM adds the exact mid-p's normal
    score, and the pooled runs are tested exactly, so one flaky case in 20
    never makes the feature drift.
    """
    timeline = Timeline()
    for n in range(7):
        timeline.decide(run(f"b{n}", [1.0] * 20, key=PASS_KEY))
    decisions = [
        timeline.key(run(f"r{n}", [passed] + [1.0] * 19, key=PASS_KEY), PASS_KEY)
        for n, passed in enumerate([0.0, 0.0, 1.0, 0.0, 0.0])
    ]
    assert not any(d.alerting for d in decisions)
    assert all(d.kind is not DecisionKind.DRIFTING for d in decisions)


# --- the suite as one family ------------------------------------------------------

FAMILY = [(f"f{i:03d}", JUDGE) for i in range(150)]


def null_suite(seed: int, runs: int) -> list[dict[ScoreKey, list[float]]]:
    """``runs`` runs of 150 keys x 30 cases, every score a fresh draw of its case: no change."""
    rng = random.Random(seed)
    levels = {key: [rng.choice([2, 3, 4]) for _ in range(30)] for key in FAMILY}
    return [
        {
            key: [float(min(5, max(1, b + rng.choice([-1, 0, 0, 1])))) for b in bases]
            for key, bases in levels.items()
        }
        for _ in range(runs)
    ]


def decided_null_suite(policy: RegressionPolicy = DEFAULT_POLICY) -> list[RunDecision]:
    timeline = Timeline(policy)
    return [timeline.decide(suite_run(f"r{n}", keyed)) for n, keyed in enumerate(null_suite(7, 5))]


def test_a_suite_of_150_unchanged_keys_never_alerts() -> None:
    """Some keys reach p <= 0.05 by chance in every run; decided as one family, none alerts."""
    results = decided_null_suite()
    for result in results[1:]:
        assert result.regressions == ()
        assert result.family_size == 150
        raw = [d.p_value for d in result.decisions if d.p_value is not None]
        assert len(raw) == 150
        assert min(raw) <= 0.05  # one by one, this run would have raised a false alarm
    assert results[0].family_size == 0  # the first run has nothing to compare with


def test_holm_adjusted_p_values_are_never_below_bh() -> None:
    timeline = Timeline()
    runs = null_suite(7, 4)
    for n, keyed in enumerate(runs[:3]):
        timeline.decide(suite_run(f"r{n}", keyed))
    current = suite_run("now", runs[3])
    bh = decide_run(current, timeline.history)
    holm = decide_run(current, timeline.history, RegressionPolicy(correction="holm"))
    assert (bh.correction, holm.correction) == ("bh", "holm")
    assert holm.family_size == bh.family_size == 150
    for b, h in zip(bh.decisions, holm.decisions, strict=True):
        assert b.key == h.key
        assert b.p_adjusted is not None
        assert h.p_adjusted is not None
        assert h.p_adjusted >= b.p_adjusted


# --- drift ------------------------------------------------------------------------


def patterned(run_index: int, fallen: int) -> list[float]:
    """100 cases at 3 or 4, every fourth varying -1/0/+1 in a fixed rotation; the first
    ``fallen`` cases one point lower."""
    return [
        3.0 + i % 2 + (((i + run_index) % 3) - 1) * (i % 4 == 0) - (i < fallen) for i in range(100)
    ]


def patterned_baseline(policy: RegressionPolicy = DEFAULT_POLICY) -> Timeline:
    """Seven known-good runs b0..b6 of the fixed pattern."""
    timeline = Timeline(policy)
    for j in range(7):
        timeline.decide(run(f"b{j}", patterned(j, 0)))
    return timeline


def test_a_slow_decline_never_crosses_the_drop_rule_alone() -> None:
    """0.03 per run: the newest 7 runs are always close, so no single day falls 0.2."""
    timeline = patterned_baseline(RegressionPolicy(cusum_h=1e9))  # no drift alert
    for t in range(1, 16):
        decision = timeline.key(run(f"t{t}", patterned(7 + t, 3 * t)))
        assert decision.kind is DecisionKind.NOT_SIGNIFICANT
        assert decision.mean_difference is not None
        assert decision.mean_difference > -0.2


def test_a_slow_decline_ends_in_drift_with_the_cusum_carried_forward() -> None:
    timeline = patterned_baseline()
    carried: list[float] = []
    for t in range(1, 9):
        decision = timeline.key(run(f"t{t}", patterned(7 + t, 3 * t)))
        if decision.kind is DecisionKind.DRIFTING:
            break
        assert decision.kind is DecisionKind.NOT_SIGNIFICANT
        stored = timeline.history[0].states
        assert stored is not None
        assert stored[KEY].cusum == decision.cusum
        carried.append(decision.cusum)
    assert decision.kind is DecisionKind.DRIFTING
    assert (decision.rule, decision.transition) == ("drift", "opened")
    assert decision.incident is not None
    assert decision.incident.kind == "regression"
    assert decision.cusum == 0.0  # the incident took over
    assert len(carried) >= 3  # it took several runs, adding up
    assert carried[1:] == sorted(carried[1:])
    assert carried[-1] > carried[1] > 0.0


def test_a_step_drop_below_the_minimum_effect_is_caught_by_the_cusum() -> None:
    """15 cases fall one point for good: 0.15 < 0.2, significant but not a drop on the day."""
    timeline = patterned_baseline()
    day = timeline.key(run("t1", patterned(8, 15)))
    assert day.kind is DecisionKind.NOT_SIGNIFICANT
    assert day.p_adjusted is not None
    assert day.p_adjusted <= 0.05
    assert day.cusum > 0.0
    kinds: list[DecisionKind] = [day.kind]
    for t in range(2, 5):
        kinds.append(timeline.key(run(f"t{t}", patterned(7 + t, 15))).kind)
        if kinds[-1] is DecisionKind.DRIFTING:
            break
    assert kinds[-1] is DecisionKind.DRIFTING
    assert DecisionKind.REGRESSED not in kinds


def test_a_drift_incident_stays_open_while_the_score_stays_down() -> None:
    timeline = patterned_baseline()
    decisions = [timeline.key(run(f"t{t}", patterned(7 + t, 15))) for t in range(1, 5)]
    assert decisions[-1].kind is DecisionKind.DRIFTING
    after = timeline.key(run("t5", patterned(12, 15)))  # still 15 cases down
    assert after.kind is DecisionKind.STILL_REGRESSED


# --- judge canaries ---------------------------------------------------------------


def anchored_baseline(n_cases: int) -> Timeline:
    """Three known-good runs: every case and every one of 20 anchors at 4."""
    timeline = Timeline()
    for n in range(1, 4):
        timeline.decide(run(f"b{n}", [4.0] * n_cases, anchors=[4.0] * 20))
    return timeline


def stricter(n: int) -> list[float]:
    """30% of n scores judged one point lower: 0.3 stricter."""
    k = n * 3 // 10
    return [3.0] * k + [4.0] * (n - k)


def test_a_stricter_judge_is_judge_drift_not_a_regression() -> None:
    timeline = anchored_baseline(50)
    result = timeline.decide(run("now", stricter(50), anchors=stricter(20)))
    (decision,) = result.decisions
    assert decision.kind is DecisionKind.JUDGE_DRIFT
    assert result.regressions == ()
    assert decision.anchor is not None
    assert decision.anchor.drifted
    assert decision.anchor.mean_difference == pytest.approx(-0.3)
    assert decision.corrected_difference == pytest.approx(0.0)
    assert decision.transition == "opened"
    assert decision.incident is not None
    assert decision.incident.kind == "judge_drift"
    assert not decision.known_good


def test_a_stricter_judge_over_100_cases_is_still_judge_drift() -> None:
    timeline = anchored_baseline(100)
    (decision,) = timeline.decide(run("now", stricter(100), anchors=stricter(20))).decisions
    assert decision.anchor is not None
    assert decision.anchor.drifted
    assert decision.kind is DecisionKind.JUDGE_DRIFT


def test_a_real_drop_with_a_stable_judge_regresses() -> None:
    timeline = anchored_baseline(50)
    result = timeline.decide(run("now", stricter(50), anchors=[4.0] * 20))
    (decision,) = result.regressions
    assert (decision.kind, decision.rule) == (DecisionKind.REGRESSED, "drop")
    assert decision.anchor is not None
    assert not decision.anchor.drifted
    assert decision.anchor.p_value == 1.0
    assert decision.corrected_difference is None


# --- validity ---------------------------------------------------------------------


def test_a_manual_run_is_a_candidate_never_an_incident_nor_a_baseline() -> None:
    timeline = with_baseline()
    result = timeline.decide(run("manual", dropped(DROP), run_type="manual"))
    assert result.candidate
    (found,) = result.regressions  # a candidate reports what it found...
    assert (found.transition, found.incident) == (None, None)  # ...but opens nothing
    assert not found.alerting
    assert not found.known_good
    same = timeline.decide(run("manual2", BASE, run_type="manual")).decisions[0]
    assert same.kind is DecisionKind.NOT_SIGNIFICANT
    assert not same.known_good
    later = timeline.key(run("r5", BASE))
    assert later.baseline_run_ids == ("b3", "b2", "b1")
    assert later.kind is DecisionKind.NOT_SIGNIFICANT


def test_an_incomplete_run_is_incomplete_for_every_key_and_keeps_the_incident() -> None:
    timeline = after_drop()
    opened = timeline.history[0].states
    assert opened is not None
    keyed = {KEY: dropped(DROP), ("other", JUDGE): BASE}
    result = timeline.decide(suite_run("r5", keyed, completeness=0.5))
    assert [d.kind for d in result.decisions] == [DecisionKind.INCOMPLETE] * 2
    assert result.family_size == 0
    kept = result.for_key(*KEY)
    assert kept is not None
    assert kept.incident == opened[KEY].incident
    assert (kept.transition, kept.known_good) == (None, False)
    later = timeline.key(run("r6", dropped(DROP)))
    assert later.kind is DecisionKind.STILL_REGRESSED
    assert later.baseline_run_ids == ("b3", "b2", "b1")


def test_a_fall_of_exactly_the_minimum_effect_counts() -> None:
    """0.90 - 0.95 is -0.04999999999999993 in floats: a five-point fall, by EPSILON."""
    timeline = Timeline()
    timeline.decide(run("b1", [0.95] * 20, key=PASS_KEY))
    decision = timeline.key(run("now", [0.9] * 20, key=PASS_KEY), PASS_KEY)
    assert decision.mean_difference is not None
    assert -0.05 < decision.mean_difference <= -0.05 + EPSILON
    assert decision.kind is DecisionKind.REGRESSED


def test_a_fall_just_short_of_the_minimum_effect_does_not_regress() -> None:
    timeline = Timeline()
    timeline.decide(run("b1", [0.95] * 20, key=PASS_KEY))
    decision = timeline.key(run("now", [0.91] * 20, key=PASS_KEY), PASS_KEY)
    assert decision.kind is DecisionKind.NOT_SIGNIFICANT


# --- the caller's bugs ------------------------------------------------------------


def test_history_from_another_suite_is_refused() -> None:
    other = replace(run("prev", BASE), suite="other")
    with pytest.raises(ValueError, match="suite"):
        decide_run(run("now", BASE), [other])


def test_a_duplicated_run_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        decide_run(run("now", BASE), [run("prev", BASE), run("prev", BASE)])
    with pytest.raises(ValueError, match="twice"):
        decide_run(run("now", BASE), [run("now", BASE)])


def test_anchors_pair_only_with_runs_that_judged_the_same_anchor_set() -> None:
    """A replaced anchor set (new fingerprint) shares no anchor with the old one."""
    own = aggregate(FEATURE, JUDGE, [4.0], 0, "fp")
    before = aggregate(FEATURE + ANCHOR_SUFFIX, JUDGE, [5.0], 0, "anchors-1")
    after = replace(before, fingerprint="anchors-2")
    scores = {KEY: {"c0": 4.0}, (FEATURE + ANCHOR_SUFFIX, JUDGE): {"a0": 5.0}}
    aggs, cases, old = split_anchors([own, before], scores)
    _, _, new = split_anchors([own, after], scores)
    assert aggs == [own]
    assert cases == {KEY: {"c0": 4.0}}
    assert list(old[KEY]) == ["anchors-1/a0"]
    assert set(old[KEY]).isdisjoint(new[KEY])
