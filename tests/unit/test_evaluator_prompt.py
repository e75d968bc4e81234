"""The split, prompt and held-out metrics of evaluator generation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from continuous_eval.core.evaluator_prompt import (
    MAX_EXAMPLES,
    MAX_EXAMPLES_CHARS,
    MAX_FIELD_CHARS,
    WRITE_EVALUATOR_TOOL,
    ReferenceCase,
    build_prompt,
    held_out_metrics,
    label_passes,
    reference_cases,
    split_cases,
    verdict_of,
)
from continuous_eval.core.labels import EvalCase, Label, LabelledCase, NewLabel
from continuous_eval.core.sandboxing import SandboxOutcome

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def labelled(case_id: str, *values: float, comment: str | None = None) -> LabelledCase:
    labels = tuple(
        Label(n, NewLabel(case_id, f"person{n}", v, comment=comment), WHEN)
        for n, v in enumerate(values)
    )
    return LabelledCase(EvalCase(case_id, input=f"q {case_id}", output=f"a {case_id}"), labels)


def cases(passes: int, fails: int) -> list[LabelledCase]:
    return [labelled(f"p{i}", 1.0) for i in range(passes)] + [
        labelled(f"f{i}", 0.0) for i in range(fails)
    ]


def test_split_is_deterministic_stratified_and_70_30() -> None:
    split = split_cases(cases(10, 10), "pass_fail", seed=7)
    assert split == split_cases(list(reversed(cases(10, 10))), "pass_fail", seed=7)
    assert len(split.held_out) == 6
    assert len(split.train) == 14
    assert sum(c.passed for c in split.held_out) == 3
    assert {c.case.case_id for c in split.train}.isdisjoint(c.case.case_id for c in split.held_out)
    other = split_cases(cases(10, 10), "pass_fail", seed=8)
    assert other.held_out != split.held_out


def test_a_new_case_does_not_move_the_others_much() -> None:
    before = split_cases(cases(20, 0), "pass_fail", seed=1)
    after = split_cases(cases(21, 0), "pass_fail", seed=1)
    moved = {c.case.case_id for c in before.held_out} - {c.case.case_id for c in after.held_out}
    assert len(moved) <= 1


def test_small_sets_keep_one_case_on_each_side_and_ties_are_dropped() -> None:
    split = split_cases([*cases(2, 0), labelled("tie", 1.0, 0.0)], "pass_fail")
    assert len(split.held_out) == 1
    assert len(split.train) == 1
    assert split.dropped == 1
    assert split_cases(cases(1, 0), "pass_fail").held_out == ()
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_cases(cases(2, 2), "pass_fail", held_out=1.0)


def test_ratings_of_4_and_5_are_passes() -> None:
    assert [label_passes("1-5", v) for v in (1, 3, 4, 5)] == [False, False, True, True]
    split = split_cases([labelled("a", 5), labelled("b", 3), labelled("c", 4, 2, 5)], "1-5")
    assert {c.case.case_id: c.passed for c in (*split.train, *split.held_out)} == {
        "a": True,
        "b": False,
        "c": True,
    }


def test_prompt_shows_both_kinds_of_examples_with_comments_and_caps_them() -> None:
    split = split_cases(
        [labelled("good", 1.0, comment="polite"), labelled("bad", 0.0), *cases(60, 60)],
        "pass_fail",
    )
    prompt = build_prompt("tone", "pass_fail", split.train)
    assert "def score(output, case)" in prompt.system
    assert prompt.user.count("## Example") == MAX_EXAMPLES
    assert prompt.user.count(": PASS") == MAX_EXAMPLES // 2
    assert "(of " in prompt.user
    usable, _ = reference_cases(
        [labelled("good", 1.0, comment="polite"), labelled("bad", 0.0)], "pass_fail"
    )
    small = build_prompt("tone", "pass_fail", usable)
    assert "## Example 1: PASS (label 1)" in small.user
    assert "## Example 2: FAIL (label 0)" in small.user
    assert "comment: person0: polite" in small.user
    assert "output: a good" in small.user
    assert "(of " not in small.user
    huge = ReferenceCase(EvalCase("x", input="i", output="y" * 5000), 1.0, True)
    text = build_prompt("tone", "pass_fail", [huge]).user
    assert "chars cut]" in text
    assert len(text) < MAX_FIELD_CHARS * 3
    assert WRITE_EVALUATOR_TOOL["name"] == "write_evaluator"


@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        (True, True),
        (False, False),
        (0.5, True),
        (0.49, False),
        (1, True),
        ({"passed": False, "score": 0.9}, False),
        ({"score": 0.7}, True),
        ({"score": True}, None),
        ("yes", None),
        (None, None),
        ([1], None),
    ],
)
def test_what_the_code_returns_is_read_as_a_verdict(value: object, verdict: bool | None) -> None:
    assert verdict_of(value) is verdict  # type: ignore[arg-type]


def test_held_out_metrics_count_errors_as_disagreements() -> None:
    def ref(case_id: str, passed: bool) -> ReferenceCase:
        return ReferenceCase(EvalCase(case_id, input="", output=""), float(passed), passed)

    pairs = [
        (ref("a", True), SandboxOutcome("ok", True)),
        (ref("b", True), SandboxOutcome("ok", False)),
        (ref("c", False), SandboxOutcome("ok", 0.9)),
        (ref("d", False), SandboxOutcome("ok", {"passed": False})),
        (ref("e", True), SandboxOutcome("timeout", error="wall time 5s")),
        (ref("f", False), SandboxOutcome("ok", "maybe")),
    ]
    metrics = held_out_metrics(pairs, train_cases=14)
    assert metrics.accuracy == pytest.approx(2 / 6)
    assert metrics.precision == pytest.approx(1 / 2)
    assert metrics.recall == pytest.approx(1 / 3)
    assert (metrics.train_cases, metrics.test_cases, metrics.errors) == (14, 6, 2)
    assert [(c.case_id, c.value) for c in metrics.contradictions] == [
        ("b", False),
        ("c", 0.9),
        ("e", "timeout: wall time 5s"),
        ("f", 'invalid: returned "maybe"'),
    ]
    empty = held_out_metrics([], train_cases=0)
    assert (empty.accuracy, empty.precision, empty.recall) == (0.0, None, None)


def test_the_examples_fit_a_budget_and_keep_both_kinds() -> None:
    big = [
        ReferenceCase(
            EvalCase(f"c{i}", input="i" * 1400, output="o" * 1400), float(i % 2), i % 2 == 1
        )
        for i in range(40)
    ]
    text = build_prompt("tone", "pass_fail", big).user
    assert len(text) < MAX_EXAMPLES_CHARS + 5_000
    assert ": PASS" in text
    assert ": FAIL" in text
    assert "(of 20 and 20)" in text
