"""A minimal Server-Sent Events reader: bytes in, events out, as the HTML spec says.

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
stream ends is discarded. The bytes are decoded as UTF-8 whatever the
headers say, and split into lines on CRLF, LF and CR only, a CRLF split
between two chunks counting once (``httpx``'s ``aiter_lines`` also splits on
the other Unicode line breaks, such as U+2028, which may appear inside an
event's JSON data).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

__all__ = ["SseEvent", "SseParser"]

_LINE_END = re.compile(r"\r\n|\r|\n")


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
    """Turn an event stream into events, a chunk of bytes (or a line) at a time."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._last_id: str | None = None
        self._first = True
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Take the next bytes of the stream; return the events they complete."""
        text = self._partial + self._decoder.decode(chunk)
        # A CR at the very end may be the first half of a CRLF: keep it for later.
        held = "\r" if text.endswith("\r") else ""
        lines = _LINE_END.split(text[: len(text) - len(held)])
        self._partial = lines.pop() + held
        events = []
        for line in lines:
            event = self.feed_line(line)
            if event is not None:
                events.append(event)
        return events

    def feed_line(self, line: str) -> SseEvent | None:
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
