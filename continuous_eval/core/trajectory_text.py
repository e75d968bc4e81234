"""An agent's steps as text a judge (or a person) reads: numbered, in order, bounded.

Pure. A judge asked to grade how an agent reached its answer needs every
tool call with its arguments, every tool result and every message, in the
order they happened. Tool results can be large (a fetched page, a query's
rows), so each step's text and the whole rendering are capped: the judge
sees where text was cut and how many steps were left out, never a silently
truncated trajectory it might take for complete.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import JsonValue

from continuous_eval.core.trajectory import Step

__all__ = ["STEP_CHARS", "TRAJECTORY_CHARS", "render_trajectory"]

STEP_CHARS = 2_000
"""Most characters of one step's arguments or content shown."""
TRAJECTORY_CHARS = 24_000
"""Most characters of the whole rendering (about 6,000 tokens)."""


def _json(value: JsonValue) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"


def _line(number: int, step: Step, step_chars: int) -> str:
    ident = f" [id {step.id}]" if step.id else ""
    if step.kind == "tool_call":
        arguments = _cap(_json(step.arguments or {}), step_chars)
        return f"{number}. tool call {step.name or '?'}{ident}: {arguments}"
    if step.kind == "tool_result":
        name = f" of {step.name}" if step.name else ""
        return f"{number}. tool result{name}{ident}: {_cap(_json(step.content), step_chars)}"
    role = f" ({step.role})" if step.role else ""
    return f"{number}. message{role}: {_cap(_json(step.content), step_chars)}"


def render_trajectory(
    steps: Sequence[Step],
    *,
    step_chars: int = STEP_CHARS,
    total_chars: int = TRAJECTORY_CHARS,
) -> str:
    """Render steps one per numbered line, capping each step and the whole text.

    Steps that would go past ``total_chars`` are left out and counted on a
    last line. No steps at all renders as a sentence saying so, so a judge
    never reads an empty section as "the agent did nothing wrong".
    """
    if not steps:
        return "(no steps were recorded for this answer)"
    lines: list[str] = []
    used = 0
    for number, step in enumerate(steps, start=1):
        line = _line(number, step, step_chars)
        if lines and used + len(line) > total_chars:
            lines.append(f"… {len(steps) - number + 1} more steps left out")
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(lines)
