"""Rows of a labelled-examples file (CSV or JSONL) as cases and labels: pure parsing.

One row is one case and, optionally, one person's label of it. Columns (CSV)
or keys (JSONL): ``case_id`` (or ``id``), ``input``, ``output``,
``expected``, ``label``, ``author``, ``comment``, and ``metadata.KEY`` for
each metadata field (JSONL may also give ``metadata`` as an object). Several
rows may share a case id: several people's labels of one case (the last
row's input and output win).

A label is read on the set's scale: pass/fail takes pass, fail, true, false,
1 or 0 (any case); 1-5 takes an integer from 1 to 5. Anything else, an
unknown column, or a label without an author is a problem naming the column;
the importer (``app.eval_sets``) reports the file and line and imports
nothing. Strict on purpose: a typo in a column name silently dropped would
import cases without the labels someone meant to give.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import JsonValue

from continuous_eval.core.labels import EvalCase, LabelScale, LabelSource, NewLabel

KNOWN_COLUMNS = frozenset(
    {"case_id", "id", "input", "output", "expected", "label", "author", "comment", "metadata"}
)
METADATA_PREFIX = "metadata."

MAX_ID_CHARS = 200
"""The longest case id or author the store keeps (``eval_cases.case_id``)."""

_PASS = frozenset({"pass", "true", "1", "yes"})
_FAIL = frozenset({"fail", "false", "0", "no"})


class RowProblem(ValueError):
    """What is wrong with one row, naming the column; the caller adds the file and line."""


@dataclass(frozen=True, slots=True)
class LabelRow:
    """One row read: its case, and the label it carries if any."""

    case: EvalCase
    label: NewLabel | None


def parse_row(
    row: Mapping[str, JsonValue], scale: LabelScale, source: LabelSource = "import"
) -> LabelRow:
    """Read one row (CSV cells are strings, JSONL values any JSON; empty cells are absent).

    Raises:
        RowProblem: Naming the column and what is wrong with it.
    """
    cells = {k: v for k, v in row.items() if not _blank(v)}
    unknown = sorted(
        k for k in cells if k not in KNOWN_COLUMNS and not k.startswith(METADATA_PREFIX)
    )
    if unknown:
        raise RowProblem(f"unknown column {unknown[0]!r} (see `eval-sets import --help`)")
    case_id = _text(cells, "case_id") if "case_id" in cells else _text(cells, "id")
    if case_id is None:
        raise RowProblem("case_id: required (or id)")
    if "input" not in cells:
        raise RowProblem("input: required")
    output = _text(cells, "output")
    if output is None:
        raise RowProblem("output: required")
    case = EvalCase(
        case_id=case_id,
        input=cells["input"],
        output=output,
        expected=cells.get("expected"),
        metadata=_metadata(cells),
    )
    if "label" not in cells:
        for key in ("author", "comment"):
            if key in cells:
                raise RowProblem(f"{key}: given without a label")
        return LabelRow(case, None)
    author = _text(cells, "author")
    if author is None:
        raise RowProblem("author: required with a label")
    value = label_value(cells["label"], scale)
    comment = _text(cells, "comment", limit=None)
    return LabelRow(case, NewLabel(case_id, author, value, comment, source))


def label_value(raw: JsonValue, scale: LabelScale) -> float:
    """A label as the value the store keeps: 1.0/0.0 for pass/fail, 1.0-5.0 for ratings.

    Raises:
        RowProblem: The label is not on the scale.
    """
    if scale == "pass_fail":
        if isinstance(raw, bool):
            return 1.0 if raw else 0.0
        text = str(raw).strip().lower()
        if isinstance(raw, int | float) and raw in (0, 1):
            return float(raw)
        if text in _PASS:
            return 1.0
        if text in _FAIL:
            return 0.0
        raise RowProblem(f"label: {raw!r} is not pass/fail (pass, fail, true, false, 1, 0)")
    number = _number(raw)
    if number is None or number not in (1.0, 2.0, 3.0, 4.0, 5.0):
        raise RowProblem(f"label: {raw!r} is not a rating from 1 to 5")
    return number


def _number(raw: JsonValue) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            return None
        return value if math.isfinite(value) else None
    return None


def _metadata(cells: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    given = cells.get("metadata", {})
    if not isinstance(given, dict):
        raise RowProblem("metadata: must be an object")
    out: dict[str, JsonValue] = dict(given)
    for key, value in cells.items():
        if key.startswith(METADATA_PREFIX):
            name = key[len(METADATA_PREFIX) :]
            if not name:
                raise RowProblem(f"{key}: names no metadata field")
            out[name] = value
    return out


def _text(cells: Mapping[str, JsonValue], key: str, limit: int | None = MAX_ID_CHARS) -> str | None:
    """A text cell: strings as given, numbers as their text (an id of 7 is "7")."""
    value = cells.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        if key == "output":
            raise RowProblem("output: must be text")
        raise RowProblem(f"{key}: must be text, got {json.dumps(value)[:40]}")
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > limit:
        raise RowProblem(f"{key}: longer than {limit} characters")
    if "\x00" in text:
        raise RowProblem(f"{key}: contains a NUL character")
    return text


def _blank(value: JsonValue) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
