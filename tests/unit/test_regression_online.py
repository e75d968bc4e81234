"""The detector on online keys: fresh traffic every run, so nothing pairs.

Runs are decided one after another as the service does (each run's decisions
stored as its states, newest first). An online run's case ids are trace ids
of its own (``<run>/t<i>``), never seen again; scores are explicit patterns,
so every outcome is exact and repeatable.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import replace

import pytest

from continuous_eval.core.baselines import select
from continuous_eval.core.error_control import adjust
from continuous_eval.core.models import RunType
from continuous_eval.core.regression import (
    DecisionKind,
    RegressionPolicy,
    RunDecision,
    RunScores,
    ScoreKey,
    decide_run,
)
from continuous_eval.core.scoring import aggregate
from continuous_eval.core.unpaired_baselines import spread_runs
from continuous_eval.core.unpaired_test import MIN_SAMPLES, unpaired_test

SUITE = "suite"
ONLINE: ScoreKey = ("chat", "exact")
RATED: ScoreKey = ("chat", "judge")
PAIRED: ScoreKey = ("faq", "exact")
POLICY = RegressionPolicy(unpaired_features=frozenset({"chat"}))


def passing(n: int, failing: int) -> list[float]:
    """n scores of which ``failing`` are 0 (spread out), the rest 1."""
    return [0.0 if i * failing // n != (i + 1) * failing // n else 1.0 for i in range(n)]


def online_run(
    run_id: str,
    keyed: Mapping[ScoreKey, Sequence[float]],
    *,
    run_type: RunType = "scheduled",
) -> RunScores:
    """A run whose online keys score their own trace ids and whose paired keys score c000..."""
    aggs = [aggregate(k[0], k[1], list(v), 0, "fp") for k, v in keyed.items()]
    cases = {
        k: {(f"{run_id}/t{i}" if k[0] == "chat" else f"c{i:03d}"): s for i, s in enumerate(v)}
        for k, v in keyed.items()
    }
    return RunScores.build(run_id, SUITE, run_type, 1.0, aggs, cases)


class Timeline:
    def __init__(self, policy: RegressionPolicy = POLICY) -> None:
        self.policy = policy
        self.history: list[RunScores] = []

    def decide(self, current: RunScores) -> RunDecision:
        result = decide_run(current, self.history, self.policy)
        if current.run_type == "scheduled":
            states = {d.key: d.state() for d in result.decisions}
            self.history.insert(0, replace(current, states=states))
        return result


def stable(runs: int = 7, n: int = 100, failing: int = 20) -> Timeline:
    timeline = Timeline()
    for i in range(runs):
        timeline.decide(online_run(f"b{i}", {ONLINE: passing(n, failing)}))
    return timeline


def test_an_online_fall_is_found_without_a_single_pair() -> None:
    timeline = stable()
    result = timeline.decide(online_run("r8", {ONLINE: passing(100, 40)}))
    d = result.for_key(*ONLINE)
    assert d is not None
    assert d.kind is DecisionKind.REGRESSED
    assert d.rule == "drop"
    assert d.transition == "opened"
    assert d.mean_difference == pytest.approx(-0.2)
    assert d.current == pytest.approx(0.6)
    assert d.baseline == pytest.approx(0.8)
    assert d.n_paired == 100
    assert d.baseline_run_ids == tuple(f"b{i}" for i in range(6, -1, -1))
    # The exact test of 60/100 against 560/700 passing.
    expected = unpaired_test(passing(100, 40), passing(100, 20) * 7)
    assert expected is not None
    assert d.p_value == pytest.approx(expected.p_lower)
    assert "100 interactions (baseline: 700)" in d.message
    # Every failing interaction of this run is listed, so its trace can be opened.
    assert len(d.fallen) == 40
    assert all(f.case_id.startswith("r8/t") and f.after == 0.0 for f in d.fallen)


def test_without_the_unpaired_rule_the_same_traffic_has_no_evidence() -> None:
    timeline = Timeline(RegressionPolicy())
    for i in range(7):
        timeline.decide(online_run(f"b{i}", {ONLINE: passing(100, 20)}))
    d = timeline.decide(online_run("r8", {ONLINE: passing(100, 40)})).for_key(*ONLINE)
    assert d is not None
    assert d.kind is DecisionKind.INSUFFICIENT_EVIDENCE


def test_stable_traffic_is_not_significant_and_joins_the_baseline() -> None:
    timeline = stable()
    d = timeline.decide(online_run("r8", {ONLINE: passing(100, 22)})).for_key(*ONLINE)
    assert d is not None
    assert d.kind is DecisionKind.NOT_SIGNIFICANT
    assert d.known_good


def test_too_little_traffic_abstains_and_says_how_much_it_needs() -> None:
    timeline = stable()
    short = MIN_SAMPLES - 1
    d = timeline.decide(online_run("r8", {ONLINE: passing(short, 6)})).for_key(*ONLINE)
    assert d is not None
    assert d.kind is DecisionKind.INSUFFICIENT_EVIDENCE
    assert f"{short} interactions scored now, 700 in the known-good runs" in d.message
    assert f"needs {MIN_SAMPLES} on each side" in d.message
    assert d.known_good
    # A small sample that collapsed is not a baseline.
    fell = timeline.decide(online_run("r9", {ONLINE: passing(short, short)})).for_key(*ONLINE)
    assert fell is not None
    assert fell.kind is DecisionKind.INSUFFICIENT_EVIDENCE
    assert not fell.known_good


def test_the_first_runs_with_little_pooled_traffic_abstain_until_the_pool_is_big_enough() -> None:
    timeline = Timeline()
    first = timeline.decide(online_run("b0", {ONLINE: passing(20, 4)})).for_key(*ONLINE)
    assert first is not None
    assert first.kind is DecisionKind.NO_BASELINE
    second = timeline.decide(online_run("b1", {ONLINE: passing(20, 4)})).for_key(*ONLINE)
    assert second is not None
    assert second.kind is DecisionKind.INSUFFICIENT_EVIDENCE  # 20 now, 20 before
    timeline.decide(online_run("b2", {ONLINE: passing(40, 8)}))
    third = timeline.decide(online_run("b3", {ONLINE: passing(40, 8)})).for_key(*ONLINE)
    assert third is not None
    assert third.kind is DecisionKind.NOT_SIGNIFICANT  # 40 now, 80 pooled


def test_an_online_incident_stays_open_while_down_and_recovers() -> None:
    timeline = stable()
    opened = timeline.decide(online_run("r8", {ONLINE: passing(100, 40)})).for_key(*ONLINE)
    assert opened is not None
    assert opened.transition == "opened"
    down = timeline.decide(online_run("r9", {ONLINE: passing(100, 41)})).for_key(*ONLINE)
    assert down is not None
    assert down.kind is DecisionKind.STILL_REGRESSED
    assert not down.alerting
    back = timeline.decide(online_run("r10", {ONLINE: passing(100, 21)})).for_key(*ONLINE)
    assert back is not None
    assert back.kind is DecisionKind.RECOVERED
    assert back.baseline_run_ids == opened.baseline_run_ids  # frozen on the incident's runs


def test_a_manual_online_run_is_a_candidate() -> None:
    timeline = stable()
    d = timeline.decide(online_run("m1", {ONLINE: passing(100, 40)}, run_type="manual"))
    found = d.for_key(*ONLINE)
    assert found is not None
    assert found.kind is DecisionKind.REGRESSED
    assert found.incident is None
    assert not found.known_good


def test_tied_ratings_fall_through_the_rank_test() -> None:
    rng = random.Random(5)
    timeline = Timeline()
    for i in range(7):
        timeline.decide(online_run(f"b{i}", {RATED: [float(rng.randint(3, 5)) for _ in range(80)]}))
    low = [float(rng.randint(2, 5)) for _ in range(80)]  # mean about 0.5 lower
    d = timeline.decide(online_run("r8", {RATED: low})).for_key(*RATED)
    assert d is not None
    assert d.kind is DecisionKind.REGRESSED
    assert d.mean_difference is not None
    assert d.mean_difference <= -0.2


def _mixed(online: Sequence[float], paired: Sequence[float], rated: Sequence[float]) -> Timeline:
    """Seven known-good runs of an online key and two paired ones, then the given run."""
    timeline = Timeline()
    for i in range(7):
        timeline.decide(
            online_run(
                f"b{i}", {ONLINE: passing(100, 20), PAIRED: passing(40, 0), RATED: [4.0, 5.0] * 40}
            )
        )
    timeline.decide(online_run("r8", {ONLINE: online, PAIRED: paired, RATED: rated}))
    return timeline


def test_paired_and_online_keys_share_one_family() -> None:
    """Every drop test of the run, paired or not, is adjusted together."""
    # 71 of 100 passing against 560 of 700: p = 0.029, a fall of 0.09.
    timeline = _mixed(passing(100, 29), passing(40, 0), [4.0, 5.0] * 40)
    newest = timeline.history[0]
    result = decide_run(newest, timeline.history[1:], POLICY)
    assert result.family_size == 3
    decisions = [result.for_key(*k) for k in (ONLINE, PAIRED, RATED)]
    p_values = [d.p_value for d in decisions if d is not None and d.p_value is not None]
    assert len(p_values) == 3
    for d, p_adj in zip(decisions, adjust(p_values, "bh"), strict=True):
        assert d is not None
        assert d.p_adjusted == pytest.approx(p_adj)
    online = decisions[0]
    assert online is not None
    assert online.p_value == pytest.approx(0.0294803730241005)
    assert online.p_adjusted == pytest.approx(3 * 0.0294803730241005)
    assert online.kind is DecisionKind.NOT_SIGNIFICANT
    # Alone, the same fall would alert: the family is what holds the run's error.
    alone = stable()
    d = alone.decide(online_run("r8", {ONLINE: passing(100, 29)})).for_key(*ONLINE)
    assert d is not None
    assert d.kind is DecisionKind.REGRESSED


def test_a_paired_fall_and_an_online_fall_both_alert_in_one_run() -> None:
    timeline = _mixed(passing(100, 40), passing(40, 8), [4.0, 5.0] * 40)
    states = timeline.history[0].states
    assert states is not None
    assert states[ONLINE].incident is not None
    assert states[PAIRED].incident is not None
    assert states[RATED].incident is None


def test_a_slow_online_decline_is_caught_by_the_cusum_and_the_pooled_test() -> None:
    """A fall of 3 points of pass rate (below the 5-point minimum effect), sustained, drifts."""
    rng = random.Random(23)
    timeline = Timeline()

    def sample(rate: float) -> list[float]:
        return [float(rng.random() < rate) for _ in range(200)]

    for i in range(8):
        timeline.decide(online_run(f"b{i}", {ONLINE: sample(0.8)}))
    cusums = []
    for i in range(9):
        d = timeline.decide(online_run(f"d{i}", {ONLINE: sample(0.77)})).for_key(*ONLINE)
        assert d is not None
        assert d.kind is DecisionKind.NOT_SIGNIFICANT
        cusums.append(d.cusum)
    assert cusums[-1] > cusums[0] > 0  # the evidence adds up, run after run
    d = timeline.decide(online_run("d9", {ONLINE: sample(0.77)})).for_key(*ONLINE)
    assert d is not None
    assert d.kind is DecisionKind.DRIFTING
    assert d.rule == "drift"
    assert d.incident is not None
    assert "sustained decline over" in d.message


def test_a_run_within_the_known_good_days_wobble_is_not_a_regression() -> None:
    # The pass rate moved from 70% to 90% over the known-good week; today's 70%
    # is inside that, though 70/100 against 560/700 pooled is a 1.4% fall.
    timeline = Timeline()
    for i, failing in enumerate((30, 10, 25, 15, 20, 28, 12)):
        timeline.decide(online_run(f"b{i}", {ONLINE: passing(100, failing)}))
    d = timeline.decide(online_run("r8", {ONLINE: passing(100, 30)})).for_key(*ONLINE)
    assert d is not None
    assert d.kind is DecisionKind.NOT_SIGNIFICANT
    assert d.p_value is not None
    assert d.p_value > 0.1
    assert "100 interactions (baseline: 700, runs' means sd 0.0" in d.message
    fell = timeline.decide(online_run("r9", {ONLINE: passing(100, 60)})).for_key(*ONLINE)
    assert fell is not None
    assert fell.kind is DecisionKind.REGRESSED


def test_the_wobble_is_measured_on_every_known_good_run_of_the_history() -> None:
    timeline = stable(runs=12)
    timeline.decide(online_run("r12", {ONLINE: passing(100, 40)}))  # regressed: not known-good
    current = online_run("now", {ONLINE: passing(100, 20)})
    chosen = select(current, ONLINE, timeline.history, POLICY)
    spread = spread_runs(chosen, ONLINE)
    assert len(chosen.pool) == POLICY.baseline_window
    assert len(spread) == 12
    assert sorted(map(sum, spread)) == [80.0] * 12
