"""The random-effects guard of online keys: hand-computed cases, scipy's t, and its effect."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from scipy import stats  # type: ignore[import-untyped]

from continuous_eval.core.random_effects import (
    between_run_variance,
    random_effects_test,
    student_cdf,
)
from continuous_eval.core.unpaired_test import unpaired_runs_test, unpaired_test


def passing(n: int, failing: int) -> list[float]:
    """n scores of which ``failing`` are 0 (spread out), the rest 1."""
    return [0.0 if i * failing // n != (i + 1) * failing // n else 1.0 for i in range(n)]


THREE_RUNS = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]
"""Means 2, 5, 8 (variance 9); each run's variance 1, so each mean's sampling variance 1/3."""


def test_tau_squared_by_hand() -> None:
    assert between_run_variance(THREE_RUNS) == pytest.approx(9 - 1 / 3)


def test_tau_squared_is_zero_when_the_means_move_less_than_sampling_explains() -> None:
    # Means 2, 2.1, 1.9 (variance 0.01) against a sampling variance of 1/3 each.
    runs = [[1.0, 2.0, 3.0], [1.1, 2.1, 3.1], [0.9, 1.9, 2.9]]
    assert between_run_variance(runs) == 0.0


def test_one_run_or_runs_of_one_score_say_nothing_of_the_wobble() -> None:
    assert between_run_variance([[1.0, 2.0, 3.0]]) == 0.0
    assert between_run_variance([[1.0], [9.0], [1.0, 2.0]]) == 0.0
    assert random_effects_test([[1.0, 2.0]], [[1.0, 2.0, 3.0], [5.0]]) is None
    assert random_effects_test([], THREE_RUNS) is None
    assert random_effects_test([[1.0]], [[4.0, 4.0], [4.0, 4.0]]) is None


def test_the_random_effects_test_by_hand() -> None:
    # Recent: 3 scores of mean 2; reference: 9 scores of mean 5, within variance 1.
    # sampling = 1 * (1/3 + 1/9) = 4/9; spread = tau^2 * (9/9 + 27/81) = 26/3 * 4/3.
    found = random_effects_test([[2.0, 2.0, 2.0]], THREE_RUNS)
    assert found is not None
    sampling, spread = 4 / 9, 26 / 3 * 4 / 3
    assert found.tau2 == pytest.approx(26 / 3)
    assert found.within_variance == pytest.approx(1.0)
    assert found.se == pytest.approx(math.sqrt(sampling + spread))
    assert found.t == pytest.approx(-3 / math.sqrt(sampling + spread))
    # Satterthwaite on what was estimated: 4/3 * var(means) = 12 with 2 df, and
    # sampling - 4/3 * mean(s_i^2 / n_i) = 0 with 6: all 12 rest on 2 df.
    df = 2.0
    assert sampling + spread == pytest.approx(4 / 3 * 9)
    assert found.df == pytest.approx(df)
    assert found.p_lower == pytest.approx(float(stats.t.cdf(found.t, df)), rel=1e-9)


def test_student_t_matches_scipy() -> None:
    for t, df in itertools.product(
        (-40.0, -8.0, -4.3, -2.0, -0.3, 0.0, 0.7, 3.0, 12.0), (0.5, 1.0, 2.7, 6.0, 40.0, 3000.0)
    ):
        expected = float(stats.t.cdf(t, df))
        assert student_cdf(t, df) == pytest.approx(expected, rel=1e-7, abs=1e-300)
    with pytest.raises(ValueError, match="df"):
        student_cdf(1.0, 0.0)


WOBBLING = [passing(100, round(100 * (1 - p))) for p in (0.70, 0.90, 0.75, 0.85, 0.80, 0.72, 0.88)]
"""Seven known-good runs of 100 whose pass rates move from 70% to 90% (mean 80%)."""


def test_a_run_inside_the_wobble_is_not_significant_where_the_pooled_test_alone_is() -> None:
    current = passing(100, 30)  # 70%: as low as the worst known-good day
    pooled = unpaired_test(current, [s for run in WOBBLING for s in run])
    found = unpaired_runs_test([current], WOBBLING)
    assert pooled is not None
    assert found is not None
    assert pooled.p_lower < 0.02
    assert found.p_lower > 0.1
    assert found.p_pooled == pooled.p_lower
    assert found.between_run_sd is not None
    assert found.between_run_sd == pytest.approx(math.sqrt(between_run_variance(WOBBLING)))
    assert found.z > pooled.z
    assert found.ci_low < pooled.ci_low
    assert found.mean_difference == pooled.mean_difference


def test_a_fall_far_below_the_wobble_is_still_significant() -> None:
    found = unpaired_runs_test([passing(100, 60)], WOBBLING)  # 40%
    assert found is not None
    assert found.p_lower < 0.005


def test_on_a_stable_baseline_the_p_is_the_exact_one() -> None:
    baseline = [passing(100, 20)] * 7
    for failing in (20, 26, 30, 40):
        current = passing(100, failing)
        exact = unpaired_test(current, [s for run in baseline for s in run])
        found = unpaired_runs_test([current], baseline)
        assert exact is not None
        assert found is not None
        assert found.between_run_sd == 0.0
        assert found.p_lower == exact.p_lower


@pytest.mark.parametrize("seed", range(4))
def test_the_guard_never_lowers_the_pooled_p(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(20):
        rate = rng.uniform(0.5, 0.9)
        runs = [
            [float(rng.random() < rate + rng.gauss(0, 0.03)) for _ in range(60)] for _ in range(7)
        ]
        ratings = [[float(rng.randint(1, 5)) for _ in range(60)] for _ in range(7)]
        for reference in (runs, ratings):
            current = reference[0][:40]
            found = unpaired_runs_test([current], reference[1:])
            exact = unpaired_test(current, [s for run in reference[1:] for s in run])
            assert found is not None
            assert exact is not None
            assert found.p_lower >= exact.p_lower
            assert found.p_floor == exact.p_floor


def test_the_wobble_can_be_measured_on_more_runs_than_the_baseline() -> None:
    # The pool is one steady run; the history's known-good runs show the wobble.
    current, pool = passing(100, 30), [passing(100, 20)]
    alone = unpaired_runs_test([current], pool)
    wider = unpaired_runs_test([current], pool, spread=WOBBLING)
    assert alone is not None
    assert wider is not None
    assert alone.p_pooled is None
    assert wider.baseline_mean == alone.baseline_mean == pytest.approx(0.8)
    assert wider.p_lower > alone.p_lower
    assert wider.between_run_sd == pytest.approx(math.sqrt(between_run_variance(WOBBLING)))


def test_without_two_baseline_runs_the_pooled_test_stands() -> None:
    current, baseline = passing(100, 30), passing(700, 140)
    found = unpaired_runs_test([current], [baseline])
    assert found == unpaired_test(current, baseline)
    assert found is not None
    assert found.p_pooled is None
    assert unpaired_runs_test([current[:10]], WOBBLING) is None
