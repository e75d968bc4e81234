"""The unpaired tests of online keys: hand-computed cases, scipy's values, and abstention."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats  # type: ignore[import-untyped]

from continuous_eval.core.unpaired_test import MIN_SAMPLES, is_binary, unpaired_test


def test_fisher_by_hand_one_pass_of_three_against_three_of_three() -> None:
    # Total passes 4 of 6; the current 3 hold 1 or more of them (at least 4 - 3).
    # P(1 pass now) = C(4,1) C(2,2) / C(6,3) = 4/20; every case failing: C(3,3) / C(6,3) = 1/20.
    found = unpaired_test([1.0, 0.0, 0.0], [1.0, 1.0, 1.0], min_samples=2)
    assert found is not None
    assert found.method == "fisher"
    assert found.p_lower == pytest.approx(4 / 20, abs=1e-15)
    assert found.p_floor == pytest.approx(1 / 20, abs=1e-15)
    assert found.mean_difference == pytest.approx(1 / 3 - 1)
    # Mid-p: P(below) = 0, P(at) = 0.2 -> Phi^-1(0.1).
    assert found.z == pytest.approx(-1.2815515655446004)


def test_mann_whitney_by_hand_two_below_two() -> None:
    # U = 0, E[U] = 2, Var[U] = 2 * 2 * 5 / 12; with continuity, p = Phi(-1.5 / sqrt(5/3)).
    found = unpaired_test([1.0, 2.0], [3.0, 4.0], min_samples=2)
    assert found is not None
    assert found.method == "mann_whitney"
    assert found.p_lower == pytest.approx(0.5 * math.erfc(1.5 / math.sqrt(5 / 3) / math.sqrt(2)))
    assert found.z == pytest.approx(-2 / math.sqrt(5 / 3))


@pytest.mark.parametrize("seed", range(5))
def test_mann_whitney_matches_scipy_on_tied_ratings_and_on_fractions(seed: int) -> None:
    rng = random.Random(seed)
    ratings = (
        [float(rng.randint(1, 5)) for _ in range(60)],
        [float(rng.randint(2, 5)) for _ in range(400)],
    )
    fractions = ([rng.random() * 0.9 for _ in range(80)], [rng.random() for _ in range(300)])
    for current, baseline in (ratings, fractions):
        found = unpaired_test(current, baseline)
        assert found is not None
        expected = stats.mannwhitneyu(current, baseline, alternative="less", method="asymptotic")
        assert found.p_lower == pytest.approx(float(expected.pvalue), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize(
    ("passed", "n", "base_passed", "m"), [(30, 50, 280, 350), (70, 100, 560, 700), (5, 40, 1, 40)]
)
def test_fisher_matches_scipy(passed: int, n: int, base_passed: int, m: int) -> None:
    current = [1.0] * passed + [0.0] * (n - passed)
    baseline = [1.0] * base_passed + [0.0] * (m - base_passed)
    found = unpaired_test(current, baseline)
    assert found is not None
    table = [[passed, n - passed], [base_passed, m - base_passed]]
    expected = stats.fisher_exact(table, alternative="less")
    assert found.p_lower == pytest.approx(float(expected.pvalue), rel=1e-9)
    assert found.n_current == found.n_paired == n
    assert found.n_baseline == m


def test_the_welch_interval_matches_scipy_within_its_rounded_degrees_of_freedom() -> None:
    rng = random.Random(7)
    current = [rng.gauss(0.6, 0.2) for _ in range(50)]
    baseline = [rng.gauss(0.7, 0.1) for _ in range(350)]
    found = unpaired_test(current, baseline)
    assert found is not None
    interval = stats.ttest_ind(current, baseline, equal_var=False).confidence_interval()
    # Degrees of freedom are floored to an integer: the interval is a hair wider.
    assert found.ci_low == pytest.approx(float(interval.low), abs=2e-3)
    assert found.ci_high == pytest.approx(float(interval.high), abs=2e-3)
    assert found.ci_low <= float(interval.low) + 1e-12
    assert found.ci_low < found.mean_difference < found.ci_high


def test_too_little_traffic_on_either_side_abstains() -> None:
    enough, short = [1.0] * MIN_SAMPLES, [1.0] * (MIN_SAMPLES - 1)
    assert unpaired_test(short, enough * 7) is None
    assert unpaired_test(enough, short) is None
    assert unpaired_test(enough, enough) is not None


def test_scores_that_never_vary_carry_no_evidence() -> None:
    found = unpaired_test([4.0] * 40, [4.0] * 200)
    assert found is not None
    assert (found.p_lower, found.z) == (1.0, 0.0)
    passing = unpaired_test([1.0] * 40, [1.0] * 200)
    assert passing is not None
    assert passing.p_lower == 1.0


def test_a_baseline_that_always_failed_cannot_show_a_fall() -> None:
    found = unpaired_test([0.0] * 40, [0.0] * 200)
    assert found is not None
    assert found.p_floor == 1.0


def test_lowering_a_current_score_never_raises_p() -> None:
    rng = random.Random(3)
    current = [float(rng.randint(1, 5)) for _ in range(40)]
    baseline = [float(rng.randint(1, 5)) for _ in range(280)]
    before = unpaired_test(current, baseline)
    assert before is not None
    for i in range(len(current)):
        if current[i] > 1.0:
            lowered = [*current[:i], current[i] - 1.0, *current[i + 1 :]]
            after = unpaired_test(lowered, baseline)
            assert after is not None
            assert after.p_lower <= before.p_lower + 1e-12


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        unpaired_test([math.nan] * 40, [1.0] * 40)
    with pytest.raises(ValueError, match="finite"):
        unpaired_test([1.0] * 40, [math.inf] * 40)
    with pytest.raises(ValueError, match="min_samples"):
        unpaired_test([1.0], [0.0], min_samples=1)


def test_binary_means_only_zeros_and_ones() -> None:
    assert is_binary([0.0, 1.0, 1.0])
    assert not is_binary([0.0, 0.5])
