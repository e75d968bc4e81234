"""Turn pydantic validation errors into problems a person can fix in one pass.

Suite files, dataset rows and settings are validated by pydantic models;
this module translates *every* error of a validation into a
``ConfigProblem`` (location and problem in plain words), because fixing one
line per attempt is how a newcomer gives up. Two rules beyond translation:

- an unknown key is reported as unknown, with the closest known key of that
  mapping as a suggestion ("did you mean 'callable'?");
- a required key that is missing only because its name was mistyped (the
  unknown key's suggestion) is not reported a second time.

The known keys of a location come from the models themselves (walking the
error's path through the model's annotations), so the suggestions never
drift from what is accepted.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from continuous_eval.core.suite import CALLABLE_PATTERN, NAME_PATTERN, format_location
from continuous_eval.core.suite import Scorer as ScorerConfig
from continuous_eval.core.suite import Target as TargetConfig
from continuous_eval.errors import ConfigProblem

PROBLEM_MAX = 300
"""Longest problem text in a message; a whole dataset row never ends up on screen."""

_PATTERN_HINTS = {
    NAME_PATTERN: (
        "names use letters, digits, '_', '.' and '-', start with a letter or digit "
        "and are at most 100 characters"
    ),
    CALLABLE_PATTERN: "expected an import path like 'package.module:function'",
    r"^https?://": "expected a URL starting with http:// or https://",
}


def _tags(union: Any) -> tuple[str, ...]:
    # The type tags of a discriminated union of config models, read from the
    # models themselves so the list never drifts from what is accepted.
    members = typing.get_args(typing.get_args(union)[0])
    return tuple(typing.get_args(m.model_fields["type"].annotation)[0] for m in members)


_SCORER_TAGS = _tags(ScorerConfig)
_TARGET_TAGS = _tags(TargetConfig)


def explain(
    exc: ValidationError, file: str, model: type[BaseModel] | None = None, *, at: str | None = None
) -> list[ConfigProblem]:
    """Return one problem per error of ``exc``, in pydantic's order.

    Args:
        exc: The validation error.
        file: The file every problem is in.
        model: The model that was validated, for the known keys behind
            "did you mean"; None to make no suggestion.
        at: A location every problem is under (a dataset's ``line 7``); the
            key path inside it then leads the problem text.
    """
    errors = exc.errors(include_url=False)
    unknown = [e for e in errors if e["type"] == "extra_forbidden" and _keyed(e)]
    suggested: dict[tuple[Any, ...], str] = {}
    for err in unknown:
        parent, key = tuple(err["loc"][:-1]), str(err["loc"][-1])
        missing = [
            str(e["loc"][-1])
            for e in errors
            if e["type"] == "missing" and _keyed(e) and tuple(e["loc"][:-1]) == parent
        ]
        guess = suggest(key, missing) or suggest(key, known_keys(model, parent))
        if guess is not None:
            suggested[(*parent, key)] = guess
    implied = {(*loc[:-1], guess) for loc, guess in suggested.items()}
    problems = []
    for err in errors:
        loc = tuple(err["loc"])
        if err["type"] == "missing" and loc in implied:
            continue  # the unknown key's suggestion already names it
        location, problem = _explain(err, suggested.get(loc))
        if at is not None:
            location, problem = at, f"{location}: {problem}" if location else problem
        problems.append(ConfigProblem(file, location or None, problem))
    return problems


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """Return the candidate closest to a mistyped ``word``, or None when none is close."""
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def known_keys(model: type[BaseModel] | None, loc: Sequence[int | str]) -> list[str]:
    """Return the keys a mapping at ``loc`` (a pydantic error path) accepts; [] when unknown."""
    current: Any = model
    for item in loc:
        current = _step(current, item)
        if current is None:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [field.alias or name for name, field in current.model_fields.items()]
    return []


def _keyed(err: ErrorDetails) -> bool:
    loc = err["loc"]
    return bool(loc) and isinstance(loc[-1], str) and loc[-1] != "[key]"


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``X | None`` down to the type that matters."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _step(annotation: Any, item: int | str) -> Any:
    """Follow one element of an error path into the type found there, or None."""
    current = _unwrap(annotation)
    origin = typing.get_origin(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        for name, field in current.model_fields.items():
            if item in (name, field.alias):
                return field.annotation
        return None
    if origin is dict:
        return typing.get_args(current)[1]
    if origin is list:
        return typing.get_args(current)[0] if isinstance(item, int) else None
    if origin in (typing.Union, types.UnionType):
        # A discriminated union: pydantic puts the member's tag in the path.
        for member in typing.get_args(current):
            member = _unwrap(member)
            if isinstance(member, type) and issubclass(member, BaseModel):
                tag = member.model_fields.get("type")
                if tag is not None and typing.get_args(tag.annotation) == (item,):
                    return member
    return None


def _explain(err: ErrorDetails, suggestion: str | None = None) -> tuple[str, str]:
    loc = tuple(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    given = err.get("input")

    if "[key]" in loc:
        # The mapping key itself is invalid (a suite or feature name).
        at = loc.index("[key]")
        name = loc[at - 1]
        problem = _PATTERN_HINTS.get(str(ctx.get("pattern")), _clean(err["msg"]))
        return format_location(loc[: at - 1]), cap(f"invalid name {name!r}: {problem}")
    if kind == "missing" and loc and isinstance(loc[-1], str):
        return format_location(loc[:-1]), f"missing required key {loc[-1]!r}"
    if kind == "extra_forbidden" and loc and isinstance(loc[-1], str):
        # Point at the mapping the key belongs in, and name the key.
        hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
        return format_location(loc[:-1]), f"unknown key {loc[-1]!r}{hint}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        is_target = bool(loc) and loc[-1] == "target"
        noun = "target type" if is_target else "scorer type"
        tags = _TARGET_TAGS if is_target else _SCORER_TAGS
        expected = ", ".join(tags)
        if kind == "union_tag_invalid":
            tag = str(ctx.get("tag"))
            close = suggest(tag, tags)
            hint = f" (did you mean {close!r}?)" if close else ""
            problem = f"unknown {noun} {tag!r}{hint}; expected one of: {expected}"
            return format_location((*loc, "type")), problem
        return format_location(loc), f"missing required key 'type'; expected one of: {expected}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return format_location(loc), f"expected a mapping, got {json_type(given)}"
    if kind == "list_type":
        return format_location(loc), f"expected a list, got {json_type(given)}"
    if kind == "string_pattern_mismatch" and str(ctx.get("pattern")) in _PATTERN_HINTS:
        problem = f"{_PATTERN_HINTS[str(ctx['pattern'])]}, got {_short(given)}"
        return format_location(loc), cap(problem)
    problem = _clean(err["msg"])
    if isinstance(given, str | int | float | bool) and kind != "value_error":
        problem += f" (got {_short(given)})"
    return format_location(loc), cap(problem)


def _clean(msg: str) -> str:
    # pydantic prefixes messages of validators with the exception kind.
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cap(text: str) -> str:
    """Shorten a problem text to ``PROBLEM_MAX`` characters."""
    return text if len(text) <= PROBLEM_MAX else text[: PROBLEM_MAX - 1] + "…"


def json_type(value: Any) -> str:
    """Name a parsed value's JSON type the way a user would ("a list", "a number")."""
    match value:
        case None:
            return "null"
        case bool():
            return "a boolean"
        case int() | float():
            return "a number"
        case str():
            return "a string"
        case list() | tuple():
            return "a list"
        case dict():
            return "a mapping"
    return type(value).__name__
