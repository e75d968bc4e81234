"""A real daemon and its HTTP app under uvicorn, on a free port, in a background thread.

The daemon, the app and uvicorn share one event loop in that thread, as in
``serve``; the test talks to it over real HTTP and can run coroutines on its
loop (``call``) to look at the server's state, e.g. its asyncio tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from continuous_eval.adapters.db.queries import SqlRunReader
from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.adapters.http.app import create_app
from continuous_eval.adapters.http.events import EventStreams, StreamSettings
from continuous_eval.adapters.suite_files import load_suite_file
from continuous_eval.app.container import local_daemon, readiness
from continuous_eval.fakes.resend_server import listening_socket
from continuous_eval.service.daemon import Daemon
from continuous_eval.settings import Settings
from tests.fixtures import api_target
from tests.fixtures.api_suite import AUTH, TOKEN, make_settings, suite_file

_T = TypeVar("_T")

__all__ = [
    "AUTH",
    "TOKEN",
    "ApiServer",
    "CountedStreams",
    "SseReader",
    "make_settings",
    "running",
    "suite_file",
]


class CountedStreams(EventStreams):
    """The app's live streams, and a way to wait (from the test's thread) for how many are open."""

    def __init__(self, settings: StreamSettings | None = None) -> None:
        self._changed = threading.Condition()
        self._count = 0
        super().__init__(settings)

    @property
    def _open(self) -> int:
        return self._count

    @_open.setter
    def _open(self, value: int) -> None:
        # EventStreams counts its streams in _open: each change wakes wait_open.
        with self._changed:
            self._count = value
            self._changed.notify_all()

    def wait_open(self, count: int, timeout: float = 30) -> None:
        """Return once exactly ``count`` streams are open; AssertionError after ``timeout``."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._count == count, timeout):
                raise AssertionError(f"{self._count} streams open, not {count}, after {timeout} s")


@dataclass
class ApiServer:
    """One server; use ``running`` to start and stop it."""

    settings: Settings
    config: Path
    stream: StreamSettings = field(default_factory=lambda: StreamSettings(poll_s=0.05))
    base_url: str = ""
    app: FastAPI | None = None
    daemon: Daemon | None = None
    store: SqlRunStore | None = None
    streams: CountedStreams | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _error: BaseException | None = None

    def start(self) -> None:
        """Serve in a background thread; return once requests are accepted."""
        sock = listening_socket("127.0.0.1", 0)  # a TCP socket, so asyncio sets TCP_NODELAY
        sock.listen(128)
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._thread = threading.Thread(
            target=self._run, args=(sock,), name="api-server", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout=30) or self._error is not None:
            raise RuntimeError(f"the API server did not start: {self._error!r}")
        deadline = time.monotonic() + 10
        while not (self._server is not None and self._server.started):
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)

    def _run(self, sock: socket.socket) -> None:
        try:
            asyncio.run(self._main(sock))
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            sock.close()

    async def _main(self, sock: socket.socket) -> None:
        loaded = load_suite_file(self.config)
        async with local_daemon(self.settings, loaded) as (daemon, store, _):
            self.daemon, self.store = daemon, store
            self.streams = CountedStreams(self.stream)
            self.app = create_app(
                settings=self.settings,
                readiness=partial(readiness, store.engine),
                registry=CollectorRegistry(),
                daemon=daemon,
                store=store,
                reader=SqlRunReader(store.engine),
                suites={n: list(s.features) for n, s in loaded.suites.suites.items()},
                status=lambda: {"owner": daemon.owner, "running": daemon.running},
                streams=self.streams,
            )
            config = uvicorn.Config(
                self.app,
                log_level="warning",
                access_log=False,
                log_config=None,
                lifespan="off",
                timeout_graceful_shutdown=2,
            )
            self._server = uvicorn.Server(config)
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            await self._server.serve(sockets=[sock])
            await daemon.shutdown(5.0)

    def stop(self) -> None:
        """End the live streams, stop uvicorn and the daemon, and wait for the thread."""
        api_target.release_all()
        if self.streams is not None:
            self.streams.close()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
            if self._thread.is_alive():
                raise RuntimeError("the API server did not stop")

    def call(self, fn: Callable[[], Awaitable[_T]], timeout: float = 10) -> _T:
        """Run a coroutine on the server's event loop and return its result."""
        if self._loop is None:
            raise RuntimeError("not started")

        async def wrapper() -> _T:
            return await fn()

        future: Future[_T] = asyncio.run_coroutine_threadsafe(wrapper(), self._loop)
        return future.result(timeout)

    def settled(self, timeout: float = 30) -> None:
        """Return once every run, resume and delivery the server's daemon started has ended."""
        daemon = self.daemon
        if daemon is None:
            raise RuntimeError("not started")
        self.call(daemon.settled, timeout)

    def client(self, **kwargs: Any) -> httpx.Client:
        """An HTTP client on the server, with the token unless ``headers`` say otherwise."""
        kwargs.setdefault("headers", AUTH)
        kwargs.setdefault("timeout", 10)
        return httpx.Client(base_url=self.base_url, **kwargs)

    def wait_run(
        self,
        client: httpx.Client,
        run_id: str,
        predicate: Callable[[dict[str, Any]], bool],
        *,
        timeout: float = 20,
    ) -> dict[str, Any]:
        """Poll ``GET /api/runs/{id}`` until ``predicate`` holds; return the run."""
        deadline = time.monotonic() + timeout
        while True:
            run: dict[str, Any] = client.get(f"/api/runs/{run_id}").json()
            if predicate(run):
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} never got there: {run}")
            time.sleep(0.05)


@contextlib.contextmanager
def running(server: ApiServer) -> Iterator[ApiServer]:
    """Start ``server``, and stop it however the test ends."""
    api_target.reset()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        api_target.reset()


class SseReader:
    """Reads one SSE response event by event; counts the keep-alive comments it skips."""

    def __init__(self, response: httpx.Response) -> None:
        self._stream = response.iter_lines()
        self._held: list[str] = []
        self.comments = 0

    def _line(self) -> str | None:
        # Not a generator over the stream: closing one would close the response.
        return self._held.pop(0) if self._held else next(self._stream, None)

    def until_comments(self, n: int) -> None:
        """Read until ``n`` keep-alive comments arrived in all; other lines are kept for later."""
        while self.comments < n:
            line = next(self._stream)
            if line.startswith(":"):
                self.comments += 1
            else:
                self._held.append(line)

    def next(self) -> dict[str, Any] | None:
        """Return the next event as {event, id?, data}, or None once the stream ended."""
        current: dict[str, Any] = {}
        while (line := self._line()) is not None:
            if line == "":
                if current:
                    if "data" in current:
                        current["data"] = json.loads(current["data"])
                    return current
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                current["data"] = current.get("data", "") + value
            elif name in ("event", "id", "retry"):
                current[name] = value
        return None

    def take(self, n: int, name: str | None = None) -> list[dict[str, Any]]:
        """Read until ``n`` events (of type ``name``, if given) arrived; return every event read."""
        events: list[dict[str, Any]] = []
        matched = 0
        while matched < n:
            event = self.next()
            if event is None:
                raise AssertionError(f"the stream ended after {events}")
            events.append(event)
            matched += name is None or event.get("event") == name
        return events

    def rest(self) -> list[dict[str, Any]]:
        """Read every event until the stream ends."""
        events = []
        while (event := self.next()) is not None:
            events.append(event)
        return events
