"""An agent's steps and the tool-call trajectory they make: records only, pure.

A recorded interaction (an OTLP GenAI span) and an agent target (an SSE
stream of steps) both end up here: a sequence of ``Step`` as they happened,
and the ``ToolCall`` list a trajectory scorer compares with an expected one.
They are pydantic models, not dataclasses, because a dataset case carries an
``expected_trajectory`` written by hand in JSONL or YAML and must be
validated with a key path like every other case field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

StepKind = Literal["tool_call", "tool_result", "message"]


class ToolCall(BaseModel):
    """One call of a tool: what the agent asked for and, when known, what came back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    """The call's arguments, decoded from JSON when the producer sent a string."""
    id: str | None = Field(default=None, max_length=200)
    """The producer's call id, which ties a ``tool_result`` to its call."""
    result: JsonValue = None
    """What the tool returned, when the trace or stream carried it."""


class Step(BaseModel):
    """One step of an agent as it happened: a tool call, a tool's result or a message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: StepKind
    name: str | None = Field(default=None, max_length=200)
    """The tool's name (``tool_call``; ``tool_result`` when known)."""
    arguments: dict[str, JsonValue] | None = None
    """A ``tool_call``'s arguments."""
    id: str | None = Field(default=None, max_length=200)
    """The call id a ``tool_call`` and its ``tool_result`` share."""
    content: JsonValue = None
    """A message's text or a tool's result."""
    role: str | None = Field(default=None, max_length=50)
    """A message's role (``assistant``, ``user``, ``tool``...)."""


def tool_calls(steps: Iterable[Step]) -> tuple[ToolCall, ...]:
    """Join each ``tool_result`` to its ``tool_call`` (by id, else the newest open
    call of that name, else the newest open call) and return the calls in order."""
    calls: list[ToolCall] = []
    open_calls: list[int] = []
    for step in steps:
        if step.kind == "tool_call" and step.name:
            open_calls.append(len(calls))
            calls.append(ToolCall(name=step.name, arguments=step.arguments or {}, id=step.id))
        elif step.kind == "tool_result" and open_calls:
            index = _match(calls, open_calls, step)
            open_calls.remove(index)
            calls[index] = calls[index].model_copy(update={"result": step.content})
    return tuple(calls)


def _match(calls: Sequence[ToolCall], open_calls: Sequence[int], step: Step) -> int:
    if step.id is not None:
        for index in open_calls:
            if calls[index].id == step.id:
                return index
    if step.name is not None:
        for index in reversed(open_calls):
            if calls[index].name == step.name:
                return index
    return open_calls[-1]
