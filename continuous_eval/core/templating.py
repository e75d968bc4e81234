"""Fill ``{{input}}``-style placeholders in prompt and request-body templates.

One small syntax for every target, so a suite reads the same whether it calls
a model or an HTTP endpoint:

- ``{{input}}``: the case input (text as is; other JSON as compact JSON),
- ``{{input.KEY}}``: one key of a mapping input (dots go deeper),
- ``{{case_id}}``: the case id,
- ``{{expected}}``: the reference answer, when a template needs it.

In a JSON template, a string that is exactly one placeholder is replaced by
the value itself, keeping its JSON type; placeholders inside longer strings
are replaced by their text.
"""

from __future__ import annotations

import json
import re

from pydantic import JsonValue

from continuous_eval.core.suite import Case

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")


class TemplateError(ValueError):
    """A placeholder names something the case does not have."""


def _lookup(case: Case, path: str) -> JsonValue:
    head, _, rest = path.partition(".")
    value: JsonValue
    if head == "input":
        value = case.input
    elif head == "expected":
        value = case.expected
    elif head == "case_id":
        value = case.id
    else:
        raise TemplateError(f"unknown placeholder {{{{{path}}}}}")
    if rest:
        for key in rest.split("."):
            if isinstance(value, dict) and key in value:
                value = value[key]
            elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            else:
                raise TemplateError(f"case {case.id!r} has no {path!r} for {{{{{path}}}}}")
    return value


def as_text(value: JsonValue) -> str:
    """Render a JSON value as prompt text: strings as they are, the rest as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def render_text(template: str, case: Case) -> str:
    """Replace every placeholder in ``template`` by its text."""
    return _PLACEHOLDER.sub(lambda m: as_text(_lookup(case, m.group(1))), template)


def render_json(template: JsonValue, case: Case) -> JsonValue:
    """Render a JSON template recursively; a lone placeholder keeps the value's type."""
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template.strip())
        if whole:
            return _lookup(case, whole.group(1))
        return render_text(template, case)
    if isinstance(template, list):
        return [render_json(item, case) for item in template]
    if isinstance(template, dict):
        return {key: render_json(value, case) for key, value in template.items()}
    return template
