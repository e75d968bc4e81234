"""The fake Resend API as a Starlette app: ``POST /emails`` and its control routes.

Belongs here: routing, recording each request on arrival and completing it
on answer, the rate-limit headers every ``/emails`` answer carries, and how
control answers are worded (in Resend's error shape). What a send is
answered is ``resend_answers``'s; the shared control routes are ``control``'s.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from continuous_eval.fakes.control import (
    JsonObject,
    body_route,
    control_routes,
    fake_app,
    is_integer,
    lower_headers,
    plain_route,
)
from continuous_eval.fakes.resend_answers import answer_email
from continuous_eval.fakes.resend_errors import Answer, error_answer
from continuous_eval.fakes.resend_records import ScriptedFault
from continuous_eval.fakes.resend_state import FakeResendState


class ResendReplies:
    """Control answers as plain JSON, their errors and unknown routes in Resend's shape."""

    def ok(self, data: JsonObject) -> Response:
        """Answer a control request that succeeded."""
        return JSONResponse(data)

    def bad_request(self, message: str) -> Response:
        """Answer 400 ``validation_error`` to an unusable control request."""
        return JSONResponse(
            {"statusCode": 400, "message": message, "name": "validation_error"}, status_code=400
        )

    def not_found(self, request: Request, status: int) -> Response:
        """Answer an unknown route as ``not_found``, a wrong method as ``method_not_allowed``."""
        return JSONResponse(dict(error_answer(status).body), status_code=status)


def create_app(state: FakeResendState) -> Starlette:
    """Build the Starlette app serving ``POST /emails`` and the control routes."""
    replies = ResendReplies()

    def kill_on_send(data: object) -> JsonObject:
        pid = data.get("pid") if isinstance(data, dict) else None
        if pid is not None and not is_integer(pid):
            raise ValueError("'pid' must be an integer or null")
        state.kill_on_send(pid)
        return {"kill_on_send": pid}

    return fake_app(
        [
            _emails_route(state),
            *control_routes(
                state, replies, parse=ScriptedFault.from_json, keys=("faults", "errors")
            ),
            plain_route("/_fake/emails", replies, state.snapshot),
            body_route("/_fake/kill_on_send", replies, "kill_on_send", kill_on_send),
        ],
        replies,
    )


def _emails_route(state: FakeResendState) -> Route:
    async def emails(request: Request) -> Response:
        headers = lower_headers(request)
        raw = await request.body()
        record, epoch = state.arrive(headers, raw)
        remaining, over = state.rate()
        answer: Answer | None = None
        try:
            answer = await answer_email(state, headers, raw, epoch, over_rate_limit=over)
        finally:
            state.complete(record, answer)
        merged = {**_rate_headers(state, remaining), **answer.headers}
        return JSONResponse(dict(answer.body), status_code=answer.status, headers=merged)

    return Route("/emails", emails, methods=["POST"])


def _rate_headers(state: FakeResendState, remaining: int) -> dict[str, str]:
    return {
        "ratelimit-limit": str(state.rate_limit),
        "ratelimit-remaining": str(remaining),
        "ratelimit-reset": "1",
    }
