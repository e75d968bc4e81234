"""Adjusted p-values for a run's family of keys: Benjamini-Hochberg and Holm.

Hand-computed examples pin the numbers; the properties (order, rank, ties,
Holm never below BH) hold for any input.
"""

from __future__ import annotations

import itertools
import random
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from continuous_eval.core.decisions import EPSILON
from continuous_eval.core.error_control import Correction, adjust

FAST = settings(max_examples=200, derandomize=True, deadline=None)
METHODS: list[Correction] = ["bh", "holm"]
p_values = st.lists(st.floats(0.0, 1.0), max_size=30)


# --- hand-computed examples -------------------------------------------------------


def test_bh_by_hand() -> None:
    """Sorted 0.005, 0.01, 0.03, 0.04 (m = 4): p*m/rank = 0.02, 0.02, 0.04, 0.04."""
    assert adjust([0.01, 0.04, 0.03, 0.005], "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_bh_steps_up_from_the_largest() -> None:
    """p*m/rank = 0.03, 0.05, 0.04, 0.2: the 0.05 takes the 0.04 of a larger p-value."""
    adjusted = adjust([0.2, 0.03, 0.01, 0.025], "bh")
    assert adjusted == pytest.approx([0.2, 0.04, 0.04, 0.04])


def test_bh_is_capped_at_one() -> None:
    """0.8 * 2 / 1 = 1.6, but the larger 0.9 * 2 / 2 = 0.9 bounds it."""
    assert adjust([0.9, 0.8], "bh") == pytest.approx([0.9, 0.9])
    assert adjust([0.7], "bh") == [0.7]


def test_holm_by_hand() -> None:
    """Sorted 0.005, 0.01, 0.03, 0.04: p*(m - rank) = 0.02, 0.03, 0.06, 0.04, then a running max."""
    assert adjust([0.01, 0.04, 0.03, 0.005], "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_is_capped_at_one() -> None:
    assert adjust([0.9, 0.8], "holm") == [1.0, 1.0]


def test_ties_get_one_value() -> None:
    """BH: 0.02*3/2 = 0.03 for both; Holm: 0.02*3 = 0.06 for both."""
    assert adjust([0.02, 0.5, 0.02], "bh") == pytest.approx([0.03, 0.5, 0.03])
    assert adjust([0.02, 0.5, 0.02], "holm") == pytest.approx([0.06, 0.5, 0.06])


@pytest.mark.parametrize("method", METHODS)
def test_an_empty_family_adjusts_nothing(method: Correction) -> None:
    assert adjust([], method) == []


@pytest.mark.parametrize("method", METHODS)
def test_a_family_of_one_is_its_own_p_value(method: Correction) -> None:
    assert adjust([0.0371], method) == [0.0371]


@pytest.mark.parametrize("q", [0.01, 0.05, 0.1])
@pytest.mark.parametrize("m", [1, 7, 29, 150])
def test_bh_with_every_p_equal_to_q_rejects_all(q: float, m: int) -> None:
    """The complete null's worst case for BH: all m keys at q are significant at q.

    q * m / m is not always q in floats (one unit in the last place above it
    for some m), which is why the detector compares with ``fdr + EPSILON``.
    """
    adjusted = adjust([q] * m, "bh")
    assert adjusted == pytest.approx([q] * m, rel=1e-12)
    assert all(a <= q + EPSILON for a in adjusted)


# --- properties -------------------------------------------------------------------


@FAST
@given(ps=p_values, method=st.sampled_from(METHODS), seed=st.randoms(use_true_random=False))
def test_the_order_of_input_does_not_matter(
    ps: list[float], method: Correction, seed: random.Random
) -> None:
    order = list(range(len(ps)))
    seed.shuffle(order)
    shuffled = adjust([ps[i] for i in order], method)
    original = adjust(ps, method)
    assert shuffled == [original[i] for i in order]


@FAST
@given(ps=p_values, method=st.sampled_from(METHODS))
def test_adjusted_values_are_monotone_in_rank_and_never_below_the_raw(
    ps: list[float], method: Correction
) -> None:
    adjusted = adjust(ps, method)
    ranked = sorted(zip(ps, adjusted, strict=True))
    for (p, a), (p_next, a_next) in itertools.pairwise(ranked):
        assert p <= p_next
        assert a <= a_next
    for p, a in zip(ps, adjusted, strict=True):
        assert p <= a <= 1.0


@FAST
@given(ps=p_values)
def test_holm_is_never_below_bh(ps: list[float]) -> None:
    """Holm controls the family-wise error, a stronger promise, so it never rejects more."""
    for holm, bh in zip(adjust(ps, "holm"), adjust(ps, "bh"), strict=True):
        assert holm >= bh


# --- refused input ----------------------------------------------------------------


@pytest.mark.parametrize("bad", [-0.01, 1.01, float("nan"), float("inf")])
@pytest.mark.parametrize("method", METHODS)
def test_a_p_value_outside_zero_one_is_refused(bad: float, method: Correction) -> None:
    with pytest.raises(ValueError, match="outside"):
        adjust([0.5, bad], method)


@pytest.mark.parametrize("ps", [[], [0.1, 0.2]])
def test_an_unknown_method_is_refused(ps: list[float]) -> None:
    with pytest.raises(ValueError, match="unknown correction"):
        adjust(ps, cast(Correction, "bonferroni"))
