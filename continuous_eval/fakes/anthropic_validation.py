"""Which Messages request bodies the real Anthropic API refuses, and with what complaint.

Belongs here: the checks behind step 4 of ``anthropic_server``'s list, each
returning the ``error.message`` of a ``400 invalid_request_error`` (or None).
They run in the real API's order, so a body with two faults gets the same
complaint it would get there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from continuous_eval.fakes.control import is_integer

Check = Callable[[Mapping[str, Any]], str | None]


def validate(body: object) -> str | None:
    """Return the real API's complaint about a request body, or None when it is valid."""
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    for check in _CHECKS:
        problem = check(body)
        if problem is not None:
            return problem
    return None


def _model_problem(body: Mapping[str, Any]) -> str | None:
    model = body.get("model")
    if isinstance(model, str) and model:
        return None
    return "model: Field required" if model is None else "model: Input should be a valid string"


def _max_tokens_problem(body: Mapping[str, Any]) -> str | None:
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        return "max_tokens: Field required"
    if not is_integer(max_tokens) or max_tokens < 1:
        return "max_tokens: Input should be an integer greater than or equal to 1"
    return None


def _messages_problem(body: Mapping[str, Any]) -> str | None:
    messages = body.get("messages")
    if messages is None:
        return "messages: Field required"
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{index}.role: Input should be 'user' or 'assistant'"
        if not isinstance(message.get("content"), str | list):
            return f"messages.{index}.content: Field required"
    return None


def _stream_problem(body: Mapping[str, Any]) -> str | None:
    if body.get("stream"):
        return "stream: this fake answers non-streaming requests only"
    return None


def _tools_problem(body: Mapping[str, Any]) -> str | None:
    tools = body.get("tools")
    if tools is not None and (
        not isinstance(tools, list)
        or not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in tools)
    ):
        return "tools: each tool needs a 'name'"
    return None


def _tool_choice_problem(body: Mapping[str, Any]) -> str | None:
    # Runs after _tools_problem: ``tools`` is absent or a list of named tools.
    names = {tool["name"] for tool in body.get("tools") or ()}
    choice = body.get("tool_choice")
    if (
        isinstance(choice, dict)
        and choice.get("type") == "tool"
        and choice.get("name") not in names
    ):
        return f"tool_choice: tool {choice.get('name')!r} not found in 'tools'"
    return None


_CHECKS: tuple[Check, ...] = (
    _model_problem,
    _max_tokens_problem,
    _messages_problem,
    _stream_problem,
    _tools_problem,
    _tool_choice_problem,
)
"""In the order the real API reports them."""
