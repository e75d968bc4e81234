"""Trajectory scorers: the tool calls an answer made against the calls a case expects.

Pure. The answered trajectory is ``core.trajectory.tool_calls(case.steps)``
(the runner fills ``case.steps`` from an agent target's stream, a recorded
interaction carries them); the expected one is ``case.expected_trajectory``.

Whether one answered call stands for one expected call is the argument rule:

- ``ignore``: the names are equal;
- ``keys``: the names are equal and every argument of the expected call is
  present in the answered one with an equal value (extra arguments are fine:
  a case names what matters, not every default the agent passes);
- ``exact``: the names and the whole argument objects are equal.

The measures:

- ``exact``: as many calls as expected, each matching the expected call at
  its position: 1 or 0;
- ``in_order``: the expected calls appear in the answer in their order, other
  calls between them allowed (a subsequence): 1 or 0;
- ``any_order``: each expected call is matched by a distinct answered call,
  in any order (a multiset inclusion): 1 or 0;
- ``precision``, ``recall``, ``f1``: over the largest one-to-one matching of
  answered to expected calls (``m`` pairs), ``m / answered``, ``m / expected``
  and their harmonic mean.

Empty trajectories: two empty lists agree perfectly (every measure 1.0). An
empty expected list is a subsequence and a sub-multiset of anything
(``in_order`` and ``any_order`` 1), but ``exact`` needs the answer empty too.
A ratio whose denominator is empty while the other list is not is 0: an agent
that called nothing when calls were expected has precision 0, and one that
called tools when none were expected has recall 0, so neither hides in a mean.

A case without ``expected_trajectory`` cannot be scored: ``ScorerError``, so
the result is an error, never a silent zero.
"""

from __future__ import annotations

from collections.abc import Sequence

from continuous_eval.core.models import ScoreOutcome
from continuous_eval.core.suite import ArgumentMatch, Case, TrajectoryScorer
from continuous_eval.core.trajectory import ToolCall, tool_calls
from continuous_eval.errors import ScorerError

__all__ = [
    "calls_match",
    "format_calls",
    "matched_pairs",
    "score_trajectory",
]

_SHOWN_CALLS = 8
"""Calls of each side a failed case's rationale lists."""
_ARGUMENT_CHARS = 60
"""Characters of one call's arguments a rationale quotes."""


def calls_match(expected: ToolCall, actual: ToolCall, rule: ArgumentMatch) -> bool:
    """Whether ``actual`` stands for ``expected`` under the argument rule."""
    if expected.name != actual.name:
        return False
    if rule == "ignore":
        return True
    if rule == "exact":
        return expected.arguments == actual.arguments
    return all(
        key in actual.arguments and actual.arguments[key] == value
        for key, value in expected.arguments.items()
    )


def matched_pairs(
    expected: Sequence[ToolCall], actual: Sequence[ToolCall], rule: ArgumentMatch
) -> int:
    """The size of the largest one-to-one matching of answered to expected calls.

    ``keys`` is not an equivalence (a call with more arguments matches a call
    with fewer, not the reverse), so a greedy first-fit could pair an answered
    call with the wrong expected one and undercount; augmenting paths (Kuhn's
    algorithm) find the maximum. Trajectories are short, so O(n * m^2) is cheap.
    """
    edges = [[j for j, a in enumerate(actual) if calls_match(e, a, rule)] for e in expected]
    owner: list[int | None] = [None] * len(actual)

    def augment(i: int, seen: set[int]) -> bool:
        for j in edges[i]:
            if j in seen:
                continue
            seen.add(j)
            holder = owner[j]
            if holder is None or augment(holder, seen):
                owner[j] = i
                return True
        return False

    return sum(augment(i, set()) for i in range(len(expected)))


def _in_order(expected: Sequence[ToolCall], actual: Sequence[ToolCall], rule: ArgumentMatch) -> int:
    """How many expected calls, from the first, appear in order in ``actual``.

    Taking the earliest answered call that matches each expected call in turn
    is optimal for a subsequence under any match rule: a later choice never
    leaves more room for the calls after it.
    """
    found = 0
    for call in actual:
        if found < len(expected) and calls_match(expected[found], call, rule):
            found += 1
    return found


def _ratio(numerator: int, denominator: int, other: int) -> float:
    if denominator == 0:
        return 1.0 if other == 0 else 0.0
    return numerator / denominator


def _measure(
    config: TrajectoryScorer, expected: Sequence[ToolCall], actual: Sequence[ToolCall]
) -> float:
    rule = config.arguments
    if config.match == "exact":
        same = len(expected) == len(actual) and all(
            calls_match(e, a, rule) for e, a in zip(expected, actual, strict=True)
        )
        return 1.0 if same else 0.0
    if config.match == "in_order":
        return 1.0 if _in_order(expected, actual, rule) == len(expected) else 0.0
    matched = matched_pairs(expected, actual, rule)
    if config.match == "any_order":
        return 1.0 if matched == len(expected) else 0.0
    precision = _ratio(matched, len(actual), len(expected))
    recall = _ratio(matched, len(expected), len(actual))
    if config.match == "precision":
        return precision
    if config.match == "recall":
        return recall
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _format_call(call: ToolCall) -> str:
    if not call.arguments:
        return f"{call.name}()"
    inner = ", ".join(f"{key}={value!r}" for key, value in call.arguments.items())
    if len(inner) > _ARGUMENT_CHARS:
        inner = inner[: _ARGUMENT_CHARS - 1] + "…"
    return f"{call.name}({inner})"


def format_calls(calls: Sequence[ToolCall]) -> str:
    """A short, readable list of calls for a rationale: ``[search(q='x'), fetch()]``."""
    shown = ", ".join(_format_call(call) for call in calls[:_SHOWN_CALLS])
    more = f", and {len(calls) - _SHOWN_CALLS} more" if len(calls) > _SHOWN_CALLS else ""
    return f"[{shown}{more}]"


def score_trajectory(config: TrajectoryScorer, case: Case) -> ScoreOutcome:
    """Score the case's answered tool calls against its ``expected_trajectory``.

    A 1/0 measure passes at 1; a ratio passes at ``pass_threshold`` or above.
    A case that falls short carries a rationale listing both trajectories.

    Raises:
        ScorerError: The case has no ``expected_trajectory``.
    """
    if case.expected_trajectory is None:
        raise ScorerError("case has no 'expected_trajectory' to compare the tool calls with")
    expected = case.expected_trajectory
    actual = tool_calls(case.steps)
    score = _measure(config, expected, actual)
    binary = config.match in ("exact", "in_order", "any_order")
    passed = score == 1.0 if binary else score >= config.pass_threshold
    if score == 1.0:
        return ScoreOutcome(score=score, passed=passed)
    how = config.match.replace("_", " ")
    rationale = (
        f"{how} ({config.arguments} arguments): expected {format_calls(expected)}, "
        f"got {format_calls(actual)}"
    )
    return ScoreOutcome(score=score, passed=passed, rationale=rationale)
