"""The suite config models validate shape, and their error paths read as key paths."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from continuous_eval.core.suite import (
    Case,
    Dataset,
    HttpTarget,
    JsonScorer,
    PythonTarget,
    RegexScorer,
    SuiteFile,
    format_location,
    parse_suite_file,
    scorer_name,
)


def feature(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "dataset": {"cases": [{"input": "hi"}]},
        "target": {"type": "python", "callable": "app.bot:answer"},
        "scorers": [{"type": "exact"}],
    }
    return {**base, **overrides}


def suite_file(**features: dict[str, Any]) -> dict[str, Any]:
    return {"suites": {"support": {"features": features or {"refunds": feature()}}}}


def locations(data: Any) -> list[str]:
    with pytest.raises(ValidationError) as info:
        parse_suite_file(data)
    return [format_location(err["loc"]) for err in info.value.errors()]


# ------------------------------------------------------------------ valid


def test_a_minimal_file_validates_with_defaults() -> None:
    parsed = parse_suite_file(suite_file())

    assert isinstance(parsed, SuiteFile)
    suite = parsed.suites["support"]
    assert suite.concurrency is None
    refunds = suite.features["refunds"]
    assert isinstance(refunds.target, PythonTarget)
    assert [scorer_name(s) for s in refunds.scorers] == ["exact"]


def test_http_target_defaults() -> None:
    target = HttpTarget(type="http", url="https://example.test/answer")
    assert target.body == {"input": "{{input}}"}
    assert target.response_field == "output"
    assert target.timeout_s == 30.0


def test_json_scorer_reads_schema_by_its_yaml_name() -> None:
    scorer = JsonScorer.model_validate({"type": "json", "schema": {"type": "object"}})
    assert scorer.json_schema == {"type": "object"}


# ------------------------------------------------------------------ cases


def test_inline_cases_get_positional_ids() -> None:
    dataset = Dataset.model_validate(
        {"cases": [{"input": "a"}, {"id": "named", "input": "b"}, {"input": "c"}]}
    )
    assert [c.id for c in dataset.cases or []] == ["1", "named", "3"]


def test_inline_duplicate_ids_are_rejected() -> None:
    with pytest.raises(ValidationError, match="duplicate case id '1'"):
        Dataset.model_validate({"cases": [{"input": "a"}, {"id": "1", "input": "b"}]})


@pytest.mark.parametrize("empty", [None, ""])
def test_case_input_must_not_be_empty(empty: Any) -> None:
    with pytest.raises(ValidationError, match="input must not be empty"):
        Case(id="1", input=empty)


def test_case_input_may_be_any_json() -> None:
    case = Case(id="1", input={"question": "q", "context": ["a", 1, None]})
    assert case.expected is None
    assert case.metadata == {}


def test_case_rejects_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Case.model_validate({"id": "1", "input": "a", "expectd": "b"})


# ------------------------------------------------------------------ datasets


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"cases": [{"input": "a"}], "path": "x.jsonl"},
    ],
)
def test_dataset_needs_exactly_one_source(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="give exactly one of 'cases'"):
        Dataset.model_validate(data)


@pytest.mark.parametrize(
    ("path", "fmt", "expected"),
    [
        ("data/cases.jsonl", None, "jsonl"),
        ("data/CASES.CSV", None, "csv"),
        ("data/cases.txt", "csv", "csv"),
        ("data/cases.csv", "jsonl", "jsonl"),
    ],
)
def test_dataset_format(path: str, fmt: str | None, expected: str) -> None:
    assert Dataset.model_validate({"path": path, "format": fmt}).file_format == expected


def test_dataset_format_cannot_be_guessed() -> None:
    with pytest.raises(ValidationError, match="cannot infer the format"):
        Dataset(path="cases.txt")


# ------------------------------------------------------------------ scorers


def test_invalid_regex_is_rejected() -> None:
    with pytest.raises(ValidationError, match="invalid regex"):
        RegexScorer(type="regex", pattern="[a-")


def test_invalid_json_schema_is_rejected() -> None:
    with pytest.raises(ValidationError, match="invalid JSON Schema"):
        JsonScorer.model_validate({"type": "json", "schema": {"type": "nope"}})


def test_scorer_names_must_be_unique_within_a_feature() -> None:
    data = suite_file(refunds=feature(scorers=[{"type": "contains"}, {"type": "contains"}]))
    with pytest.raises(ValidationError, match="scorer names must be unique"):
        parse_suite_file(data)
    renamed = [{"type": "contains"}, {"type": "contains", "name": "contains_2"}]
    parsed = parse_suite_file(suite_file(refunds=feature(scorers=renamed)))
    scorers = parsed.suites["support"].features["refunds"].scorers
    assert [scorer_name(s) for s in scorers] == ["contains", "contains_2"]


def test_a_feature_needs_a_scorer() -> None:
    assert locations(suite_file(refunds=feature(scorers=[]))) == [
        "suites.support.features.refunds.scorers"
    ]


@pytest.mark.parametrize("name", ["has space", "-leading-dash", "x" * 101, "ünï"])
def test_bad_names(name: str) -> None:
    with pytest.raises(ValidationError, match="String should match pattern"):
        parse_suite_file({"suites": {name: {"features": {"f": feature()}}}})


# ------------------------------------------------------------- format_location


def test_location_of_a_scorer_field_drops_the_union_tag() -> None:
    data = suite_file(
        refunds=feature(scorers=[{"type": "exact"}, {"type": "regex", "pattern": "("}])
    )
    assert locations(data) == ["suites.support.features.refunds.scorers[1].pattern"]


def test_location_of_a_target_field_drops_the_union_tag() -> None:
    data = suite_file(refunds=feature(target={"type": "http", "url": "ftp://nope"}))
    assert locations(data) == ["suites.support.features.refunds.target.url"]


def test_location_of_an_inline_case() -> None:
    data = suite_file(refunds=feature(dataset={"cases": [{"input": "a"}, {"input": ""}]}))
    assert locations(data) == ["suites.support.features.refunds.dataset.cases[1].input"]


def test_names_that_look_like_tags_are_kept() -> None:
    # A feature called "python" or "json" is a key the user wrote, not a union tag.
    data = {
        "suites": {
            "json": {
                "features": {
                    "python": feature(target={"type": "http", "url": "https://x", "extra": 1})
                }
            }
        }
    }
    assert locations(data) == ["suites.json.features.python.target.extra"]


@pytest.mark.parametrize(
    ("loc", "expected"),
    [
        ((), ""),
        (("suites",), "suites"),
        (("suites", "s", "concurrency"), "suites.s.concurrency"),
        (("suites", "s", "features", "f", "scorers", 0, "llm_judge", "rubric"),
         "suites.s.features.f.scorers[0].rubric"),
        (("suites", "s", "features", "f", "target", "anthropic", "model"),
         "suites.s.features.f.target.model"),
        (("a", 0, 1, "b"), "a[0][1].b"),
    ],
)  # fmt: skip
def test_format_location(loc: tuple[int | str, ...], expected: str) -> None:
    assert format_location(loc) == expected
