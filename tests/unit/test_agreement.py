"""The judge's agreement figures, checked against scikit-learn, SciPy and textbook values."""

from __future__ import annotations

import json
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr  # type: ignore[import-untyped]
from sklearn.metrics import (  # type: ignore[import-untyped]
    cohen_kappa_score,
    confusion_matrix,
)

from continuous_eval.core.agreement import JudgedCase, measure


def _rated(pairs: list[tuple[float, float | None]]) -> list[JudgedCase]:
    return [
        JudgedCase(f"c{i:03d}", score=s, passed=s >= 4, label=label)
        for i, (s, label) in enumerate(pairs)
    ]


def _pass_fail(pairs: list[tuple[bool, float]]) -> list[JudgedCase]:
    return [
        JudgedCase(f"c{i:03d}", score=5.0 if p else 1.0, passed=p, label=label)
        for i, (p, label) in enumerate(pairs)
    ]


def test_unweighted_kappa_is_the_textbook_value() -> None:
    # Cohen's classic 2x2 example: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no:
    # p_o = 0.7, p_e = 0.5, kappa = 0.4.
    pairs = [(True, 1.0)] * 20 + [(False, 1.0)] * 5 + [(True, 0.0)] * 10 + [(False, 0.0)] * 15
    got = measure(_pass_fail(pairs), "pass_fail")
    assert got.kappa == pytest.approx(0.4)
    assert got.exact == pytest.approx(0.7)
    assert got.n == 50
    assert got.confusion.categories == (0.0, 1.0)
    assert got.confusion.matrix == ((15, 10), (5, 20))


def test_quadratic_kappa_of_opposite_extremes_is_minus_one() -> None:
    # Labels 1 and 5, judge 5 and 1: observed weighted disagreement 1, expected 0.5.
    got = measure(_rated([(5.0, 1.0), (1.0, 5.0)]), "1-5")
    assert got.kappa == pytest.approx(-1.0)
    assert got.exact == 0.0


def test_spearman_is_the_scipy_documentation_value() -> None:
    got = measure(_rated([(1, 5), (2, 5), (3, 5), (4, 5), (5, 4)]), "1-5")
    assert got.spearman == pytest.approx(spearmanr([1, 2, 3, 4, 5], [5, 5, 5, 5, 4]).statistic)
    got = measure(_rated([(1, 1), (2, 2), (3, 3), (4, 4), (5, 3)]), "1-5")
    assert got.spearman == pytest.approx(0.8207826816681233)


ratings = st.sampled_from([1.0, 2.0, 3.0, 4.0, 5.0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(ratings, ratings), min_size=2, max_size=40))
def test_rated_figures_match_the_libraries_called_directly(
    pairs: list[tuple[float, float]],
) -> None:
    got = measure(_rated(list(pairs)), "1-5")
    judge = [s for s, _ in pairs]
    labels = [la for _, la in pairs]
    cats = [1.0, 2.0, 3.0, 4.0, 5.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = cohen_kappa_score(labels, judge, labels=cats, weights="quadratic")
    if got.kappa is None:
        assert "kappa" in got.reasons
        assert len(set(judge) | set(labels)) == 1 or want != want
    else:
        assert got.kappa == pytest.approx(want)
        assert -1.0 - 1e-9 <= got.kappa <= 1.0 + 1e-9
    if got.spearman is None:
        assert len(set(judge)) == 1 or len(set(labels)) == 1
    else:
        assert got.spearman == pytest.approx(spearmanr(judge, labels).statistic)
    matrix = confusion_matrix(labels, judge, labels=cats).tolist()
    assert [list(r) for r in got.confusion.matrix] == matrix
    assert got.exact == pytest.approx(sum(j == la for j, la in pairs) / len(pairs))
    json.dumps(got.confusion.as_json(), allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from([0.0, 1.0])), min_size=2, max_size=40))
def test_pass_fail_kappa_matches_sklearn_unweighted(pairs: list[tuple[bool, float]]) -> None:
    got = measure(_pass_fail(list(pairs)), "pass_fail")
    judge = [1.0 if p else 0.0 for p, _ in pairs]
    labels = [la for _, la in pairs]
    if got.kappa is not None:
        want = cohen_kappa_score(labels, judge, labels=[0.0, 1.0])
        assert got.kappa == pytest.approx(want)
    else:
        assert len(set(judge) | set(labels)) == 1


def test_split_cases_are_counted_and_left_out() -> None:
    got = measure(_rated([(5.0, 5.0), (1.0, None), (4.0, 4.0), (2.0, 1.0)]), "1-5")
    assert got.n == 3
    assert got.split == 1
    assert all(c.case_id != "c001" for c in got.contradictions)


def test_degenerate_sets_give_none_with_a_reason_never_nan() -> None:
    one = measure(_rated([(5.0, 5.0)]), "1-5")
    assert one.kappa is None
    assert one.spearman is None
    assert "at least 2" in one.reasons["kappa"]
    same = measure(_rated([(5.0, 5.0), (5.0, 5.0), (5.0, 5.0)]), "1-5")
    assert same.kappa is None
    assert same.spearman is None
    assert same.exact == 1.0
    empty = measure([], "pass_fail")
    assert empty.exact is None
    assert empty.n == 0
    assert empty.confusion.matrix == ((0, 0), (0, 0))


def test_rated_contradictions_are_worst_first_and_capped() -> None:
    pairs: list[tuple[float, float | None]] = [(5.0, 4.0), (1.0, 5.0), (5.0, 2.0), (3.0, 3.0)]
    pairs += [(2.0, 1.0)] * 30
    got = measure(_rated(pairs), "1-5")
    assert [c.case_id for c in got.contradictions[:2]] == ["c001", "c002"]
    assert got.contradictions[0].gap == 4.0
    assert len(got.contradictions) == 20


def test_pass_fail_contradictions_put_false_passes_first() -> None:
    cases = [
        JudgedCase("a-strict", score=1.0, passed=False, label=1.0),
        JudgedCase("b-lenient4", score=4.0, passed=True, label=0.0),
        JudgedCase("c-lenient5", score=5.0, passed=True, label=0.0),
        JudgedCase("d-agrees", score=5.0, passed=True, label=1.0),
    ]
    got = measure(cases, "pass_fail")
    assert [c.case_id for c in got.contradictions] == ["c-lenient5", "b-lenient4", "a-strict"]
    assert got.contradictions[0].judge == 1.0
    assert got.contradictions[0].label == 0.0
