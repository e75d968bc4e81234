"""The control side every fake shares: its script queue and its ``/_fake/...`` routes.

Belongs here: what a test or a benchmark in another process drives a fake
with (``/_fake/script``, ``/_fake/latency``, ``/_fake/reset``, read-only
routes), the thread-safe FIFO of scripted faults behind them, the Starlette
app shell with its unknown-route answers, and the small JSON checks the
fakes' parsers share. How each answer looks on the wire is the fake's own:
it passes its ``Replies``, so a control error still comes in its API's shape.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeGuard, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)

JsonObject = dict[str, Any]
"""A JSON object a control route answers."""


def is_integer(value: object) -> TypeGuard[int]:
    """Whether a parsed JSON value is an integer (``true`` and ``false`` are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    """Whether a parsed JSON value is a number (``true`` and ``false`` are not)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_error_status(status: int) -> None:
    """Refuse a scripted status that is not an error: a fake scripts failures only.

    Raises:
        ValueError: for a status outside 400-599.
    """
    if not 400 <= status <= 599:
        raise ValueError(f"a scripted error needs a 4xx or 5xx status, not {status}")


def headers_from_json(value: object) -> dict[str, str]:
    """Read the ``headers`` of a scripted fault: absent, or an object of strings.

    Raises:
        ValueError: for anything else.
    """
    headers = value or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ValueError("'headers' must map strings to strings")
    return headers


def lower_headers(request: Request) -> dict[str, str]:
    """Return a request's headers with lower-cased names, as the fakes record them."""
    return {k.lower(): v for k, v in request.headers.items()}


class Script(Generic[T]):
    """A thread-safe FIFO of what a fake does to its next requests.

    The app takes from it on the server's event loop thread while a test fills
    it from its own, hence the lock.
    """

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._lock = threading.Lock()

    def extend(self, items: Sequence[T]) -> int:
        """Queue items for the next requests, in order; return how many are pending."""
        with self._lock:
            self._items.extend(items)
            return len(self._items)

    def take(self) -> T | None:
        """Take the next item, if any."""
        with self._lock:
            return self._items.popleft() if self._items else None

    def clear(self) -> None:
        """Forget every pending item."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class Replies(Protocol):
    """How a fake words its control answers and unknown routes, in its API's shape."""

    def ok(self, data: JsonObject) -> Response:
        """Answer a control request that succeeded."""

    def bad_request(self, message: str) -> Response:
        """Answer 400 to a control request the fake could not use."""

    def not_found(self, request: Request, status: int) -> Response:
        """Answer a request for no route (404) or with the wrong method (405)."""


class Controlled(Protocol[T_contra]):
    """The part of a fake's state the shared control routes drive."""

    latency_s: float

    def script(self, items: Sequence[T_contra]) -> int:
        """Queue faults for the next requests; return how many are pending."""

    def reset(self) -> None:
        """Forget the script and the records; keep the configuration."""


def body_route(
    path: str, replies: Replies, what: str, handle: Callable[[object], JsonObject]
) -> Route:
    """Build a ``POST`` control route taking a JSON body.

    ``handle`` gets the parsed body and returns the answer; a ``ValueError``
    from parsing or from ``handle`` answers 400 ``bad WHAT: REASON``.
    """

    async def endpoint(request: Request) -> Response:
        try:
            answer = handle(json.loads(await request.body()))
        except ValueError as exc:
            return replies.bad_request(f"bad {what}: {exc}")
        return replies.ok(answer)

    return Route(path, endpoint, methods=["POST"])


def plain_route(
    path: str, replies: Replies, handle: Callable[[], JsonObject], *, method: str = "GET"
) -> Route:
    """Build a control route that reads no body: ``handle`` acts and returns the answer."""

    async def endpoint(request: Request) -> Response:
        return replies.ok(handle())

    return Route(path, endpoint, methods=[method])


def items_from_json(data: object, keys: Sequence[str]) -> list[object]:
    """Read a script: a JSON list, or an object holding it under the first of ``keys`` present.

    Raises:
        ValueError: when that is not a list.
    """
    if isinstance(data, dict):
        items = next((data[key] for key in keys if key in data), None)
    else:
        items = data
    if not isinstance(items, list):
        raise ValueError(f'send a list of {keys[0]}, or {{"{keys[0]}": [...]}}')
    return items


def seconds_from_json(data: object) -> float:
    """Read ``{"seconds": N}`` of ``POST /_fake/latency``.

    Raises:
        ValueError: for anything but a number >= 0.
    """
    seconds = data.get("seconds") if isinstance(data, dict) else None
    if not is_number(seconds) or seconds < 0:
        raise ValueError("'seconds' must be a number >= 0")
    return float(seconds)


def control_routes(
    state: Controlled[T],
    replies: Replies,
    *,
    parse: Callable[[object], T],
    keys: Sequence[str],
    read_seconds: Callable[[object], float] = seconds_from_json,
) -> list[BaseRoute]:
    """Build ``/_fake/script``, ``/_fake/latency`` and ``/_fake/reset`` over a fake's state.

    Args:
        state: what the routes script, time and reset.
        replies: the fake's wording of answers.
        parse: builds one scripted fault from its JSON, raising ``ValueError``.
        keys: the names a script's list may come under in an object, preferred first.
        read_seconds: reads the latency body, raising ``ValueError``.
    """

    def script(data: object) -> JsonObject:
        faults = [parse(item) for item in items_from_json(data, keys)]
        return {"pending": state.script(faults)}

    def latency(data: object) -> JsonObject:
        state.latency_s = read_seconds(data)
        return {"latency_s": state.latency_s}

    def reset() -> JsonObject:
        state.reset()
        return {"reset": True}

    return [
        body_route("/_fake/script", replies, "script", script),
        body_route("/_fake/latency", replies, "latency", latency),
        plain_route("/_fake/reset", replies, reset, method="POST"),
    ]


def fake_app(routes: Sequence[BaseRoute], replies: Replies) -> Starlette:
    """Build the Starlette app of a fake: its routes, and unknown routes in its API's shape."""

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        return replies.not_found(request, status)

    return Starlette(routes=list(routes), exception_handlers={404: not_found, 405: not_found})
