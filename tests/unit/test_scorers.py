"""The deterministic scorers: pass/fail, rationales, and errors that are never zeros."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import JsonValue

from continuous_eval.core.models import ScoreOutcome
from continuous_eval.core.scorers import (
    DeterministicScorer,
    score_contains,
    score_deterministic,
    score_exact,
    score_json,
    score_numeric,
    score_regex,
)
from continuous_eval.core.suite import (
    Case,
    ContainsScorer,
    ExactScorer,
    JsonScorer,
    LlmJudgeScorer,
    NumericScorer,
    RegexScorer,
)
from continuous_eval.errors import ScorerError


def case(expected: JsonValue = None) -> Case:
    return Case(id="1", input="question", expected=expected)


def exact(**kw: Any) -> ExactScorer:
    return ExactScorer(type="exact", **kw)


def contains(**kw: Any) -> ContainsScorer:
    return ContainsScorer(type="contains", **kw)


def regex(pattern: str, **kw: Any) -> RegexScorer:
    return RegexScorer(type="regex", pattern=pattern, **kw)


def json_scorer(schema: dict[str, Any] | None = None) -> JsonScorer:
    return JsonScorer.model_validate({"type": "json", "schema": schema})


def numeric(**kw: Any) -> NumericScorer:
    return NumericScorer(type="numeric", **kw)


def assert_passed(outcome: ScoreOutcome) -> None:
    assert (outcome.score, outcome.passed, outcome.rationale) == (1.0, True, None)


def assert_failed(outcome: ScoreOutcome, *fragments: str) -> None:
    assert (outcome.score, outcome.passed) == (0.0, False)
    assert outcome.rationale is not None
    for fragment in fragments:
        assert fragment in outcome.rationale


# ------------------------------------------------------------------ exact


def test_exact_strips_by_default() -> None:
    assert_passed(score_exact(exact(), "  Paris\n", case("Paris")))


def test_exact_without_strip_sees_whitespace() -> None:
    assert_failed(score_exact(exact(strip=False), "Paris\n", case("Paris")), r"'Paris\n'")


def test_exact_case_sensitivity() -> None:
    assert_failed(score_exact(exact(), "paris", case("Paris")), "expected 'Paris', got 'paris'")
    assert_passed(score_exact(exact(case_sensitive=False), "PARIS", case("Paris")))


def test_exact_compares_non_text_expected_as_json_text() -> None:
    assert_passed(score_exact(exact(), "42", case(42)))
    assert_passed(score_exact(exact(), '{"a":[1,2]}', case({"a": [1, 2]})))


def test_exact_needs_expected() -> None:
    with pytest.raises(ScorerError, match="case has no 'expected'"):
        score_exact(exact(), "x", case())


def test_exact_rationale_is_truncated() -> None:
    outcome = score_exact(exact(), "y" * 5000, case("x" * 5000))
    assert outcome.rationale is not None
    assert len(outcome.rationale) < 250


@given(st.text(), st.text(alphabet=" \t\n", max_size=3), st.text(alphabet=" \t\n", max_size=3))
def test_exact_matches_itself_up_to_surrounding_space(text: str, left: str, right: str) -> None:
    assert score_exact(exact(), left + text + right, case(text)).passed is True


@given(st.text(min_size=1), st.text(min_size=1))
def test_exact_fails_exactly_when_texts_differ(a: str, b: str) -> None:
    outcome = score_exact(exact(strip=False), a, case(b))
    assert outcome.passed is (a == b)
    assert outcome.score == (1.0 if a == b else 0.0)


# ------------------------------------------------------------------ contains


def test_contains_value_case_insensitive_by_default() -> None:
    assert_passed(score_contains(contains(value="Refund"), "Your REFUND is on its way", case()))


def test_contains_case_sensitive() -> None:
    assert_failed(
        score_contains(contains(value="Refund", case_sensitive=True), "your refund", case()),
        "missing 'Refund'",
    )


def test_contains_all_values_must_be_present() -> None:
    scorer = contains(values=["refund", "5 days", "sorry"])
    assert_passed(score_contains(scorer, "Sorry! Your refund arrives in 5 days.", case()))
    assert_failed(
        score_contains(scorer, "Your refund arrives soon.", case()), "'5 days'", "'sorry'"
    )


def test_contains_combines_value_and_values() -> None:
    scorer = contains(value="a", values=["b"])
    assert_failed(score_contains(scorer, "b only", case()), "missing 'a'")


def test_contains_falls_back_to_expected() -> None:
    assert_passed(score_contains(contains(), "the answer is 42.", case(42)))
    assert_passed(score_contains(contains(), "red, green and blue", case(["red", "blue"])))
    assert_failed(score_contains(contains(), "red", case(["red", "blue"])), "'blue'")


def test_contains_without_any_value_is_an_error() -> None:
    with pytest.raises(ScorerError, match="no 'value' or 'values'"):
        score_contains(contains(), "anything", case())


def test_contains_folds_case_fully() -> None:
    assert_passed(score_contains(contains(value="STRASSE"), "Hauptstraße 1", case()))


@given(st.text(), st.text(), st.text())
def test_contains_finds_any_substring(prefix: str, needle: str, suffix: str) -> None:
    scorer = contains(value=needle, case_sensitive=True)
    assert score_contains(scorer, prefix + needle + suffix, case()).passed is True


# ------------------------------------------------------------------ regex


def test_regex_search() -> None:
    assert_passed(score_regex(regex(r"order #\d+"), "See order #1234 for details", case()))
    assert_failed(score_regex(regex(r"order #\d+"), "no order", case()), "has no match for")


def test_regex_fullmatch_ignores_surrounding_whitespace() -> None:
    assert_passed(score_regex(regex(r"\d+", fullmatch=True), " 42\n", case()))
    assert_failed(
        score_regex(regex(r"\d+", fullmatch=True), "42 apples", case()), "does not fully match"
    )


def test_regex_ignore_case() -> None:
    assert_failed(score_regex(regex("yes"), "YES", case()))
    assert_passed(score_regex(regex("yes", ignore_case=True), "YES", case()))


def test_regex_patterns_are_compiled_once() -> None:
    from continuous_eval.core import scorers

    scorers._compiled.cache_clear()
    config = regex(r"^a+$")
    for _ in range(50):
        score_regex(config, "aaa", case())
    info = scorers._compiled.cache_info()
    assert (info.misses, info.hits) == (1, 49)


@given(st.text())
def test_regex_of_escaped_text_always_matches(text: str) -> None:
    outcome = score_regex(regex(re.escape(text.strip()), fullmatch=True), text, case())
    assert outcome.passed is True


# ------------------------------------------------------------------ json


def test_json_valid_and_invalid() -> None:
    assert_passed(score_json(json_scorer(), '{"a": 1}', case()))
    assert_passed(score_json(json_scorer(), " [1, 2] \n", case()))
    assert_failed(score_json(json_scorer(), "{'a': 1}", case()), "not valid JSON", "line 1")
    assert_failed(score_json(json_scorer(), "", case()), "not valid JSON")


SCHEMA = {
    "type": "object",
    "required": ["items"],
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "email": {"format": "email"}},
            },
        }
    },
}


def test_json_schema_pass() -> None:
    assert_passed(score_json(json_scorer(SCHEMA), '{"items": [{"name": "a"}]}', case()))


def test_json_schema_failure_names_the_path() -> None:
    outcome = score_json(json_scorer(SCHEMA), '{"items": [{"name": "a"}, {"name": 3}]}', case())
    assert_failed(outcome, "$.items[1].name", "is not of type 'string'")


def test_json_schema_missing_key() -> None:
    assert_failed(score_json(json_scorer(SCHEMA), "{}", case()), "at $:", "'items'")


def test_json_schema_checks_formats() -> None:
    output = '{"items": [{"name": "a", "email": "not-an-email"}]}'
    assert_failed(score_json(json_scorer(SCHEMA), output, case()), "$.items[0].email")


def test_json_validators_are_built_once_per_schema() -> None:
    from continuous_eval.core import scorers

    scorers._validator.cache_clear()
    for _ in range(10):
        score_json(json_scorer(SCHEMA), '{"items": []}', case())
    score_json(json_scorer({"type": "array"}), "[]", case())
    assert scorers._validator.cache_info().misses == 2


def test_json_schema_with_unresolvable_ref_is_an_error() -> None:
    scorer = json_scorer({"$ref": "urn:nowhere:schema"})
    with pytest.raises(ScorerError, match="unresolvable"):
        score_json(scorer, "{}", case())


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
        max_leaves=10,
    )
)
def test_json_accepts_any_serialised_value(value: Any) -> None:
    assert score_json(json_scorer(), json.dumps(value), case()).passed is True


# ------------------------------------------------------------------ numeric


def test_numeric_exact_by_default() -> None:
    assert_passed(score_numeric(numeric(), " 42\n", case(42)))
    assert_passed(score_numeric(numeric(), "4.2e1", case("42")))
    assert_failed(score_numeric(numeric(), "43", case(42)), "expected 42, got 43")


def test_numeric_absolute_tolerance() -> None:
    assert_passed(score_numeric(numeric(tolerance=0.5), "42.5", case(42)))
    assert_failed(score_numeric(numeric(tolerance=0.5), "42.51", case(42)), "42 ± 0.5")


def test_numeric_relative_tolerance_wins_when_larger() -> None:
    scorer = numeric(tolerance=0.1, relative=0.01)
    assert_passed(score_numeric(scorer, "1009", case(1000)))
    assert_failed(score_numeric(scorer, "1011", case(1000)))
    assert_passed(score_numeric(scorer, "0.05", case(0)))


def test_numeric_non_number_output_is_a_failed_case() -> None:
    assert_failed(
        score_numeric(numeric(), "about 42", case(42)), "output is not a number: 'about 42'"
    )
    assert_failed(score_numeric(numeric(), "nan", case(42)))


@pytest.mark.parametrize("expected", [None, "forty-two", True, [42], "nan", "inf"])
def test_numeric_bad_expected_is_an_error(expected: JsonValue) -> None:
    with pytest.raises(ScorerError):
        score_numeric(numeric(), "42", case(expected))


@given(
    st.floats(min_value=-1e9, max_value=1e9),
    st.floats(min_value=-1e3, max_value=1e3),
    st.floats(min_value=0, max_value=1e3),
)
def test_numeric_passes_exactly_within_tolerance(expected: float, delta: float, tol: float) -> None:
    got = expected + delta
    outcome = score_numeric(numeric(tolerance=tol), repr(got), case(expected))
    assert outcome.passed is (abs(got - expected) <= tol)


# ------------------------------------------------------------------ the protocol


@pytest.mark.parametrize(
    ("config", "name", "output", "expected"),
    [
        (exact(), "exact", "x", "x"),
        (contains(value="x", name="has_x"), "has_x", "y", None),
        (regex("x"), "regex", "x", None),
        (json_scorer(), "json", "[]", None),
        (numeric(tolerance=1), "numeric", "3", 2.5),
    ],
)
async def test_deterministic_scorer_wraps_each_config(
    config: Any, name: str, output: str, expected: JsonValue
) -> None:
    scorer = DeterministicScorer(config)
    assert scorer.name == name
    outcome = await scorer.score(output, case(expected))
    assert outcome == score_deterministic(config, output, case(expected))


async def test_deterministic_scorer_raises_scorer_error() -> None:
    with pytest.raises(ScorerError):
        await DeterministicScorer(exact()).score("x", case())


def test_deterministic_scorer_rejects_other_configs() -> None:
    with pytest.raises(TypeError, match="LlmJudgeScorer"):
        DeterministicScorer(LlmJudgeScorer(type="llm_judge", rubric="r"))  # type: ignore[arg-type]
