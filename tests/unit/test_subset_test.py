"""The exact subset test of the drift rule (``core.subset_test``), against brute force."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from continuous_eval.core.subset_test import CaseRuns, subset_p_lower

FAST = settings(max_examples=150, derandomize=True, deadline=None)


def brute_force(cases: list[CaseRuns]) -> Fraction:
    """Count every choice of which of each case's values were the recent ones."""
    per_case: list[list[float]] = []
    observed = 0.0
    for case in cases:
        values = (*case.recent, *case.reference)
        size = len(case.recent)
        per_case.append(
            [
                sum(values[i] for i in chosen)
                for chosen in itertools.combinations(range(len(values)), size)
            ]
        )
        observed += sum(case.recent)
    hits = total = 0
    for pick in itertools.product(*per_case):
        total += 1
        hits += sum(pick) <= observed + 1e-9
    return Fraction(hits, total)


score = st.integers(1, 5).map(float)
case_runs = st.builds(
    lambda recent, reference: CaseRuns(tuple(recent), tuple(reference)),
    st.lists(score, min_size=1, max_size=3),
    st.lists(score, min_size=1, max_size=4),
)


@FAST
@given(cases=st.lists(case_runs, min_size=1, max_size=3))
def test_p_equals_a_count_of_every_choice_of_recent_runs(cases: list[CaseRuns]) -> None:
    assert subset_p_lower(cases) == pytest.approx(float(brute_force(cases)), rel=1e-12, abs=1e-15)


def test_one_flaky_case_is_the_hypergeometric_tail() -> None:
    """A case failing in 5 of 7 recent runs and 6 of 20 before: P(5 or more of 11 failures)."""
    case = CaseRuns((0.0,) * 5 + (1.0,) * 2, (0.0,) * 6 + (1.0,) * 14)
    fails, size, chosen = 11, 27, 7
    tail = sum(
        math.comb(fails, k) * math.comb(size - fails, chosen - k) for k in range(5, chosen + 1)
    ) / math.comb(size, chosen)
    assert subset_p_lower([case]) == pytest.approx(tail, rel=1e-12)
    # Constant cases change nothing (19 cases that always passed).
    always = [CaseRuns((1.0,) * 7, (1.0,) * 20)] * 19
    assert subset_p_lower([case, *always]) == pytest.approx(tail, rel=1e-12)


def test_nothing_that_varies_gives_p_one_and_bad_values_are_refused() -> None:
    assert subset_p_lower([CaseRuns((1.0,), (1.0, 1.0))]) == 1.0
    assert subset_p_lower([CaseRuns((), (1.0,)), CaseRuns((2.0,), ())]) == 1.0
    with pytest.raises(ValueError, match="finite"):
        subset_p_lower([CaseRuns((math.nan,), (1.0,))])


def test_fractional_scores_are_tested_on_their_grid() -> None:
    low = CaseRuns((0.25, 0.25), (0.75, 0.5, 1.0))
    assert subset_p_lower([low]) == pytest.approx(float(brute_force([low])), rel=1e-12)
