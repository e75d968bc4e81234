"""uvicorn's h11 protocol with a bound on the time a client may take to send its headers.

uvicorn closes a keep-alive connection that sits idle (``timeout_keep_alive``)
and can refuse requests past a number of connections (``limit_concurrency``),
but it has no limit on how long a client may take to finish a request's
headers: twenty clients trickling a header byte a second hold twenty
connections open for as long as they like, before any auth runs (a
slowloris). ``guarded_h11`` adds that limit: from the moment a connection
opens, and again from the end of each response, the next request's headers
must arrive whole within ``header_timeout_s`` or the connection is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


class HeaderTimeoutH11Protocol(H11Protocol):
    """``H11Protocol`` that closes a connection whose request headers are too slow."""

    header_timeout_s: float = 10.0
    """Set per server by ``guarded_h11``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._waiting_for: object = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Accept the connection and start waiting for its first request's headers."""
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the timer with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        """Process what arrived; once a request's headers are whole, stop the clock."""
        super().handle_events()
        if self._header_timer is not None and self.cycle is not self._waiting_for:
            self._disarm()  # a new request cycle began: its headers are in

    def on_response_complete(self) -> None:
        """After each response, the next request's headers get the same time."""
        super().on_response_complete()
        # Not when a pipelined request already began (its headers are in).
        idle = self.cycle is None or self.cycle.response_complete
        if idle and not self.transport.is_closing():
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._waiting_for = self.cycle
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def guarded_h11(header_timeout_s: float) -> type[HeaderTimeoutH11Protocol]:
    """Return the protocol class for ``uvicorn.Config(http=...)`` with this header timeout."""
    if not header_timeout_s > 0:
        raise ValueError("header_timeout_s must be > 0")
    return type(
        "GuardedH11Protocol", (HeaderTimeoutH11Protocol,), {"header_timeout_s": header_timeout_s}
    )
