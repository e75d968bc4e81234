"""What the fake Anthropic API answers a Messages request: its errors and its messages.

Belongs here: the wire shapes of an answer (error bodies, ``request-id``,
``retry-after``, message bodies and usage) and the deterministic rules that
stand in for the model (the ``[[...]]`` markers, the judge's score), in the
order ``anthropic_server``'s module docstring lists. Body validation is
``anthropic_validation``'s; serving and recording are ``anthropic_app``'s.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

from starlette.responses import JSONResponse, Response

from continuous_eval.fakes.anthropic_state import FakeState
from continuous_eval.fakes.anthropic_validation import validate
from continuous_eval.fakes.evaluator_codes import GOOD

JUDGE_TOOL_NAME: Final = "record_score"
"""A request offering a tool of this name is answered as the LLM judge."""

EVALUATOR_TOOL_NAME: Final = "write_evaluator"
"""A request offering a tool of this name is answered with scripted evaluator code."""

ERROR_TYPES: Final[Mapping[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
"""The ``error.type`` the real API sends with each status."""

_RETRYABLE_STATUSES: Final = frozenset({408, 409, 429})
_STOP_MAX_TOKENS: Final = "max_tokens"

_FAIL = re.compile(r"\[\[fail:(\d{3})\]\]")
_SLEEP = re.compile(r"\[\[sleep:(\d+(?:\.\d+)?)\]\]")
_SCORE = re.compile(r"\[\[score:(-?\d+)\]\]")
_JUDGE = re.compile(r"\[\[judge:([a-z_]+)\]\]")
_REPLY = re.compile(r"\[\[reply:(.*?)\]\]", re.DOTALL)

Content = list[dict[str, Any]]
"""The ``content`` blocks of an assistant message."""


def error_type_for(status: int) -> str:
    """Return the ``error.type`` the real API uses for an HTTP status."""
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def estimate_tokens(chars: int) -> int:
    """Estimate tokens from characters, deterministically (at least 1, as the API bills)."""
    return max(1, math.ceil(chars / 4))


def new_id(prefix: str) -> str:
    """Return a new id with the real API's prefix (``req_``, ``msg_``, ``toolu_``)."""
    # Real ids are opaque and unique; only their prefixes are meaningful.
    return prefix + uuid.uuid4().hex[:24]


# --------------------------------------------------------------------- errors


def error_response(
    status: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    error_type: str | None = None,
) -> JSONResponse:
    """Build an error in the real API's shape, with its ``request-id`` header."""
    request_id = new_id("req_")
    body = {
        "type": "error",
        "error": {"type": error_type or error_type_for(status), "message": message},
        "request_id": request_id,
    }
    return JSONResponse(
        body, status_code=status, headers={**(headers or {}), "request-id": request_id}
    )


def failure(
    state: FakeState, status: int, message: str | None, headers: Mapping[str, str]
) -> JSONResponse:
    """Build a scripted or marked error, with the retry headers the real API (or a test) sets."""
    merged = {k.lower(): v for k, v in headers.items()}
    # The real API always tells a rate-limited client when to come back.
    if status == 429:
        merged.setdefault("retry-after", state.rate_limit_retry_after)
    if state.retry_after_ms is not None and (status in _RETRYABLE_STATUSES or status >= 500):
        merged.setdefault("retry-after-ms", str(state.retry_after_ms))
    default = f"fake {error_type_for(status)} (status {status})"
    return error_response(status, message or default, headers=merged)


def _refusal(state: FakeState, headers: Mapping[str, str], body: Any) -> Response | None:
    """The error a request gets before the model sees it (steps 1-4), or None."""
    refused = _header_problem(state, headers)
    if refused is not None:
        return refused
    scripted = state.next_scripted()
    if scripted is not None:
        return failure(state, scripted.status, scripted.message, scripted.headers)
    if body is None:
        return error_response(400, "There was an error parsing the body of your request")
    problem = validate(body)
    return None if problem is None else error_response(400, problem)


def _header_problem(state: FakeState, headers: Mapping[str, str]) -> Response | None:
    key = _api_key(headers)
    if not key:
        return error_response(401, "x-api-key header is required")
    if state.api_key is not None and key != state.api_key:
        return error_response(401, "invalid x-api-key")
    if not headers.get("anthropic-version"):
        return error_response(400, "anthropic-version: header is required")
    return None


def _api_key(headers: Mapping[str, str]) -> str:
    # SDK 2.x sends ``api_key`` as a bearer token; older clients as x-api-key.
    key = headers.get("x-api-key") or ""
    authorization = headers.get("authorization", "")
    if not key and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    return key


# --------------------------------------------------------------------- text


def block_text(content: object) -> str:
    """Text of a message's content: a string, or the text blocks of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(block.get("text", ""))
            for block in content
            if isinstance(block, dict) and block.get("type") == "text"
        )
    return ""


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """Text of the last user message: where the markers are read."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return block_text(message.get("content"))
    return ""


def is_judge(body: object) -> bool:
    """Whether a request offers the judge's tool (checked on any body, valid or not, for stats)."""
    tools = body.get("tools") if isinstance(body, dict) else None
    return isinstance(tools, list) and any(
        isinstance(t, dict) and t.get("name") == JUDGE_TOOL_NAME for t in tools
    )


def offers_tool(body: object, name: str) -> bool:
    """Whether a request offers a tool of that name."""
    tools = body.get("tools") if isinstance(body, dict) else None
    return isinstance(tools, list) and any(
        isinstance(t, dict) and t.get("name") == name for t in tools
    )


def evaluator_answer(state: FakeState) -> tuple[Content, str]:
    """A ``write_evaluator`` call with the next scripted code (the good code when none is)."""
    scripted = state.next_evaluator()
    tool_input = (
        {"code": scripted.code, "explanation": scripted.explanation}
        if scripted is not None
        else {"code": GOOD, "explanation": "Passes outputs that say yes."}
    )
    block = {
        "type": "tool_use",
        "id": new_id("toolu_"),
        "name": EVALUATOR_TOOL_NAME,
        "input": tool_input,
    }
    return [block], "tool_use"


def _input_chars(body: Mapping[str, Any]) -> int:
    system = body.get("system")
    chars = len(system) if isinstance(system, str) else len(block_text(system))
    chars += sum(len(block_text(m.get("content"))) for m in body["messages"])
    if body.get("tools"):
        # Tool definitions are part of the prompt the real API bills for.
        chars += len(json.dumps(body["tools"], separators=(",", ":")))
    return chars


def _output_chars(content: Sequence[Mapping[str, Any]]) -> int:
    chars = 0
    for block in content:
        if block["type"] == "text":
            chars += len(block["text"])
        else:
            chars += len(json.dumps(block["input"], separators=(",", ":")))
    return chars


# --------------------------------------------------------------------- model


def _judge_tool_use(tool_input: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": new_id("toolu_"),
        "name": JUDGE_TOOL_NAME,
        "input": tool_input,
    }


def _judge_score(text: str, digest: str, offset: int) -> int:
    marker = _SCORE.search(text)
    score = int(marker.group(1)) if marker else int(digest, 16) % 5 + 1
    if offset and 1 <= score <= 5:
        score = min(5, max(1, score + offset))
    return score


def _judge_mode_answer(mode: str | None, answer: dict[str, Any]) -> tuple[Content, str] | None:
    """The misbehaving answer a ``[[judge:MODE]]`` marker asks for, or None for a normal one."""
    if mode == "garbage":
        return [{"type": "text", "text": "Pretty good, maybe a four?"}], "end_turn"
    if mode == "string_score":
        return [_judge_tool_use({"score": "high", "rationale": answer["rationale"]})], "tool_use"
    if mode == "max_tokens":
        return [_judge_tool_use({})], _STOP_MAX_TOKENS
    if mode == "two_tools":
        return [_judge_tool_use(answer), _judge_tool_use(answer)], "tool_use"
    if mode == "refusal":
        return [], "refusal"
    return None


def judge_answer(text: str, max_tokens: int, offset: int = 0) -> tuple[Content, str]:
    """Content blocks and stop reason of the judge's answer to ``text``."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    score = _judge_score(text, digest, offset)
    answer: dict[str, Any] = {
        "score": score,
        "rationale": f"Fake judgement {score}/5 (digest {digest[:8]}).",
    }
    mode_marker = _JUDGE.search(text)
    odd = _judge_mode_answer(mode_marker.group(1) if mode_marker else None, answer)
    if odd is not None:
        return odd
    if estimate_tokens(len(json.dumps(answer))) > max_tokens:
        # What the real API returns when the tool call does not fit: a cut-off call.
        return [_judge_tool_use({})], _STOP_MAX_TOKENS
    return [_judge_tool_use(answer)], "tool_use"


def text_answer(text: str, max_tokens: int) -> tuple[Content, str]:
    """Content blocks and stop reason of a plain answer to ``text``."""
    reply = _REPLY.search(text)
    answer = reply.group(1) if reply else "Answer: " + text
    if estimate_tokens(len(answer)) > max_tokens:
        return [{"type": "text", "text": answer[: max_tokens * 4]}], _STOP_MAX_TOKENS
    return [{"type": "text", "text": answer}], "end_turn"


def _delay(state: FakeState, text: str) -> float:
    """Generation time of a successful answer: the configured latency plus any ``[[sleep:S]]``."""
    sleep_marker = _SLEEP.search(text)
    return state.latency_s + (float(sleep_marker.group(1)) if sleep_marker else 0.0)


def _message(body: Mapping[str, Any], content: Content, stop_reason: str) -> JSONResponse:
    message = {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": estimate_tokens(_input_chars(body)),
            "output_tokens": estimate_tokens(_output_chars(content)),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }
    return JSONResponse(message, headers={"request-id": new_id("req_")})


async def answer_messages(state: FakeState, headers: Mapping[str, str], body: Any) -> Response:
    """Answer one Messages request, in the order ``anthropic_server``'s docstring lists."""
    refused = _refusal(state, headers, body)
    if refused is not None:
        return refused
    text = last_user_text(body["messages"])
    fail = _FAIL.search(text)
    if fail and 400 <= int(fail.group(1)) <= 599:
        return failure(state, int(fail.group(1)), None, {})
    max_tokens: int = body["max_tokens"]
    if is_judge(body):
        content, stop_reason = judge_answer(text, max_tokens, state.judge_offset)
    elif offers_tool(body, EVALUATOR_TOOL_NAME):
        content, stop_reason = evaluator_answer(state)
    else:
        content, stop_reason = text_answer(text, max_tokens)
    delay = _delay(state, text)
    if delay > 0:
        await asyncio.sleep(delay)
    return _message(body, content, stop_reason)
