"""The fake Anthropic API as a Starlette app: ``POST /v1/messages`` and its control routes.

Belongs here: routing, counting and recording each request, and how control
answers are worded (in the real API's error shape, with ``request-id``).
What a request is answered is ``anthropic_answers``'s; the control routes
themselves are ``control``'s, shared with the other fakes.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from continuous_eval.fakes.anthropic_answers import (
    answer_messages,
    error_response,
    is_judge,
    new_id,
)
from continuous_eval.fakes.anthropic_state import FakeState, ScriptedError, ScriptedEvaluator
from continuous_eval.fakes.control import (
    JsonObject,
    body_route,
    control_routes,
    fake_app,
    items_from_json,
    lower_headers,
    plain_route,
    seconds_from_json,
)

CLIENT_GONE_STATUS = 499
"""Recorded for a request whose handler was cancelled: the client went away (nginx's 499)."""


class AnthropicReplies:
    """Control answers and unknown routes in the real API's shape, each with a ``request-id``."""

    def ok(self, data: JsonObject) -> Response:
        """Answer a control request that succeeded."""
        return JSONResponse(data, headers={"request-id": new_id("req_")})

    def bad_request(self, message: str) -> Response:
        """Answer 400 ``invalid_request_error`` to an unusable control request."""
        return error_response(400, message)

    def not_found(self, request: Request, status: int) -> Response:
        """Answer an unknown route or method as ``not_found_error`` (or its status's type)."""
        return error_response(status, f"{request.method} {request.url.path}: not found")


def create_app(state: FakeState) -> Starlette:
    """Build the Starlette app serving the Messages API and the control routes."""
    replies = AnthropicReplies()
    return fake_app(
        [
            _messages_route(state),
            *control_routes(
                state,
                replies,
                parse=ScriptedError.from_json,
                keys=("errors",),
                read_seconds=_seconds_required,
            ),
            plain_route("/_fake/stats", replies, state.stats),
            _evaluators_route(state, replies),
        ],
        replies,
    )


def _messages_route(state: FakeState) -> Route:
    async def messages(request: Request) -> Response:
        headers = lower_headers(request)
        token = state.begin()
        body: Any = None
        judge = False
        response: Response | None = None
        try:
            raw = await request.body()
            with contextlib.suppress(ValueError):
                body = json.loads(raw)
            judge = is_judge(body)
            response = await answer_messages(state, headers, body)
            return response
        finally:
            status = response.status_code if response is not None else CLIENT_GONE_STATUS
            state.end(token, status, headers, body, judge=judge)

    return Route("/v1/messages", messages, methods=["POST"])


def _evaluators_route(state: FakeState, replies: AnthropicReplies) -> Route:
    """``POST /_fake/evaluators``: ``{"evaluators": [{"kind": "good"}, {"code": "..."}]}``."""

    def handle(data: object) -> JsonObject:
        items = [ScriptedEvaluator.from_json(i) for i in items_from_json(data, ("evaluators",))]
        return {"pending": state.script_evaluators(items)}

    return body_route("/_fake/evaluators", replies, "evaluators", handle)


def _seconds_required(data: object) -> float:
    # This fake has always named a missing field alone ("bad latency: 'seconds'");
    # kept, so a driver matching on the message sees what it always saw.
    if isinstance(data, dict) and "seconds" not in data:
        raise ValueError("'seconds'")
    return seconds_from_json(data)
