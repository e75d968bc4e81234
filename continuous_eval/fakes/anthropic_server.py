"""A fake Anthropic Messages API for tests and benchmarks.

It speaks the real API's wire format (``POST /v1/messages``: the same success
and error bodies, statuses, ``request-id`` and ``retry-after`` headers), so the
real ``anthropic`` SDK runs against it unchanged, retries included. Nothing is
mocked on the client side; only the model is replaced by deterministic rules.

What a request gets, in order:

1. ``401 authentication_error`` without a key (``x-api-key``, or
   ``Authorization: Bearer``, which is how SDK 2.x sends ``api_key``), or with
   a key other than the expected one when one is configured.
2. ``400 invalid_request_error`` without an ``anthropic-version`` header.
3. The next scripted error, if any (a FIFO; see ``FakeAnthropicServer.script``
   and ``POST /_fake/script``).
4. ``400 invalid_request_error`` for a body the real API would refuse.
5. Markers in the text of the last user message, so concurrent tests stay
   deterministic without sharing a script:

   - ``[[fail:STATUS]]``: always that error (a 4xx or 5xx, e.g. ``[[fail:500]]``).
   - ``[[sleep:SECONDS]]``: extra latency for this request only.
   - judge requests (``tools`` holding ``record_score``): ``[[score:N]]`` sets
     the score (passed through as is, so ``[[score:7]]`` tests range checks);
     ``[[judge:garbage]]`` answers a text block only, ``[[judge:string_score]]``
     a score of ``"high"``, ``[[judge:max_tokens]]`` a cut-off tool call,
     ``[[judge:two_tools]]`` two tool calls, ``[[judge:refusal]]`` a refusal.
     Without a marker the score is 1-5 from a sha256 of the message text.
   - other requests: ``[[reply:TEXT]]`` answers exactly TEXT; otherwise
     ``"Answer: " + text``. Text longer than ``max_tokens`` allows is cut and
     ``stop_reason`` is ``max_tokens``, as the real API does.

Tokens are estimated as ``ceil(chars / 4)`` (system, messages and tool
definitions in; text or tool input out), so usage and cost are
deterministic. Latency (``set_latency``, ``--latency-ms``) delays successful
answers only, as generation time; errors come back at once, as a real 429 does.

Control routes let a benchmark drive a fake running in another process:

- ``POST /_fake/script``: ``{"errors": [429, {"status": 529, "headers": {...}}]}``
- ``POST /_fake/latency``: ``{"seconds": 0.2}``
- ``POST /_fake/reset``: forget the script, recorded requests and counters
- ``GET /_fake/stats``: request counts by status, judge requests, in flight

Started with::

    python -m continuous_eval.fakes.anthropic_server --port 8765 --latency-ms 200

it prints ``fake-anthropic listening on http://HOST:PORT`` (useful with
``--port 0``) and serves ~4,000 requests/s on one core (h11, no latency).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import re
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

JUDGE_TOOL_NAME: Final = "record_score"
"""A request offering a tool of this name is answered as the LLM judge."""

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


def error_type_for(status: int) -> str:
    """Return the ``error.type`` the real API uses for an HTTP status."""
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def estimate_tokens(chars: int) -> int:
    """Estimate tokens from characters, deterministically (at least 1, as the API bills)."""
    return max(1, math.ceil(chars / 4))


def _new_id(prefix: str) -> str:
    # Real ids are opaque and unique; only their prefixes are meaningful.
    return prefix + uuid.uuid4().hex[:24]


@dataclass(frozen=True, slots=True)
class ScriptedError:
    """One error the fake returns to the next request, before looking at its body."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra response headers, e.g. ``retry-after`` or ``retry-after-ms``."""
    message: str | None = None
    """``error.message``; a generic one for the status when omitted."""

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ValueError(f"a scripted error needs a 4xx or 5xx status, not {self.status}")

    @classmethod
    def from_json(cls, data: object) -> ScriptedError:
        """Build from control-route JSON: a status, or ``{"status", "headers", "message"}``."""
        if isinstance(data, int) and not isinstance(data, bool):
            return cls(status=data)
        if not isinstance(data, dict) or not isinstance(data.get("status"), int):
            raise ValueError(
                "each scripted error is a status or an object with an integer 'status'"
            )
        headers = data.get("headers") or {}
        message = data.get("message")
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ValueError("'headers' must map strings to strings")
        if message is not None and not isinstance(message, str):
            raise ValueError("'message' must be a string")
        return cls(status=data["status"], headers=headers, message=message)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake received on ``/v1/messages``, for tests to assert on."""

    headers: Mapping[str, str]
    """Request headers, names lower-cased."""
    body: Any
    """The parsed JSON body, or None when it was not JSON."""
    status: int
    """The status the fake answered."""


class FakeState:
    """Configuration, script and counters shared by the app and whoever drives it.

    The app runs on the server's event loop thread while tests script it from
    their own thread, so mutations of shared containers go through a lock.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        latency_s: float = 0.0,
        retry_after_ms: int | None = None,
        rate_limit_retry_after: str = "1",
        record_requests: bool = True,
    ) -> None:
        self.api_key = api_key
        """When set, any other key is refused with 401."""
        self.latency_s = latency_s
        """Added to every successful answer, as generation time."""
        self.retry_after_ms = retry_after_ms
        """When set, every retryable error carries ``retry-after-ms`` (tests use a tiny value
        so SDK retries are instant; the real API does not send this header)."""
        self.rate_limit_retry_after = rate_limit_retry_after
        """``retry-after`` (seconds) of a 429 scripted without one; the real API always sends it."""
        self.record_requests = record_requests
        """Keep every request in ``requests``; off in the CLI so a long benchmark stays flat."""
        self.judge_offset = 0
        """Added to every judge score (clipped to 1-5): a stricter (negative) or more
        lenient judge, as a model update can make one, for judge-drift tests."""
        self.requests: list[RecordedRequest] = []
        self._script: deque[ScriptedError] = deque()
        self._lock = threading.Lock()
        self._total = 0
        self._by_status: dict[int, int] = {}
        self._judge = 0
        self._in_flight = 0
        self._max_in_flight = 0
        # Bumped by reset: a request still in flight across a reset (a test
        # that timed out on a slow answer) is not counted in the next test.
        self._epoch = 0

    def script(self, errors: Sequence[ScriptedError]) -> int:
        """Queue errors for the next requests, in order; return how many are pending."""
        with self._lock:
            self._script.extend(errors)
            return len(self._script)

    def next_scripted(self) -> ScriptedError | None:
        """Take the next scripted error, if any."""
        with self._lock:
            return self._script.popleft() if self._script else None

    def reset(self) -> None:
        """Forget the script, the recorded requests and the counters (not the configuration)."""
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self._total = 0
            self._by_status.clear()
            self._judge = 0
            self._max_in_flight = self._in_flight
            self._epoch += 1

    def begin(self) -> int:
        """Count a request as arrived and in flight; return the token ``end`` needs."""
        with self._lock:
            self._total += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            return self._epoch

    def end(
        self, token: int, status: int, headers: Mapping[str, str], body: Any, *, judge: bool
    ) -> None:
        """Count a request as answered, and record it when recording is on."""
        with self._lock:
            self._in_flight -= 1
            if token != self._epoch:
                return
            self._by_status[status] = self._by_status.get(status, 0) + 1
            self._judge += judge
            if self.record_requests:
                self.requests.append(RecordedRequest(headers=headers, body=body, status=status))

    def stats(self) -> dict[str, Any]:
        """Return the counters as JSON-ready data (the body of ``GET /_fake/stats``)."""
        with self._lock:
            return {
                "requests": self._total,
                "by_status": {str(k): v for k, v in sorted(self._by_status.items())},
                "judge_requests": self._judge,
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
                "scripted_pending": len(self._script),
                "latency_s": self.latency_s,
            }


# --------------------------------------------------------------------- responses


def error_response(
    status: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    error_type: str | None = None,
) -> JSONResponse:
    """Build an error in the real API's shape, with its ``request-id`` header."""
    request_id = _new_id("req_")
    body = {
        "type": "error",
        "error": {"type": error_type or error_type_for(status), "message": message},
        "request_id": request_id,
    }
    return JSONResponse(
        body, status_code=status, headers={**(headers or {}), "request-id": request_id}
    )


def _failure(
    state: FakeState, status: int, message: str | None, headers: Mapping[str, str]
) -> JSONResponse:
    merged = {k.lower(): v for k, v in headers.items()}
    # The real API always tells a rate-limited client when to come back.
    if status == 429:
        merged.setdefault("retry-after", state.rate_limit_retry_after)
    if state.retry_after_ms is not None and (status in _RETRYABLE_STATUSES or status >= 500):
        merged.setdefault("retry-after-ms", str(state.retry_after_ms))
    default = f"fake {error_type_for(status)} (status {status})"
    return error_response(status, message or default, headers=merged)


def _block_text(content: object) -> str:
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


def _validate(body: object) -> str | None:
    """Return the real API's complaint about a request body, or None when it is valid."""
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "model: Field required" if model is None else "model: Input should be a valid string"
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        return "max_tokens: Field required"
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "max_tokens: Input should be an integer greater than or equal to 1"
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
    if body.get("stream"):
        return "stream: this fake answers non-streaming requests only"
    tools = body.get("tools")
    names: set[str] = set()
    if tools is not None:
        if not isinstance(tools, list) or not all(
            isinstance(t, dict) and isinstance(t.get("name"), str) for t in tools
        ):
            return "tools: each tool needs a 'name'"
        names = {t["name"] for t in tools}
    choice = body.get("tool_choice")
    if (
        isinstance(choice, dict)
        and choice.get("type") == "tool"
        and choice.get("name") not in names
    ):
        return f"tool_choice: tool {choice.get('name')!r} not found in 'tools'"
    return None


def _input_chars(body: Mapping[str, Any]) -> int:
    system = body.get("system")
    chars = len(system) if isinstance(system, str) else len(_block_text(system))
    chars += sum(len(_block_text(m.get("content"))) for m in body["messages"])
    if body.get("tools"):
        # Tool definitions are part of the prompt the real API bills for.
        chars += len(json.dumps(body["tools"], separators=(",", ":")))
    return chars


def _last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _block_text(message.get("content"))
    return ""


def _is_judge(body: object) -> bool:
    """Whether a request offers the judge's tool (checked on any body, valid or not, for stats)."""
    tools = body.get("tools") if isinstance(body, dict) else None
    return isinstance(tools, list) and any(
        isinstance(t, dict) and t.get("name") == JUDGE_TOOL_NAME for t in tools
    )


def _judge_answer(text: str, max_tokens: int, offset: int = 0) -> tuple[list[dict[str, Any]], str]:
    """Content blocks and stop reason of the judge's answer to ``text``."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    marker = _SCORE.search(text)
    score = int(marker.group(1)) if marker else int(digest, 16) % 5 + 1
    if offset and 1 <= score <= 5:
        score = min(5, max(1, score + offset))
    mode_marker = _JUDGE.search(text)
    mode = mode_marker.group(1) if mode_marker else None

    def tool_use(tool_input: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "tool_use",
            "id": _new_id("toolu_"),
            "name": JUDGE_TOOL_NAME,
            "input": tool_input,
        }

    rationale = f"Fake judgement {score}/5 (digest {digest[:8]})."
    if mode == "garbage":
        return [{"type": "text", "text": "Pretty good, maybe a four?"}], "end_turn"
    if mode == "string_score":
        return [tool_use({"score": "high", "rationale": rationale})], "tool_use"
    if mode == "max_tokens":
        return [tool_use({})], _STOP_MAX_TOKENS
    if mode == "two_tools":
        answer = {"score": score, "rationale": rationale}
        return [tool_use(answer), tool_use(answer)], "tool_use"
    if mode == "refusal":
        return [], "refusal"
    answer = {"score": score, "rationale": rationale}
    if estimate_tokens(len(json.dumps(answer))) > max_tokens:
        # What the real API returns when the tool call does not fit: a cut-off call.
        return [tool_use({})], _STOP_MAX_TOKENS
    return [tool_use(answer)], "tool_use"


def _text_answer(text: str, max_tokens: int) -> tuple[list[dict[str, Any]], str]:
    """Content blocks and stop reason of a plain answer to ``text``."""
    reply = _REPLY.search(text)
    answer = reply.group(1) if reply else "Answer: " + text
    if estimate_tokens(len(answer)) > max_tokens:
        return [{"type": "text", "text": answer[: max_tokens * 4]}], _STOP_MAX_TOKENS
    return [{"type": "text", "text": answer}], "end_turn"


def _output_chars(content: Sequence[Mapping[str, Any]]) -> int:
    chars = 0
    for block in content:
        if block["type"] == "text":
            chars += len(block["text"])
        else:
            chars += len(json.dumps(block["input"], separators=(",", ":")))
    return chars


# --------------------------------------------------------------------- app


def create_app(state: FakeState) -> Starlette:
    """Build the Starlette app serving the Messages API and the control routes."""

    async def messages(request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        token = state.begin()
        body: Any = None
        judge = False
        response: Response | None = None
        try:
            raw = await request.body()
            with contextlib.suppress(ValueError):
                body = json.loads(raw)
            judge = _is_judge(body)
            response = await _answer(state, headers, body)
            return response
        finally:
            # No response means the handler was cancelled: the client went away (nginx's 499).
            status = response.status_code if response is not None else 499
            state.end(token, status, headers, body, judge=judge)

    async def script(request: Request) -> Response:
        try:
            data = json.loads(await request.body())
            items = data.get("errors") if isinstance(data, dict) else data
            if not isinstance(items, list):
                raise ValueError('send a list of errors, or {"errors": [...]}')
            errors = [ScriptedError.from_json(item) for item in items]
        except ValueError as exc:
            return error_response(400, f"bad script: {exc}")
        pending = state.script(errors)
        return _control_json({"pending": pending})

    async def latency(request: Request) -> Response:
        try:
            data = json.loads(await request.body())
            seconds = data["seconds"] if isinstance(data, dict) else None
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
                raise ValueError("'seconds' must be a number >= 0")
        except (ValueError, KeyError) as exc:
            return error_response(400, f"bad latency: {exc}")
        state.latency_s = float(seconds)
        return _control_json({"latency_s": state.latency_s})

    async def reset(request: Request) -> Response:
        state.reset()
        return _control_json({"reset": True})

    async def stats(request: Request) -> Response:
        return _control_json(state.stats())

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        return error_response(status, f"{request.method} {request.url.path}: not found")

    return Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/_fake/script", script, methods=["POST"]),
            Route("/_fake/latency", latency, methods=["POST"]),
            Route("/_fake/reset", reset, methods=["POST"]),
            Route("/_fake/stats", stats, methods=["GET"]),
        ],
        exception_handlers={404: not_found, 405: not_found},
    )


def _control_json(data: Mapping[str, Any]) -> JSONResponse:
    return JSONResponse(data, headers={"request-id": _new_id("req_")})


async def _answer(state: FakeState, headers: Mapping[str, str], body: Any) -> Response:
    """Answer one Messages request, in the order the module docstring lists."""
    key = headers.get("x-api-key") or ""
    authorization = headers.get("authorization", "")
    if not key and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    if not key:
        return error_response(401, "x-api-key header is required")
    if state.api_key is not None and key != state.api_key:
        return error_response(401, "invalid x-api-key")
    if not headers.get("anthropic-version"):
        return error_response(400, "anthropic-version: header is required")

    scripted = state.next_scripted()
    if scripted is not None:
        return _failure(state, scripted.status, scripted.message, scripted.headers)

    if body is None:
        return error_response(400, "There was an error parsing the body of your request")
    problem = _validate(body)
    if problem is not None:
        return error_response(400, problem)

    text = _last_user_text(body["messages"])
    fail = _FAIL.search(text)
    if fail and 400 <= int(fail.group(1)) <= 599:
        return _failure(state, int(fail.group(1)), None, {})

    max_tokens: int = body["max_tokens"]
    if _is_judge(body):
        content, stop_reason = _judge_answer(text, max_tokens, state.judge_offset)
    else:
        content, stop_reason = _text_answer(text, max_tokens)
    delay = state.latency_s
    sleep_marker = _SLEEP.search(text)
    if sleep_marker:
        delay += float(sleep_marker.group(1))
    if delay > 0:
        await asyncio.sleep(delay)

    request_id = _new_id("req_")
    message = {
        "id": _new_id("msg_"),
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
    return JSONResponse(message, headers={"request-id": request_id})


# --------------------------------------------------------------------- server


def _listening_socket(host: str, port: int) -> socket.socket:
    """Bind a TCP socket for uvicorn to serve on."""
    # proto must be IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY
    # only on sockets that say they are TCP, and without it uvicorn's separate
    # header and body writes meet Nagle and delayed ACKs, adding 40 ms to
    # every response.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class FakeAnthropicServer:
    """Run the fake under uvicorn on a free local port, in a background thread.

    Use it as a context manager; ``base_url`` is ready on entry and the port
    is released on exit. Tests script it in-process with ``script`` and read
    what it received from ``requests``.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        latency_s: float = 0.0,
        retry_after_ms: int | None = None,
        rate_limit_retry_after: str = "1",
        record_requests: bool = True,
        host: str = "127.0.0.1",
    ) -> None:
        self.state = FakeState(
            api_key=api_key,
            latency_s=latency_s,
            retry_after_ms=retry_after_ms,
            rate_limit_retry_after=rate_limit_retry_after,
            record_requests=record_requests,
        )
        self._host = host
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""
        """``http://127.0.0.1:PORT``, set once started."""

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every ``/v1/messages`` request received since start or the last reset."""
        return self.state.requests

    def script(self, *errors: int | ScriptedError) -> None:
        """Queue errors (statuses, or ``ScriptedError`` with headers) for the next requests."""
        self.state.script([e if isinstance(e, ScriptedError) else ScriptedError(e) for e in errors])

    def set_latency(self, seconds: float) -> None:
        """Set the latency added to every successful answer."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        self.state.latency_s = seconds

    def set_judge_offset(self, offset: int) -> None:
        """Make the judge stricter (negative) or more lenient: added to every score, clipped."""
        self.state.judge_offset = offset

    def stats(self) -> dict[str, Any]:
        """Return the request counters, as ``GET /_fake/stats`` does."""
        return self.state.stats()

    def reset(self) -> None:
        """Forget the script, recorded requests and counters; keep the configuration."""
        self.state.reset()

    def start(self, timeout_s: float = 10.0) -> None:
        """Bind a free port and serve in a background thread; return once it accepts requests."""
        if self._thread is not None:
            raise RuntimeError("the fake server is already started")
        # Binding the socket ourselves gives a free port with no race between
        # picking it and uvicorn binding it.
        sock = _listening_socket(self._host, 0)
        self._socket = sock
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.state),
            log_level="warning",
            access_log=False,
            # In-process, leave the host's logging configuration alone.
            log_config=None,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="fake-anthropic", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the fake Anthropic server did not start")
            time.sleep(0.005)
        self.base_url = f"http://{self._host}:{port}"

    def stop(self) -> None:
        """Ask uvicorn to exit, wait for the thread and release the port."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> FakeAnthropicServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the fake in the foreground until interrupted (for benchmarks and manual tests)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--api-key", default=None, help="refuse any other key")
    parser.add_argument("--retry-after-ms", type=int, default=None)
    parser.add_argument("--record", action="store_true", help="keep request bodies (memory grows)")
    args = parser.parse_args(argv)

    state = FakeState(
        api_key=args.api_key,
        latency_s=args.latency_ms / 1000,
        retry_after_ms=args.retry_after_ms,
        record_requests=args.record,
    )
    sock = _listening_socket(args.host, args.port)
    # Printed (and flushed) so a parent process can read the port when it asked for 0.
    print(f"fake-anthropic listening on http://{args.host}:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(
        create_app(state),
        log_level="warning",
        access_log=False,
        lifespan="off",
        backlog=2048,
        timeout_graceful_shutdown=2,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


if __name__ == "__main__":
    main(sys.argv[1:])
