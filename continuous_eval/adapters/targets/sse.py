"""A minimal Server-Sent Events reader: lines in, events out, as the HTML spec says.

Belongs here: the event-stream format only (fields, comments, multi-line
data, the blank line that dispatches), not what any event means. No
maintained SSE client library is among the project's dependencies
(``sse-starlette`` serves streams, it does not read them), and the format is
small: a parser of about forty lines, tested on its own, beats a new
dependency.

What the spec asks and this does: a line is split at its first colon into
field and value, one space after the colon is dropped; a line starting with a
colon is a comment; ``data`` lines accumulate joined by newlines; ``event``
names the event (``message`` when absent); ``id`` is kept as the last event
id; ``retry`` and unknown fields are ignored; a blank line dispatches the
event, unless it has no data; an event not ended by a blank line when the
stream ends is discarded. Lines arrive already split (``httpx`` splits on
CR, LF and CRLF, as the spec requires).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SseEvent", "SseParser"]


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event."""

    event: str
    """The ``event`` field, ``message`` when the event named none."""
    data: str
    """The ``data`` lines joined by newlines."""
    id: str | None = None
    """The last event id seen so far in the stream."""


class SseParser:
    """Turn the lines of an event stream into events, one line at a time."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._last_id: str | None = None
        self._first = True

    def feed(self, line: str) -> SseEvent | None:
        """Take one line (without its line ending); return the event a blank line ends."""
        if self._first:
            self._first = False
            line = line.removeprefix("\ufeff")  # a byte order mark may open the stream
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment, e.g. a keep-alive
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id" and "\0" not in value:
            self._last_id = value
        return None

    def _dispatch(self) -> SseEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return SseEvent(event=event or "message", data="\n".join(data), id=self._last_id)
