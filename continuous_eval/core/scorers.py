"""Deterministic scorers: exact, contains, regex, json, numeric and trajectory.

Pure functions of (scorer config, output text, case) returning a
``ScoreOutcome`` with score 1.0 or 0.0, so a feature's mean is its pass rate.
A failed case carries a short rationale saying why. When a scorer *cannot*
decide (the case lacks the ``expected`` value it needs) it raises
``ScorerError``: the result is then an error, never a silent zero.

``DeterministicScorer`` wraps any of these configs in the ``CaseScorer``
protocol so the runner treats them like the judge and Python scorers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeAlias

import jsonschema
import referencing.exceptions
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator
from pydantic import JsonValue

from continuous_eval.core.models import ScoreOutcome
from continuous_eval.core.suite import (
    Case,
    ContainsScorer,
    ExactScorer,
    JsonScorer,
    NumericScorer,
    RegexScorer,
    TrajectoryScorer,
    scorer_name,
)
from continuous_eval.core.templating import as_text
from continuous_eval.core.trajectory_scores import score_trajectory
from continuous_eval.errors import ScorerError

__all__ = [
    "DeterministicConfig",
    "DeterministicScorer",
    "score_contains",
    "score_deterministic",
    "score_exact",
    "score_json",
    "score_numeric",
    "score_regex",
]

DeterministicConfig: TypeAlias = (
    ExactScorer | ContainsScorer | RegexScorer | JsonScorer | NumericScorer | TrajectoryScorer
)
"""The scorer configs this module can grade without any I/O."""

EXCERPT_CHARS = 80
"""How much of an output or expected value a rationale quotes."""

_PASS = ScoreOutcome(score=1.0, passed=True)


def _fail(rationale: str) -> ScoreOutcome:
    return ScoreOutcome(score=0.0, passed=False, rationale=rationale)


def _quote(text: str, limit: int = EXCERPT_CHARS) -> str:
    # Quote with repr so whitespace and newlines are visible: a mismatch on a
    # trailing newline is otherwise impossible to see in a report.
    if len(text) > limit:
        return repr(text[:limit]) + "…"
    return repr(text)


def _fold(text: str, case_sensitive: bool) -> str:
    # casefold, not lower: "Straße" and "STRASSE" compare equal as users expect.
    return text if case_sensitive else text.casefold()


def _expected(case: Case) -> JsonValue:
    if case.expected is None:
        raise ScorerError("case has no 'expected'")
    return case.expected


# ------------------------------------------------------------------ exact


def score_exact(config: ExactScorer, output: str, case: Case) -> ScoreOutcome:
    """Pass when the output equals the case's ``expected`` (as text).

    A non-string ``expected`` is compared as compact JSON, the same text a
    target's JSON answer is turned into.

    Raises:
        ScorerError: The case has no ``expected``.
    """
    expected = as_text(_expected(case))
    got = output
    if config.strip:
        expected, got = expected.strip(), got.strip()
    if _fold(got, config.case_sensitive) == _fold(expected, config.case_sensitive):
        return _PASS
    return _fail(f"expected {_quote(expected)}, got {_quote(got)}")


# ------------------------------------------------------------------ contains


def _needles(config: ContainsScorer, case: Case) -> list[str]:
    given = ([config.value] if config.value is not None else []) + (config.values or [])
    if given:
        return given
    if case.expected is None:
        raise ScorerError("case has no 'expected' and the scorer gives no 'value' or 'values'")
    # A list ``expected`` means "all of these"; anything else is one value.
    if isinstance(case.expected, list):
        return [as_text(item) for item in case.expected]
    return [as_text(case.expected)]


def score_contains(config: ContainsScorer, output: str, case: Case) -> ScoreOutcome:
    """Pass when the output contains every value (``value``, ``values``, else ``expected``).

    Case-insensitive unless ``case_sensitive`` is set.

    Raises:
        ScorerError: No value is configured and the case has no ``expected``.
    """
    needles = _needles(config, case)
    haystack = _fold(output, config.case_sensitive)
    missing = [n for n in needles if _fold(n, config.case_sensitive) not in haystack]
    if not missing:
        return _PASS
    shown = ", ".join(_quote(needle, 40) for needle in missing[:5])
    if len(missing) > 5:
        shown += f" and {len(missing) - 5} more"
    return _fail(f"missing {shown} in {_quote(output)}")


# ------------------------------------------------------------------ regex


@lru_cache(maxsize=256)
def _compiled(pattern: str, flags: int) -> re.Pattern[str]:
    # Patterns come from a handful of configs but are used for every case.
    return re.compile(pattern, flags)


def score_regex(config: RegexScorer, output: str, case: Case) -> ScoreOutcome:
    """Pass when the pattern matches the output (``re.search``, or a full match).

    The output's surrounding whitespace is ignored (models often end with a
    newline), as with the exact scorer's default ``strip``.
    """
    regex = _compiled(config.pattern, re.IGNORECASE if config.ignore_case else 0)
    text = output.strip()
    found = regex.fullmatch(text) if config.fullmatch else regex.search(text)
    if found:
        return _PASS
    how = "does not fully match" if config.fullmatch else "has no match for"
    return _fail(f"output {_quote(text)} {how} /{_shorten(config.pattern, 60)}/")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------ json


@lru_cache(maxsize=64)
def _validator(schema_json: str) -> Validator:
    # Building a validator walks the schema; do it once per distinct schema
    # (keyed by its canonical JSON, since dicts are not hashable).
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    # Formats ("email", "date", ...) are checked: a schema author who writes
    # them expects them enforced, although the spec makes it optional.
    validator: Validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return validator


def score_json(config: JsonScorer, output: str, case: Case) -> ScoreOutcome:
    """Pass when the output parses as JSON and, with a schema, validates against it.

    Raises:
        ScorerError: The schema cannot be applied (an unresolvable ``$ref``).
    """
    try:
        document = json.loads(output)
    except json.JSONDecodeError as exc:
        return _fail(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    if config.json_schema is None:
        return _PASS
    validator = _validator(json.dumps(config.json_schema, sort_keys=True))
    try:
        error = best_match(validator.iter_errors(document))
    except referencing.exceptions.Unresolvable as exc:
        raise ScorerError(f"cannot apply the JSON Schema: unresolvable reference {exc}") from exc
    if error is None:
        return _PASS
    return _fail(f"schema violation at {error.json_path}: {_shorten(error.message, 160)}")


# ------------------------------------------------------------------ numeric


def _as_number(value: JsonValue) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def score_numeric(config: NumericScorer, output: str, case: Case) -> ScoreOutcome:
    """Pass when the output, read as a number, is within tolerance of ``expected``.

    The tolerance is the larger of ``tolerance`` (absolute) and ``relative``
    times ``|expected|``. An output that is not a number is a *failed* case
    (the model answered wrongly), not an error.

    Raises:
        ScorerError: The case has no ``expected``, or it is not a finite number.
    """
    raw_expected = _expected(case)
    expected = _as_number(raw_expected)
    if expected is None or not math.isfinite(expected):
        raise ScorerError(
            f"case 'expected' is not a finite number: {_quote(as_text(raw_expected))}"
        )
    text = output.strip()
    try:
        got = float(text)
    except ValueError:
        return _fail(f"output is not a number: {_quote(text)}")
    allowed = max(config.tolerance, config.relative * abs(expected))
    # ``<=`` is False for NaN, so a "nan" answer fails as it should.
    if abs(got - expected) <= allowed:
        return _PASS
    bound = f" ± {allowed:g}" if allowed else ""
    return _fail(f"expected {expected:g}{bound}, got {got:g}")


# ------------------------------------------------------------------ dispatch

_SCORERS: dict[type[Any], Callable[[Any, str, Case], ScoreOutcome]] = {
    ExactScorer: score_exact,
    ContainsScorer: score_contains,
    RegexScorer: score_regex,
    JsonScorer: score_json,
    NumericScorer: score_numeric,
    # The trajectory is on the case (its steps), not in the output text.
    TrajectoryScorer: lambda config, _output, case: score_trajectory(config, case),
}


def score_deterministic(config: DeterministicConfig, output: str, case: Case) -> ScoreOutcome:
    """Grade one output with whichever deterministic scorer ``config`` configures."""
    return _SCORERS[type(config)](config, output, case)


class DeterministicScorer:
    """A deterministic scorer config behind the ``CaseScorer`` protocol.

    Scoring is cheap and CPU-only, so it runs inline on the event loop rather
    than paying for a thread hop per case.
    """

    def __init__(self, config: DeterministicConfig) -> None:
        """Wrap one scorer config; its results are stored under ``scorer_name(config)``."""
        if type(config) not in _SCORERS:
            raise TypeError(f"not a deterministic scorer config: {type(config).__name__}")
        self.config = config
        self.name: str = scorer_name(config)

    async def score(self, output: str, case: Case) -> ScoreOutcome:
        """Grade one output; raise ``ScorerError`` when the case cannot be graded."""
        return score_deterministic(self.config, output, case)

    def __repr__(self) -> str:
        return f"DeterministicScorer({self.name!r}, type={self.config.type!r})"
