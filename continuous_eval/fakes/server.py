"""How a fake HTTP API is served: the socket, uvicorn in a thread, the CLI's foreground loop.

Belongs here: what is the same whichever API a fake imitates, for running it
in-process (``BackgroundServer``, ``FakeServer``) or as its own process
(``cli_parser``, ``serve_forever``). Nothing of a real API's wire format
belongs here; each fake's modules hold that, and ``control`` the routes a
test or benchmark drives a fake with.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar

import uvicorn
from starlette.types import ASGIApp

LOCALHOST = "127.0.0.1"


def listening_socket(host: str, port: int) -> socket.socket:
    """Bind a TCP socket for uvicorn to serve on (port 0 picks a free one)."""
    # proto must be IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY
    # only on sockets that say they are TCP, and without it uvicorn's separate
    # header and body writes meet Nagle and delayed ACKs (+40 ms per answer).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class BackgroundServer:
    """Serve any ASGI app under uvicorn on a free local port, in a background thread.

    Shared by the fakes (and usable for a test's own small receiver), so each
    does not reinvent start-up, readiness and shutdown.
    """

    def __init__(self, app: ASGIApp, *, name: str, host: str = LOCALHOST) -> None:
        self._app = app
        self._name = name
        self._host = host
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""
        """``http://127.0.0.1:PORT``, set once started."""

    def start(self, timeout_s: float = 10.0) -> None:
        """Bind a free port and serve; return once the server accepts requests."""
        if self._thread is not None:
            raise RuntimeError(f"{self._name} is already started")
        # Binding the socket ourselves gives a free port with no race between
        # picking it and uvicorn binding it.
        sock = listening_socket(self._host, 0)
        self._socket = sock
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            access_log=False,
            log_config=None,  # in-process, leave the host's logging configuration alone
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=self._name, daemon=True
        )
        self._thread.start()
        self._wait_started(timeout_s)
        self.base_url = f"http://{self._host}:{port}"

    def _wait_started(self, timeout_s: float) -> None:
        # Polling: uvicorn sets a flag, not an event, once it accepts requests.
        deadline = time.monotonic() + timeout_s
        while self._server is not None and not self._server.started:
            if self._thread is None or not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self._name} did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        """Ask uvicorn to exit, wait for the thread and release the port."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None


class Resettable(Protocol):
    """A fake's state: it can forget what it was scripted and recorded."""

    def reset(self) -> None:
        """Forget the script and the records; keep the configuration."""


StateT = TypeVar("StateT", bound=Resettable)


class FakeServer(Generic[StateT]):
    """A fake API over its state, served in a background thread: the fakes' common half.

    Use it as a context manager; ``base_url`` is ready on entry and the port is
    released on exit. Tests drive and read ``state`` in-process; the subclass
    adds the calls that are its API's own (scripting, recorded requests).
    """

    def __init__(self, state: StateT, app: ASGIApp, *, name: str, host: str) -> None:
        self.state = state
        """Configuration, script and records, shared with the app on the server's thread."""
        self._server = BackgroundServer(app, name=name, host=host)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` once started."""
        return self._server.base_url

    def reset(self) -> None:
        """Forget the script and everything recorded; keep the configuration."""
        self.state.reset()

    def start(self, timeout_s: float = 10.0) -> None:
        """Bind a free port and serve in a background thread; return once it accepts requests."""
        self._server.start(timeout_s)

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def cli_parser(
    description: str | None, *, default_port: int, api_key_help: str
) -> argparse.ArgumentParser:
    """Build the options every fake's CLI takes; the caller adds its API's own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default=LOCALHOST)
    parser.add_argument("--port", type=int, default=default_port, help="0 picks a free port")
    parser.add_argument("--api-key", default=None, help=api_key_help)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    return parser


def serve_forever(app: ASGIApp, *, name: str, host: str, port: int) -> None:
    """Serve ``app`` in the foreground until interrupted, announcing the address on stdout."""
    sock = listening_socket(host, port)
    # Listen before announcing: a parent that connects as soon as it reads the
    # address must be queued, not refused (uvicorn listens again, harmlessly).
    sock.listen(2048)
    # Printed (and flushed) so a parent process can read the port when it asked for 0.
    print(f"{name} listening on http://{host}:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(
        app,
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
