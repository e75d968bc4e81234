"""The exact per-case exchangeability test: against brute force, the classic tests, and its order.

The test is exact, so every check here is exact too: p-values are compared
with ``==`` against a count of outcomes done with ``fractions.Fraction``
(Python rounds an int / int division once, correctly, and so does
``float(Fraction)``), never with a tolerance.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from continuous_eval.core.paired_test import (
    Z_LIMIT,
    CaseEvidence,
    PairedTest,
    paired_test,
    t_quantile_975,
)

FAST = settings(max_examples=200, derandomize=True, deadline=None)
"""Deterministic and quick: the whole module runs in a few seconds."""

ExactCase = tuple[Fraction, tuple[Fraction, ...]]
"""(current, history) with exact values, for the brute force."""


def case(current: float, *history: float, case_id: str = "c") -> CaseEvidence:
    return CaseEvidence(case_id, current, tuple(history))


def cases_of(exact: Sequence[ExactCase]) -> list[CaseEvidence]:
    """The same cases as floats, as the detector would see them."""
    return [
        CaseEvidence(f"c{i}", float(cur), tuple(float(h) for h in hist))
        for i, (cur, hist) in enumerate(exact)
    ]


def run_test(cases: Sequence[CaseEvidence]) -> PairedTest:
    result = paired_test(cases)
    assert result is not None
    return result


def brute_force(exact: Sequence[ExactCase]) -> tuple[Fraction, Fraction]:
    """(P(sum <= observed), P(sum >= observed)) over every pick of one value per case."""
    observed = sum((cur for cur, _ in exact), Fraction(0))
    values = [(cur, *hist) for cur, hist in exact]
    at_or_below = at_or_above = total = 0
    for picks in itertools.product(*values):
        total += 1
        picked = sum(picks, Fraction(0))
        at_or_below += picked <= observed
        at_or_above += picked >= observed
    return Fraction(at_or_below, total), Fraction(at_or_above, total)


def mid_p_score(lower: Fraction, upper: Fraction) -> float:
    """Phi^-1 of the mid-p P(T < t) + P(T = t) / 2 = (1 + lower - upper) / 2, clipped."""
    mid = (1 + lower - upper) / 2
    if mid == Fraction(1, 2):
        return 0.0
    z = statistics.NormalDist().inv_cdf(float(mid))
    return max(-Z_LIMIT, min(Z_LIMIT, z))


@st.composite
def grid_cases(draw: st.DrawFn, max_cases: int = 5, max_history: int = 4) -> list[ExactCase]:
    """Cases with scores k / G on one grid G: integers (G = 1) or fractions."""
    grid = draw(st.sampled_from([1, 2, 4, 5, 10, 100]))
    top = 5 * grid if grid <= 5 else grid  # 0..5 on coarse grids, 0..1 on fine ones
    value = st.integers(0, top).map(lambda k: Fraction(k, grid))
    n = draw(st.integers(1, max_cases))
    return [
        (draw(value), tuple(draw(st.lists(value, min_size=1, max_size=max_history))))
        for _ in range(n)
    ]


# --- against brute force ----------------------------------------------------------


@FAST
@given(exact=grid_cases())
def test_p_values_equal_a_brute_force_count_of_every_pick(exact: list[ExactCase]) -> None:
    lower, upper = brute_force(exact)
    result = run_test(cases_of(exact))
    assert result.p_lower == float(lower)
    assert result.p_upper == float(upper)
    assert result.p_two_sided == min(1.0, 2 * min(float(lower), float(upper)))
    assert result.z == pytest.approx(mid_p_score(lower, upper), rel=1e-9, abs=1e-12)


@FAST
@given(
    pairs=st.lists(
        st.tuples(st.sampled_from([0, 1]), st.sampled_from([0, 1])), min_size=1, max_size=60
    )
)
def test_one_baseline_and_pass_rates_is_the_exact_mcnemar_test(
    pairs: list[tuple[int, int]],
) -> None:
    """Only discordant pairs count; under the null each is a fair coin."""
    result = run_test([case(float(now), float(before)) for before, now in pairs])
    d = sum(before != now for before, now in pairs)
    k = sum(before < now for before, now in pairs)  # discordant pairs that went up
    lower = Fraction(sum(math.comb(d, j) for j in range(k + 1)), 2**d)
    upper = Fraction(sum(math.comb(d, j) for j in range(k, d + 1)), 2**d)
    assert result.p_lower == float(lower)
    assert result.p_upper == float(upper)


def sign_flip(differences: Sequence[int]) -> tuple[Fraction, Fraction]:
    """The exact sign-flip distribution of sum(s_i * d_i), by convolution over cases."""
    counts = Counter({0: 1})
    for d in differences:
        step: Counter[int] = Counter()
        for total, c in counts.items():
            step[total + d] += c
            step[total - d] += c
        counts = step
    observed = sum(differences)
    n = 2 ** len(differences)
    below = sum(c for total, c in counts.items() if total <= observed)
    above = sum(c for total, c in counts.items() if total >= observed)
    return Fraction(below, n), Fraction(above, n)


@FAST
@given(pairs=st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5)), min_size=1, max_size=40))
def test_one_baseline_and_judge_scores_is_the_exact_sign_flip_test(
    pairs: list[tuple[int, int]],
) -> None:
    result = run_test([case(float(now), float(before)) for before, now in pairs])
    lower, upper = sign_flip([now - before for before, now in pairs])
    assert result.p_lower == float(lower)
    assert result.p_upper == float(upper)


# --- monotone in the data ---------------------------------------------------------


@st.composite
def lowered(draw: st.DrawFn, grid: int) -> tuple[list[CaseEvidence], list[CaseEvidence]]:
    """Cases on ``grid`` (scores 0..5), and the same cases with one current score lowered."""
    value = st.integers(0, 5 * grid)
    n = draw(st.integers(1, 8))
    raw = [(draw(value), draw(st.lists(value, min_size=1, max_size=7)), f"c{i}") for i in range(n)]
    i = draw(st.integers(0, n - 1))
    cur, hist, cid = raw[i]
    lower_to = draw(st.integers(-grid, cur))  # possibly below every value seen, or unchanged
    changed = [*raw[:i], (lower_to, hist, cid), *raw[i + 1 :]]

    def build(rows: list[tuple[int, list[int], str]]) -> list[CaseEvidence]:
        return [CaseEvidence(c, k / grid, tuple(h / grid for h in hs)) for k, hs, c in rows]

    return build(raw), build(changed)


@FAST
@given(data=lowered(grid=1))
def test_lowering_a_current_integer_score_never_raises_p(
    data: tuple[list[CaseEvidence], list[CaseEvidence]],
) -> None:
    before, after = data
    assert run_test(after).p_lower <= run_test(before).p_lower


@FAST
@given(data=lowered(grid=4))
def test_lowering_a_current_quarter_score_never_raises_p(
    data: tuple[list[CaseEvidence], list[CaseEvidence]],
) -> None:
    """Also when the lowered value moves the lattice (e.g. from integers to quarters)."""
    before, after = data
    assert run_test(after).p_lower <= run_test(before).p_lower


# --- the floor and what carries evidence ------------------------------------------


def test_p_floor_is_the_product_of_one_over_h_plus_one() -> None:
    """Constant cases count: they could have fallen below their history."""
    cases = [
        case(4.0, 4.0, case_id="a"),
        case(3.0, 5.0, 4.0, case_id="b"),
        case(1.0, 1.0, 1.0, 1.0, case_id="c"),
        case(2.0, 1.0, 2.0, 3.0, 4.0, 5.0, 1.0, case_id="d"),
    ]
    assert run_test(cases).p_floor == pytest.approx(1 / 2 * 1 / 3 * 1 / 4 * 1 / 7, rel=1e-12)


def test_constant_cases_contribute_nothing() -> None:
    varying = [case(3.0, 4.0, 5.0, case_id="a"), case(2.0, 3.0, 2.0, 4.0, case_id="b")]
    constant = [case(5.0, 5.0, 5.0, case_id="k1"), case(1.0, 1.0, case_id="k2")]
    alone, padded = run_test(varying), run_test([*varying, *constant])
    assert (padded.p_lower, padded.p_upper, padded.z) == (alone.p_lower, alone.p_upper, alone.z)


def test_a_case_that_always_passed_and_fails_now_gives_one_in_h_plus_one() -> None:
    assert run_test([case(0.0, *[1.0] * 7)]).p_lower == 1 / 8


def test_four_of_ten_stable_cases_failing_gives_eight_to_the_minus_four() -> None:
    cases = [case(0.0 if i < 4 else 1.0, *[1.0] * 7, case_id=f"c{i}") for i in range(10)]
    result = run_test(cases)
    assert result.p_lower == 8.0**-4
    assert result.p_floor == pytest.approx(8.0**-10, rel=1e-12)
    assert result.mean_difference == pytest.approx(-0.4)


def test_one_failure_of_a_flaky_case_is_a_one_in_eight_event_not_four_sigma() -> None:
    """A case that passed in 7 runs and fails now: mid-p 1/16, whatever its variance says."""
    result = run_test([case(0.0, *[1.0] * 7)])
    assert result.z == pytest.approx(statistics.NormalDist().inv_cdf(1 / 16), rel=1e-12)


def test_a_collapse_is_clipped_to_z_limit() -> None:
    cases = [case(1.0, 5.0, 5.0, 4.0, case_id=f"c{i}") for i in range(400)]
    assert run_test(cases).z == -Z_LIMIT


def test_z_is_zero_and_p_one_when_nothing_varies() -> None:
    result = run_test([case(4.0, 4.0, 4.0, case_id=f"c{i}") for i in range(5)])
    assert (result.z, result.p_lower, result.p_upper) == (0.0, 1.0, 1.0)
    assert (result.mean_difference, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)


def test_no_case_no_test_and_one_case_no_interval() -> None:
    assert paired_test([]) is None
    one = run_test([case(3.0, 4.0)])
    assert (one.n_paired, one.ci_low, one.ci_high) == (1, None, None)


def test_summary_numbers_are_paired_means() -> None:
    result = run_test([case(3.0, 4.0, 5.0, case_id="a"), case(2.0, 2.0, case_id="b")])
    assert result.n_paired == 2
    assert result.current_mean == 2.5
    assert result.baseline_mean == pytest.approx(3.25)
    assert result.mean_difference == pytest.approx(-0.75)
    assert result.ci_low is not None
    assert result.ci_high is not None
    assert result.ci_low < result.mean_difference < result.ci_high


# --- Student's t ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("df", "table"),
    [(1, 12.706), (2, 4.303), (10, 2.228), (30, 2.042), (100, 1.984)],
)
def test_t_quantile_matches_the_tables(df: int, table: float) -> None:
    assert t_quantile_975(df) == pytest.approx(table, abs=0.002)


@pytest.mark.parametrize(("df", "table"), [(3, 3.182), (4, 2.776), (5, 2.571), (40, 2.021)])
def test_t_quantile_matches_the_tables_for_few_and_many_degrees_of_freedom(
    df: int, table: float
) -> None:
    assert t_quantile_975(df) == pytest.approx(table, abs=0.001)


def test_t_quantile_needs_a_degree_of_freedom() -> None:
    with pytest.raises(ValueError, match="df"):
        t_quantile_975(0)


# --- size and bad input -----------------------------------------------------------


def test_a_500_case_run_with_seven_baselines_is_decided() -> None:
    """Big integers, not floats: the count stays exact at any size."""
    rng = random.Random(500)
    cases = [
        CaseEvidence(
            f"c{i}", float(rng.randint(1, 5)), tuple(float(rng.randint(1, 5)) for _ in range(7))
        )
        for i in range(500)
    ]
    result = run_test(cases)
    assert result.n_paired == 500
    assert 0.0 < result.p_lower <= 1.0
    assert 0.0 < result.p_upper <= 1.0
    assert result.p_lower + result.p_upper >= 1.0  # the observed sum is in both tails
    fallen = run_test([replace_current(c, 1.0) for c in cases])
    assert fallen.p_lower < 1e-100


def replace_current(evidence: CaseEvidence, current: float) -> CaseEvidence:
    return CaseEvidence(evidence.case_id, current, evidence.history)


def test_a_case_without_history_is_refused() -> None:
    with pytest.raises(ValueError, match="no baseline score"):
        paired_test([case(3.0, 4.0, case_id="a"), case(3.0, case_id="b")])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_score_that_is_not_finite_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        paired_test([case(bad, 4.0)])
    with pytest.raises(ValueError, match="not a finite number"):
        paired_test([case(4.0, 3.0, bad)])
