"""Rows of a labelled-examples file read on a scale: what is accepted, what is refused, why."""

from __future__ import annotations

import pytest
from pydantic import JsonValue

from continuous_eval.core.label_rows import RowProblem, label_value, parse_row
from continuous_eval.core.labels import EvalCase, NewLabel


def test_a_full_row_is_a_case_and_a_label() -> None:
    row: dict[str, JsonValue] = {
        "id": 7,
        "input": {"q": "refund?"},
        "output": "yes",
        "expected": "yes",
        "label": "PASS",
        "author": "ann",
        "comment": "fine",
        "metadata.lang": "en",
        "metadata": {"tier": 1},
    }
    parsed = parse_row(row, "pass_fail")
    assert parsed.case == EvalCase("7", {"q": "refund?"}, "yes", "yes", {"tier": 1, "lang": "en"})
    assert parsed.label == NewLabel("7", "ann", 1.0, "fine", "import")


def test_a_row_without_a_label_is_a_case_only_and_blank_cells_are_absent() -> None:
    parsed = parse_row(
        {"case_id": "a", "input": "q", "output": "x", "label": " ", "comment": ""}, "1-5"
    )
    assert parsed.label is None
    assert parsed.case.expected is None


@pytest.mark.parametrize(
    ("raw", "value"),
    [("pass", 1.0), ("False", 0.0), ("1", 1.0), ("0", 0.0), (True, 1.0), (0, 0.0), ("yes", 1.0)],
)
def test_pass_fail_labels(raw: JsonValue, value: float) -> None:
    assert label_value(raw, "pass_fail") == value


@pytest.mark.parametrize(("raw", "value"), [("3", 3.0), (5, 5.0), ("1.0", 1.0), (2.0, 2.0)])
def test_ratings(raw: JsonValue, value: float) -> None:
    assert label_value(raw, "1-5") == value


@pytest.mark.parametrize(
    ("raw", "scale"),
    [
        ("maybe", "pass_fail"),
        (0.5, "pass_fail"),
        (2, "pass_fail"),
        ("6", "1-5"),
        ("2.5", "1-5"),
        ("pass", "1-5"),
        (True, "1-5"),
        ("nan", "1-5"),
    ],
)
def test_labels_off_the_scale_are_refused(raw: JsonValue, scale: str) -> None:
    with pytest.raises(RowProblem, match="label"):
        label_value(raw, scale)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"input": "q", "output": "a"}, "case_id: required"),
        ({"id": "a", "output": "a"}, "input: required"),
        ({"id": "a", "input": "q"}, "output: required"),
        ({"id": "a", "input": "q", "output": "a", "label": "pass"}, "author: required"),
        ({"id": "a", "input": "q", "output": "a", "author": "ann"}, "author: given without"),
        ({"id": "a", "input": "q", "output": "a", "lable": "pass"}, "unknown column 'lable'"),
        ({"id": "a", "input": "q", "output": ["x"]}, "output: must be text"),
        ({"id": "a", "input": "q", "output": "a", "metadata": [1]}, "metadata: must be an object"),
        ({"id": "x" * 201, "input": "q", "output": "a"}, "longer than 200"),
    ],
)
def test_bad_rows_name_the_column(row: dict[str, JsonValue], problem: str) -> None:
    with pytest.raises(RowProblem, match=problem):
        parse_row(row, "pass_fail")
