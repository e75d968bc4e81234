"""Trajectory scorers against hand-computed cases: orders, duplicates, arguments, empties."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import JsonValue

from continuous_eval.core.scorers import DeterministicScorer
from continuous_eval.core.suite import (
    ArgumentMatch,
    Case,
    Dataset,
    Feature,
    TrajectoryMatch,
    TrajectoryScorer,
)
from continuous_eval.core.trajectory import Step, ToolCall
from continuous_eval.core.trajectory_scores import matched_pairs, score_trajectory
from continuous_eval.errors import ScorerError


def call(name: str, **arguments: JsonValue) -> ToolCall:
    return ToolCall(name=name, arguments=arguments)


def steps(*calls: ToolCall) -> tuple[Step, ...]:
    """The steps of an agent that made these calls, each answered by a result."""
    out: list[Step] = []
    for index, c in enumerate(calls):
        out.append(Step(kind="tool_call", name=c.name, arguments=c.arguments, id=f"c{index}"))
        out.append(Step(kind="tool_result", id=f"c{index}", content="ok"))
    out.append(Step(kind="message", role="assistant", content="done"))
    return tuple(out)


def case(expected: list[ToolCall] | None, actual: list[ToolCall]) -> Case:
    return Case(
        id="1",
        input="q",
        expected_trajectory=None if expected is None else tuple(expected),
        steps=steps(*actual),
    )


def score(
    match: TrajectoryMatch,
    expected: list[ToolCall] | None,
    actual: list[ToolCall],
    arguments: ArgumentMatch = "keys",
    **kw: Any,
) -> float:
    config = TrajectoryScorer(type="trajectory", match=match, arguments=arguments, **kw)
    return score_trajectory(config, case(expected, actual)).score


A, B, C = call("a"), call("b"), call("c")


@pytest.mark.parametrize(
    ("match", "expected", "actual", "want"),
    [
        # exact: same calls, same order, same length
        ("exact", [A, B], [A, B], 1.0),
        ("exact", [A, B], [B, A], 0.0),
        ("exact", [A, B], [A, B, C], 0.0),
        ("exact", [A, B], [A], 0.0),
        # in_order: a subsequence, extra calls between allowed
        ("in_order", [A, C], [A, B, C], 1.0),
        ("in_order", [A, C], [C, A], 0.0),
        ("in_order", [A, A], [A, B], 0.0),
        ("in_order", [A, A], [A, B, A], 1.0),
        # any_order: multiset inclusion
        ("any_order", [A, B], [B, C, A], 1.0),
        ("any_order", [A, A, B], [A, B, B], 0.0),
        ("any_order", [A, A], [A, A, A], 1.0),
        # precision / recall / f1 over the one-to-one matching
        ("precision", [A, B], [A, B, C, C], 0.5),
        ("recall", [A, B, C, C], [A, C], 0.5),
        ("recall", [A, A, A], [A], 1 / 3),
        ("precision", [A], [A, A, A], 1 / 3),
        ("f1", [A, B], [A, C], 0.5),
        ("f1", [A, B, C], [A], 0.5),  # p = 1, r = 1/3 -> 2 * 1/3 / (4/3)
        ("f1", [A], [B], 0.0),
    ],
)
def test_measures_by_hand(
    match: TrajectoryMatch, expected: list[ToolCall], actual: list[ToolCall], want: float
) -> None:
    assert score(match, expected, actual) == pytest.approx(want)


@pytest.mark.parametrize(
    ("match", "want_expected_empty", "want_actual_empty"),
    [
        ("exact", 0.0, 0.0),
        ("in_order", 1.0, 0.0),
        ("any_order", 1.0, 0.0),
        ("precision", 0.0, 0.0),
        ("recall", 0.0, 0.0),
        ("f1", 0.0, 0.0),
    ],
)
def test_empty_trajectories(
    match: TrajectoryMatch, want_expected_empty: float, want_actual_empty: float
) -> None:
    assert score(match, [], []) == 1.0  # both empty: perfect agreement
    assert score(match, [], [A]) == want_expected_empty
    assert score(match, [A], []) == want_actual_empty


def test_arguments_by_keys_allow_extra_actual_keys_but_not_a_different_value() -> None:
    expected = [call("search", q="refund")]
    assert score("exact", expected, [call("search", q="refund", limit=5)]) == 1.0
    assert score("exact", expected, [call("search", q="refunds")]) == 0.0
    assert score("exact", expected, [call("search")]) == 0.0
    # The reverse is not a match: the expected call's keys must be present.
    assert score("exact", [call("search", q="x", limit=5)], [call("search", q="x")]) == 0.0


def test_arguments_exact_needs_equal_objects_and_ignore_needs_names_only() -> None:
    expected = [call("search", q="refund")]
    extra = [call("search", q="refund", limit=5)]
    assert score("exact", expected, extra, arguments="exact") == 0.0
    assert score("exact", expected, [call("search", q="refund")], arguments="exact") == 1.0
    assert score("exact", expected, [call("search", q="other")], arguments="ignore") == 1.0
    assert score("exact", expected, [call("fetch", q="refund")], arguments="ignore") == 0.0


def test_nested_argument_values_compare_as_json() -> None:
    expected = [call("book", seat={"row": 3, "col": "A"})]
    assert score("exact", expected, [call("book", seat={"col": "A", "row": 3}, x=1)]) == 1.0
    assert score("exact", expected, [call("book", seat={"row": 3})]) == 0.0


def test_the_matching_is_maximal_where_first_fit_would_undercount() -> None:
    # The first answered call matches both expected calls under ``keys``; a
    # greedy pairing of it with the looser expectation leaves the stricter
    # one unmatched. The maximum matching pairs both.
    loose, strict = call("search"), call("search", q="x")
    answered = [call("search", q="x"), call("search", q="y")]
    assert matched_pairs([loose, strict], answered, "keys") == 2
    assert score("any_order", [loose, strict], answered) == 1.0
    assert score("recall", [loose, strict], answered) == 1.0


def test_in_order_with_an_argument_mismatch_in_between() -> None:
    expected = [call("search", q="x"), call("fetch", id=1)]
    answered = [
        call("search", q="y"),
        call("search", q="x"),
        call("fetch", id=2),
        call("fetch", id=1),
    ]
    assert score("in_order", expected, answered) == 1.0
    assert score("exact", expected, answered) == 0.0
    assert score("precision", expected, answered) == 0.5


def test_a_case_without_an_expected_trajectory_is_an_error_not_a_zero() -> None:
    with pytest.raises(ScorerError, match="expected_trajectory"):
        score("exact", None, [A])


def test_pass_threshold_and_rationale() -> None:
    config = TrajectoryScorer(type="trajectory", match="recall", pass_threshold=0.5)
    half = score_trajectory(config, case([A, B], [A]))
    assert (half.score, half.passed) == (0.5, True)
    assert half.rationale == "recall (keys arguments): expected [a(), b()], got [a()]"
    strict = TrajectoryScorer(type="trajectory", match="in_order")
    failed = score_trajectory(strict, case([call("s", q="x")], [call("s", q="y")]))
    assert (failed.score, failed.passed) == (0.0, False)
    assert "expected [s(q='x')], got [s(q='y')]" in (failed.rationale or "")
    perfect = score_trajectory(strict, case([A], [A]))
    assert (perfect.passed, perfect.rationale) == (True, None)


async def test_deterministic_scorer_wraps_the_trajectory_config() -> None:
    scorer = DeterministicScorer(TrajectoryScorer(type="trajectory", match="any_order"))
    assert scorer.name == "trajectory"
    outcome = await scorer.score("the output text is not what is scored", case([B, A], [A, B]))
    assert outcome.score == 1.0


def test_suite_schema_reads_a_trajectory_scorer_and_expected_calls() -> None:
    feature = Feature.model_validate(
        {
            "dataset": {
                "cases": [
                    {
                        "input": "refund order 7",
                        "expected_trajectory": [
                            {"name": "lookup", "arguments": {"order": 7}},
                            {"name": "refund"},
                        ],
                    }
                ]
            },
            "target": {"type": "agent", "url": "http://127.0.0.1:1/agent"},
            "scorers": [{"type": "trajectory", "match": "f1", "arguments": "exact"}],
        }
    )
    scorer = feature.scorers[0]
    assert isinstance(scorer, TrajectoryScorer)
    assert (scorer.match, scorer.arguments) == ("f1", "exact")
    assert isinstance(feature.dataset, Dataset)
    cases = feature.dataset.cases or []
    assert cases[0].expected_trajectory == (call("lookup", order=7), call("refund"))


def test_defaults_are_in_order_by_keys() -> None:
    config = TrajectoryScorer(type="trajectory")
    assert (config.match, config.arguments, config.pass_threshold) == ("in_order", "keys", 1.0)
