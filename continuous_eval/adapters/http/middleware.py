"""The one ASGI middleware in front of the admin API: request id, auth, body cap, last resort.

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``, which buffers
streaming responses and hides client disconnects from them: the live-progress
stream needs both to behave.

In order, for every HTTP request:

1. pick the request id (a sane incoming ``X-Request-ID``, else a new one),
   store it in the request state and echo it on the response, whatever the
   response is;
2. refuse a request without an accepted token (401) before routing, unless
   its path is public, so no route can be added without auth by mistake, and
   an unknown route reveals nothing to a stranger; the dashboard's paths
   need a session cookie instead (``dashboard.gate``): a page load without
   one is sent to sign in (303), anything else is refused (401); an
   ingest-only token is accepted on the ingestion routes alone (403
   elsewhere: it is a valid token, for another purpose);
3. refuse a body over the cap (the path's own, for ingestion's larger
   bodies): at once from ``Content-Length``, or as soon as a streamed
   (chunked) body passes it, without reading the rest (413);
4. answer an unexpected exception with a 500 envelope (logged with the
   request id) instead of Starlette's plain-text page.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Collection, Mapping

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from continuous_eval import log_context
from continuous_eval.adapters.http.auth import TokenAuth
from continuous_eval.adapters.http.dashboard.gate import DashboardGate, signin_location
from continuous_eval.adapters.http.errors import envelope

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"

_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
"""Incoming request ids kept as they are; anything else is replaced (it ends up in logs)."""


class _BodyTooLarge(Exception):
    """Raised into the app from ``receive`` when a streamed body passes the cap."""


class _Exchange:
    """One request's side of the guard: the request id on the answer, the body's cap.

    ``started`` turns true with the response's first message; ``refused`` when
    a streamed body passed the cap before that, and then the app's own answer
    is dropped so the guard's 413 goes out instead.
    """

    def __init__(self, receive: Receive, send: Send, request_id: str, max_body: int) -> None:
        self._receive = receive
        self._send = send
        self._request_id = request_id
        self._max_body = max_body
        self.started = False
        self.refused = False
        self.received = 0

    async def send(self, message: Message) -> None:
        """Pass the app's message on, with the request id on the response's headers."""
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
            MutableHeaders(scope=message)[REQUEST_ID_HEADER] = self._request_id
        await self._send(message)

    async def receive(self) -> Message:
        """Hand the app the body, counting it; past the cap, stop with ``_BodyTooLarge``."""
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self._max_body:
                if not self.started:
                    self.refused = True
                raise _BodyTooLarge
        return message


class RequestGuard:
    """Request id, authentication and body cap for every HTTP request (see the module docstring).

    Args:
        app: The application to guard.
        auth: Decides whether a request carries an accepted token.
        public_paths: Paths (relative to the root path) served without a token.
        max_body_bytes: Largest request body accepted.
        dashboard: The dashboard's paths and sessions; None serves no dashboard.
        ingest_auth: Accepts the ingest-only tokens, on ``ingest_routes`` only.
        ingest_routes: The (method, path) pairs an ingest-only token may call.
        body_caps: Paths with a cap of their own instead of ``max_body_bytes``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        auth: TokenAuth,
        public_paths: Collection[str],
        max_body_bytes: int,
        dashboard: DashboardGate | None = None,
        ingest_auth: TokenAuth | None = None,
        ingest_routes: Collection[tuple[str, str]] = (),
        body_caps: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self._auth = auth
        self._public = frozenset(public_paths)
        self._max_body = max_body_bytes
        self._dashboard = dashboard
        self._ingest_auth = ingest_auth
        self._ingest_routes = frozenset(ingest_routes)
        self._body_caps = dict(body_caps or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Guard one request (HTTP only; lifespan and websockets pass through)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers", []))
        request_id = _request_id(headers)
        scope.setdefault("state", {})["request_id"] = request_id
        # Every log line written while answering names the request.
        with log_context.bound(request_id=request_id):
            await self._guard(scope, receive, send, headers, request_id)

    async def _guard(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        request_id: str,
    ) -> None:
        path = _route_path(scope)
        max_body = self._body_caps.get(path, self._max_body)
        exchange = _Exchange(receive, send, request_id, max_body)
        if self._dashboard is not None and self._dashboard.covers(path):
            if not await self._dashboard_session(scope, receive, exchange.send, path, request_id):
                return
        elif path not in self._public:
            refusal = self._refusal(scope, headers, path)
            if refusal is not None:
                await self._refuse(scope, receive, exchange.send, refusal, request_id)
                return
        declared = _content_length(headers)
        if declared is not None and declared > max_body:
            await self._too_large(scope, receive, exchange.send, request_id, max_body)
            return
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except Exception as exc:
            over_cap = exchange.refused or isinstance(exc, _BodyTooLarge)
            if not over_cap:  # over the cap: answered below
                if exchange.started:
                    raise  # nothing can be sent any more; the server drops the connection
                await self._internal_error(scope, receive, exchange.send, request_id)
                return
        if exchange.refused:
            exchange.refused = False  # let our own answer through
            await self._too_large(scope, receive, exchange.send, request_id, max_body)

    def _refusal(self, scope: Scope, headers: list[tuple[bytes, bytes]], path: str) -> int | None:
        """None when the token may call the route; else the status to refuse with."""
        if self._auth.allows(headers):
            return None
        if self._ingest_auth is None or not self._ingest_auth.allows(headers):
            return 401
        if (scope.get("method", ""), path) in self._ingest_routes:
            return None
        return 403

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, status: int, request_id: str
    ) -> None:
        if status == 403:
            await self._reply(
                scope,
                receive,
                send,
                403,
                "forbidden",
                "this token may only send traces (POST /v1/traces, POST /api/traces)",
                request_id,
            )
            return
        await self._reply(
            scope,
            receive,
            send,
            401,
            "unauthorized",
            "a valid bearer token is required: Authorization: Bearer <token>",
            request_id,
            {"WWW-Authenticate": "Bearer"},
        )

    async def _dashboard_session(
        self, scope: Scope, receive: Receive, send: Send, path: str, request_id: str
    ) -> bool:
        """Let a dashboard request through with its session; else answer it and say no."""
        assert self._dashboard is not None
        if self._dashboard.is_public(path):
            return True
        session = self._dashboard.session(list(scope.get("headers", [])))
        if session is not None:
            scope.setdefault("state", {})["session"] = session
            return True
        if scope.get("method") in ("GET", "HEAD"):
            location = signin_location(path, scope.get("query_string", b""))
            await RedirectResponse(location, status_code=303)(scope, receive, send)
        else:
            await self._reply(
                scope,
                receive,
                send,
                401,
                "unauthorized",
                "sign in to the dashboard first: its forms need a session",
                request_id,
            )
        return False

    async def _internal_error(
        self, scope: Scope, receive: Receive, send: Send, request_id: str
    ) -> None:
        log.exception(
            "unhandled error in the admin API",
            extra={"event": "api_error", "request_id": request_id},
        )
        await self._reply(
            scope,
            receive,
            send,
            500,
            "internal_error",
            "an unexpected error occurred; quote the request id when reporting it",
            request_id,
        )

    async def _too_large(
        self, scope: Scope, receive: Receive, send: Send, request_id: str, max_body: int
    ) -> None:
        await self._reply(
            scope,
            receive,
            send,
            413,
            "payload_too_large",
            f"the request body is larger than {max_body} bytes",
            request_id,
            details={"max_bytes": max_body},
        )

    async def _reply(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        code: str,
        message: str,
        request_id: str,
        headers: dict[str, str] | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        body = envelope(code, message, request_id, details)
        response = JSONResponse(body, status_code=status, headers={**(headers or {})})
        if _has_body(scope.get("headers", [])):
            # Close rather than drain an unread body: it may be huge or never end.
            response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name.lower() == b"x-request-id" and _SANE_REQUEST_ID.fullmatch(value):
            return value.decode("ascii")
    return uuid.uuid4().hex


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            # The server (h11, httptools) already refused a malformed value.
            return int(value) if value.isdigit() else None
    return None


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"transfer-encoding" or (lowered == b"content-length" and value != b"0"):
            return True
    return False


def _route_path(scope: Scope) -> str:
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path
