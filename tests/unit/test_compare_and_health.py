"""The dashboard's pure parts: how two runs' cases compare, a key's state, a sparkline."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from continuous_eval.core.compare import Change, classify, compare_runs, counts
from continuous_eval.core.decisions import Decision, DecisionKind, Incident
from continuous_eval.core.health import Health, health, sparkline
from continuous_eval.core.models import ResultRecord, ResultStatus, Usage

AT = datetime(2026, 1, 1, tzinfo=UTC)


def result(
    case: str, score: float | None, *, run: str = "r", scorer: str = "judge"
) -> ResultRecord:
    status = ResultStatus.OK if score is not None else ResultStatus.ERROR
    return ResultRecord(
        1, run, "f", case, scorer, status, score, None, None, None, None, None, Usage(), 1, AT
    )


def test_each_kind_of_change_is_named() -> None:
    assert classify(result("c", 4.0), result("c", 2.0)) is Change.FELL
    assert classify(result("c", 2.0), result("c", 4.0)) is Change.IMPROVED
    assert classify(result("c", 4.0), result("c", 4.0)) is Change.UNCHANGED
    assert classify(result("c", 4.0), result("c", None)) is Change.ERRORED
    assert classify(result("c", None), result("c", 3.0)) is Change.IMPROVED
    assert classify(None, result("c", 3.0)) is Change.ADDED
    assert classify(result("c", 3.0), None) is Change.REMOVED
    assert classify(None, result("c", None)) is Change.ERRORED


def test_the_largest_fall_comes_first_then_errors_then_rises() -> None:
    before = [result("a", 5.0), result("b", 5.0), result("c", 2.0), result("d", 3.0)]
    after = [result("a", 4.0), result("b", 1.0), result("c", 3.0), result("d", None)]
    after.append(result("e", 3.0))

    changes = compare_runs(before, after)

    assert [(c.case_id, c.change) for c in changes] == [
        ("b", Change.FELL),
        ("a", Change.FELL),
        ("d", Change.ERRORED),
        ("c", Change.IMPROVED),
        ("e", Change.ADDED),
    ]
    assert changes[0].delta == pytest.approx(-4.0)
    assert changes[2].delta is None
    tally = counts(changes)
    assert tally[Change.FELL] == 2
    assert tally[Change.UNCHANGED] == 0


def test_cases_pair_per_scorer() -> None:
    before = [result("a", 5.0, scorer="judge"), result("a", 1.0, scorer="exact")]
    after = [result("a", 5.0, scorer="judge"), result("a", 0.0, scorer="exact")]
    moved = {(c.scorer, c.change) for c in compare_runs(before, after)}
    assert moved == {("judge", Change.UNCHANGED), ("exact", Change.FELL)}


scores = st.one_of(st.none(), st.floats(0, 5, allow_nan=False))


@given(st.dictionaries(st.text("abc", min_size=1, max_size=3), st.tuples(scores, scores)))
def test_every_case_of_either_run_appears_once(
    pairs: dict[str, tuple[float | None, float | None]],
) -> None:
    before = [result(c, b) for c, (b, _) in pairs.items()]
    after = [result(c, a) for c, (_, a) in pairs.items()]
    changes = compare_runs(before, after)
    assert sorted(c.case_id for c in changes) == sorted(pairs)
    assert sum(counts(changes).values()) == len(pairs)
    falls = [c.delta or 0.0 for c in changes if c.change is Change.FELL]
    assert falls == sorted(falls)  # the largest fall (most negative) first


def _decision(kind: DecisionKind, **more: object) -> Decision:
    return Decision("f", "judge", kind, "m", **more)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        (None, Health.NEVER_RUN),
        (_decision(DecisionKind.NOT_SIGNIFICANT), Health.OK),
        (_decision(DecisionKind.NO_BASELINE), Health.OK),
        (_decision(DecisionKind.RECOVERED), Health.OK),
        (_decision(DecisionKind.REGRESSED, rule="drop"), Health.REGRESSED),
        (_decision(DecisionKind.DRIFTING, rule="drift"), Health.DRIFTING),
        (_decision(DecisionKind.JUDGE_DRIFT), Health.JUDGE_DRIFT),
        (_decision(DecisionKind.INSUFFICIENT_EVIDENCE), Health.INCONCLUSIVE),
        (_decision(DecisionKind.INCOMPLETE), Health.INCONCLUSIVE),
        # An open incident outlives an inconclusive run.
        (
            _decision(DecisionKind.INCOMPLETE, incident=Incident("r1", "regression", -0.5)),
            Health.REGRESSED,
        ),
        (
            _decision(
                DecisionKind.STILL_REGRESSED,
                rule="drift",
                incident=Incident("r1", "regression", -1),
            ),
            Health.DRIFTING,
        ),
        (
            _decision(DecisionKind.NOT_SIGNIFICANT, incident=Incident("r1", "judge_drift", -0.3)),
            Health.JUDGE_DRIFT,
        ),
    ],
)
def test_a_keys_state_comes_from_its_newest_decision(
    decision: Decision | None, expected: Health
) -> None:
    assert health(decision, has_runs=decision is not None) is expected


def test_scores_without_any_stored_decision_are_ok() -> None:
    assert health(None, has_runs=True) is Health.OK


def test_a_sparkline_spans_its_box_and_skips_missing_points() -> None:
    points = sparkline([1.0, None, 3.0, 2.0], width=90, height=24).split()
    assert points == ["0.0,22.0", "60.0,2.0", "90.0,12.0"]
    assert sparkline([]) == ""
    assert sparkline([None]) == ""
    assert sparkline([4.0, 4.0]) == "0.0,12.0 120.0,12.0"
    assert sparkline([4.0]) == "60.0,12.0"
